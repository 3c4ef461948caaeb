//! Fused layers of the LibTorch training backend (`Autodiff<LibTorch>`, the `libtorch` feature):
//! a hidden layer of a LayerNorm MLP, `relu(layer_norm(x·W + b))` ([`linear_norm_relu`]), and a
//! pre-norm transformer encoder layer ([`encoder_layer`]), each as a single operation of burn's
//! graph.
//!
//! burn's autodiff has no layer norm or attention of its own: it differentiates their
//! decompositions (for layer norm: mean, centring, variance, square root, division, scale,
//! shift; about ten element-wise passes forward and more backward), adds biases separately and
//! takes a ReLU's gradient as a masked fill. PyTorch runs fused kernels forward and backward.
//! Here the whole layer is handed to LibTorch's own autograd ([`torch_autograd_op`]): the
//! forward records LibTorch's ops on leaf views of the layer's input and parameters (sharing
//! their memory), the backward asks LibTorch's engine for the gradients of `Σ y ⊙ ∂L/∂y` with
//! respect to those leaves and gives them to burn's graph. The functions are those of burn's
//! modules ([`burn::nn::Linear`], [`burn::nn::LayerNorm`] (Ba, Kiros & Hinton 2016, eq. 4:
//! biased variance, ε inside the square root), burn's `TransformerEncoderLayer`), up to rounding;
//! the parameters stay burn's, so checkpoints do not change.
//!
//! Other backends, and this one outside training, take burn's own path (the functions return
//! `None`).

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::transformer::TransformerEncoderLayer;
use burn::nn::activation::Activation;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::ops::FloatTensor;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::backend::libtorch::TchTensor;

use crate::{LibTorch, LibTorchTrain};

/// The layer's LibTorch autograd graph, kept from the forward pass to the backward pass.
struct TorchGraph {
    /// The layer's output, the root of the graph.
    output: tch::Tensor,
    /// Leaves in the order of the operation's parents.
    leaves: Vec<tch::Tensor>,
    /// burn's handles of the same memory: while the graph lives, burn sees these buffers as
    /// shared and never overwrites them in place (LibTorch's backward reads them).
    _pinned: Vec<TchTensor>,
}

impl Clone for TorchGraph {
    fn clone(&self) -> TorchGraph {
        TorchGraph {
            output: self.output.shallow_clone(),
            leaves: self.leaves.iter().map(tch::Tensor::shallow_clone).collect(),
            _pinned: self._pinned.clone(),
        }
    }
}

impl std::fmt::Debug for TorchGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TorchGraph(output {:?})", self.output.size())
    }
}

/// The backward step of an operation whose graph LibTorch's autograd recorded.
#[derive(Debug)]
struct TorchAutogradBackward;

impl<const N: usize> Backward<LibTorch, N> for TorchAutogradBackward {
    type State = TorchGraph;

