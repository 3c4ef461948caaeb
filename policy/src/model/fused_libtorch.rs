//! One hidden layer of a LayerNorm MLP, `relu(layer_norm(x·W + b))`, as a single operation of
//! the LibTorch training backend (`Autodiff<LibTorch>`, the `libtorch` feature).
//!
//! burn's autodiff has no layer norm of its own: it differentiates its decomposition (mean,
//! centring, variance, square root, division, scale, shift), about ten element-wise passes
//! forward and more backward over `[B, hidden]`, plus a separate bias add and a masked fill for
//! the ReLU's gradient. PyTorch runs `addmm`, one fused layer-norm kernel and `relu` forward,
//! and their fused backward kernels. This module hands the whole layer to LibTorch's own
//! autograd: the forward records the three ops on leaf copies of the layer's input and
//! parameters (sharing their memory), the backward asks LibTorch's engine for the gradients of
//! `Σ y ⊙ ∂L/∂y` with respect to those leaves and gives them to burn's graph. The values are
//! the same function as [`burn::nn::Linear`] → [`burn::nn::LayerNorm`] → ReLU (layer norm: Ba,
//! Kiros & Hinton 2016, eq. 4, biased variance, ε inside the square root), up to rounding.
//!
//! Other backends, and this one outside training, take burn's own path ([`linear_norm_relu`]
//! returns `None`).

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::backend::libtorch::TchTensor;

use crate::{LibTorch, LibTorchTrain};

/// The layer's LibTorch autograd graph, kept from the forward pass to the backward pass.
struct TorchGraph {
    /// The layer's output, the root of the graph.
    output: tch::Tensor,
    /// Leaves in the order of the operation's parents: input, weight, bias, gamma, beta.
    leaves: [tch::Tensor; 5],
    /// burn's handles of the same memory: while the graph lives, burn sees these buffers as
    /// shared and never overwrites them in place (LibTorch's backward reads them).
    _pinned: Vec<TchTensor>,
}

impl Clone for TorchGraph {
    fn clone(&self) -> TorchGraph {
        TorchGraph {
            output: self.output.shallow_clone(),
            leaves: self.leaves.each_ref().map(tch::Tensor::shallow_clone),
            _pinned: self._pinned.clone(),
        }
    }
}

impl std::fmt::Debug for TorchGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TorchGraph(output {:?})", self.output.size())
    }
}

/// The backward step of [`linear_norm_relu`] in burn's graph.
#[derive(Debug)]
struct LinearNormReluBackward;

impl Backward<LibTorch, 5> for LinearNormReluBackward {
    type State = TorchGraph;

    fn backward(self, ops: Ops<TorchGraph, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad_output = grads.consume::<LibTorch>(&ops.node);
        let graph = ops.state;
        // ∂/∂leaf of Σ y ⊙ g is the vector-Jacobian product gᵀ ∂y/∂leaf (LibTorch's engine seeds
        // the root with ones).
        let root = &graph.output * grad_output.tensor.detach();
        let leaf_grads = tch::Tensor::run_backward(&[root], &graph.leaves, false, false);
        for (parent, grad) in ops.parents.into_iter().zip(leaf_grads) {
            if let Some(node) = parent {
                grads.register::<LibTorch>(node.id, TchTensor::new(grad));
            }
        }
    }
}

/// Moves a tensor of backend `B` to `LibTorchTrain` when `B` is that backend.
fn as_libtorch<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<Tensor<LibTorchTrain, D>> {
    (Box::new(t) as Box<dyn Any>).downcast::<Tensor<LibTorchTrain, D>>().ok().map(|t| *t)
}

/// `relu(norm(lin(x)))` as one LibTorch operation when `B` is the LibTorch training backend and
/// the layer has a bias and the norm a shift; `None` otherwise (the caller takes burn's path).
/// `epsilon` must be the norm's (burn keeps it private). `x`: `[B, in]`; output `[B, hidden]`.
pub fn linear_norm_relu<B: Backend>(
    lin: &Linear<B>,
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    if TypeId::of::<B>() != TypeId::of::<LibTorchTrain>() {
        return None;
    }
    let x = as_libtorch(x.clone())?.into_primitive().tensor();
    let weight = as_libtorch(lin.weight.val())?.into_primitive().tensor();
    let bias = as_libtorch(lin.bias.as_ref()?.val())?.into_primitive().tensor();
    let gamma = as_libtorch(norm.gamma.val())?.into_primitive().tensor();
    let beta = as_libtorch(norm.beta.as_ref()?.val())?.into_primitive().tensor();
    let hidden = weight.primitive.tensor.size()[1];
    let forward = |x: &tch::Tensor, w: &tch::Tensor, b: &tch::Tensor, g: &tch::Tensor, s: &tch::Tensor| {
        b.addmm(x, w).layer_norm([hidden], Some(g), Some(s), epsilon, true).relu()
    };
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match LinearNormReluBackward.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let pinned = vec![
                x.primitive.clone(),
                weight.primitive.clone(),
                bias.primitive.clone(),
                gamma.primitive.clone(),
                beta.primitive.clone(),
            ];
            let leaves = [&x, &weight, &bias, &gamma, &beta].map(|t| t.primitive.tensor.detach().set_requires_grad(true));
            let output = forward(&leaves[0], &leaves[1], &leaves[2], &leaves[3], &leaves[4]);
            let result = TchTensor::new(output.detach());
            let mut kept = pinned;
            kept.push(result.clone());
            prep.finish(TorchGraph { output, leaves, _pinned: kept }, result)
        }
        OpsKind::UnTracked(prep) => {
            let output = tch::no_grad(|| {
                forward(
                    &x.primitive.tensor,
                    &weight.primitive.tensor,
                    &bias.primitive.tensor,
                    &gamma.primitive.tensor,
                    &beta.primitive.tensor,
                )
            });
            prep.finish(TchTensor::new(output))
        }
    };
    let out = Tensor::<LibTorchTrain, 2>::from_primitive(TensorPrimitive::Float(out));
    (Box::new(out) as Box<dyn Any>).downcast::<Tensor<B, 2>>().ok().map(|t| *t)
}