    fn backward(self, ops: Ops<TorchGraph, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
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
fn as_libtorch<B: Backend, const D: usize, K: 'static>(t: Tensor<B, D, K>) -> Option<Tensor<LibTorchTrain, D, K>>
where
    K: burn::tensor::TensorKind<B> + burn::tensor::TensorKind<LibTorchTrain>,
{
    (Box::new(t) as Box<dyn Any>).downcast::<Tensor<LibTorchTrain, D, K>>().ok().map(|t| *t)
}

/// Moves a tensor of `LibTorchTrain` back to backend `B` (which is `LibTorchTrain`).
fn from_libtorch<B: Backend, const D: usize>(t: Tensor<LibTorchTrain, D>) -> Option<Tensor<B, D>> {
    (Box::new(t) as Box<dyn Any>).downcast::<Tensor<B, D>>().ok().map(|t| *t)
}

/// The float primitive (burn's autodiff node and LibTorch tensor) of `t`, if `B` is `LibTorchTrain`.
fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<FloatTensor<LibTorchTrain>> {
    Some(as_libtorch(t)?.into_primitive().tensor())
}

/// One operation of burn's graph computing `forward(inputs)` with LibTorch's kernels, forward and
/// backward by LibTorch's autograd. `forward` must be a pure function of its inputs and of
/// LibTorch's random generator.
fn torch_autograd_op<const N: usize>(
    inputs: [FloatTensor<LibTorchTrain>; N],
    forward: impl Fn(&[tch::Tensor]) -> tch::Tensor,
) -> FloatTensor<LibTorchTrain> {
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    match TorchAutogradBackward.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let leaves: Vec<tch::Tensor> =
                inputs.iter().map(|t| t.primitive.tensor.detach().set_requires_grad(true)).collect();
            let output = forward(&leaves);
            let result = TchTensor::new(output.detach());
            let mut pinned: Vec<TchTensor> = inputs.iter().map(|t| t.primitive.clone()).collect();
            pinned.push(result.clone());
            prep.finish(TorchGraph { output, leaves, _pinned: pinned }, result)
        }
        OpsKind::UnTracked(prep) => {
            let plain: Vec<tch::Tensor> = inputs.iter().map(|t| t.primitive.tensor.shallow_clone()).collect();
            prep.finish(TchTensor::new(tch::no_grad(|| forward(&plain))))
        }
    }
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
    let inputs = [
        primitive(x.clone())?,
        primitive(lin.weight.val())?,
        primitive(lin.bias.as_ref()?.val())?,
        primitive(norm.gamma.val())?,
        primitive(norm.beta.as_ref()?.val())?,
    ];
    let hidden = inputs[1].primitive.tensor.size()[1];
    let out = torch_autograd_op(inputs, |t| {
        t[2].addmm(&t[0], &t[1]).layer_norm([hidden], Some(&t[3]), Some(&t[4]), epsilon, true).relu()
    });
    from_libtorch(Tensor::<LibTorchTrain, 2>::from_primitive(TensorPrimitive::Float(out)))
}

/// One pre-norm encoder layer of burn's [`TransformerEncoder`] (`norm_first`, exact GELU, no
/// quiet softmax), `[B, T, d]` → `[B, T, d]`, as one LibTorch operation when `B` is the LibTorch
/// training backend; `None` otherwise. The same function as burn's layer: `x + drop(mha(norm_2(x)))`
/// then `+ drop(ffn(norm_1(·)))`, attention dropout on the scaled scores before the padding
/// mask and the softmax, as burn does; dropout masks come from LibTorch's generator, which burn
/// seeds. `pad`: `[B, T]`, true where a token is padding. `epsilon`: the layer norms' ε.
pub fn encoder_layer<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
    x: &Tensor<B, 3>,
    pad: &Tensor<B, 2, Bool>,
    epsilon: f64,
) -> Option<Tensor<B, 3>> {
    if TypeId::of::<B>() != TypeId::of::<LibTorchTrain>()
        || !layer.norm_first
        || layer.mha.quiet_softmax
        || !matches!(layer.pwff.activation, Activation::Gelu(_))
    {
        return None;
    }
    let mha = &layer.mha;
    let lin = |l: &Linear<B>| -> Option<[FloatTensor<LibTorchTrain>; 2]> {
        Some([primitive(l.weight.val())?, primitive(l.bias.as_ref()?.val())?])
    };
    let norm = |n: &LayerNorm<B>| -> Option<[FloatTensor<LibTorchTrain>; 2]> {
        Some([primitive(n.gamma.val())?, primitive(n.beta.as_ref()?.val())?])
    };
    let [qw, qb] = lin(&mha.query)?;
    let [kw, kb] = lin(&mha.key)?;
    let [vw, vb] = lin(&mha.value)?;
    let [ow, ob] = lin(&mha.output)?;
    let [g2, b2] = norm(&layer.norm_2)?;
    let [g1, b1] = norm(&layer.norm_1)?;
    let [iw, ib] = lin(&layer.pwff.linear_inner)?;
    let [fw, fb] = lin(&layer.pwff.linear_outer)?;
    let pad = as_libtorch(pad.clone())?.into_primitive().tensor;
    let (heads, d_k) = (mha.n_heads as i64, mha.d_k as i64);
    let (p_attn, p_ffn, p_layer) = (mha.dropout.prob, layer.pwff.dropout.prob, layer.dropout.prob);
    let min_float = mha.min_float;
    let inputs = [primitive(x.clone())?, qw, qb, kw, kb, vw, vb, ow, ob, g2, b2, g1, b1, iw, ib, fw, fb];
    let out = torch_autograd_op(inputs, |t| {
        let size = t[0].size();
        let (b, s, d) = (size[0], size[1], size[2]);
        let drop = |y: tch::Tensor, p: f64| if p > 0.0 { y.dropout(p, true) } else { y };
        let linear = |y: &tch::Tensor, w: &tch::Tensor, bias: &tch::Tensor| y.matmul(w) + bias;
        let split = |y: tch::Tensor| y.reshape([b, s, heads, d_k]).transpose(1, 2);
        let r = t[0].layer_norm([d], Some(&t[9]), Some(&t[10]), epsilon, true);
        let (q, k, v) = (split(linear(&r, &t[1], &t[2])), split(linear(&r, &t[3], &t[4])), split(linear(&r, &t[5], &t[6])));
        let scores = drop(q.matmul(&k.transpose(-2, -1)) / (d_k as f64).sqrt(), p_attn)
            .masked_fill(&pad.reshape([b, 1, 1, s]), min_float);
        let context = scores.softmax(-1, tch::Kind::Float).matmul(&v).transpose(1, 2).reshape([b, s, d]);
        let x1 = &t[0] + drop(linear(&context, &t[7], &t[8]), p_layer);
        let r1 = x1.layer_norm([d], Some(&t[11]), Some(&t[12]), epsilon, true);
        let ffn = linear(&drop(linear(&r1, &t[13], &t[14]).gelu("none"), p_ffn), &t[15], &t[16]);
        x1 + drop(ffn, p_layer)
    });
    from_libtorch(Tensor::<LibTorchTrain, 3>::from_primitive(TensorPrimitive::Float(out)))
}

#[cfg(test)]
mod tests {
    use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn the_fused_encoder_layer_matches_burns_in_value_and_gradient() {
        let dev = Default::default();
        let encoder = TransformerEncoderConfig::new(16, 32, 4, 2)
            .with_norm_first(true)
            .with_dropout(0.0)
            .init::<LibTorchTrain>(&dev);
        let x = Tensor::<LibTorchTrain, 3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &dev);
        // The last two tokens of the second sequence are padding.
        let pad = Tensor::<LibTorchTrain, 2, Bool>::from_data(
            [[false; 5], [false, false, false, true, true], [false; 5]],
            &dev,
        );
        let target = Tensor::<LibTorchTrain, 3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                let mut h = x.clone();
                for layer in &encoder.layers {
                    h = encoder_layer(layer, &h, &pad, 1e-5).expect("the fused path on LibTorchTrain");
                }
                h
            } else {
                encoder.forward(TransformerEncoderInput::new(x.clone()).mask_pad(pad.clone()))
            };
            let grads = (y.clone() - target.clone()).powf_scalar(2.0).sum().backward();
            let flat = |d: burn::tensor::TensorData| d.to_vec::<f32>().unwrap();
            let mut out = vec![flat(y.into_data()), flat(x.grad(&grads).expect("∂x").into_data())];
            for layer in &encoder.layers {
                let l = &layer.mha.query;
                out.push(flat(l.weight.grad(&grads).expect("∂Wq").into_data()));
                out.push(flat(layer.pwff.linear_inner.weight.grad(&grads).expect("∂W_inner").into_data()));
                out.push(flat(layer.norm_2.gamma.grad(&grads).expect("∂γ").into_data()));
                out.push(flat(layer.mha.output.bias.as_ref().and_then(|b| b.grad(&grads)).expect("∂bo").into_data()));
            }
            out
        };
        let (fused, reference) = (run(true), run(false));
        for (k, (a, b)) in fused.iter().zip(&reference).enumerate() {
            assert_eq!(a.len(), b.len(), "tensor {k}");
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 2e-4 * scale, "tensor {k}: differs by {worst} (scale {scale})");
        }
        assert!(fused[1].iter().any(|v| v.abs() > 1e-4), "∂x is zero");
    }
}
