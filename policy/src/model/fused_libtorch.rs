//! Fused layers of the LibTorch backends (the `libtorch` feature): a hidden layer of a LayerNorm
//! MLP, `relu(layer_norm(x·W + b))` ([`linear_norm_relu`], and [`grouped_linear_norm_relu`] for
//! inputs whose first features repeat over groups of rows); a linear layer, `x·W + b`
//! ([`linear`]); a hidden layer of a dropout MLP,
//! `dropout(relu(x·W + b))` ([`linear_relu_dropout`]); a pre-norm transformer encoder layer
//! ([`encoder_layer`]); and a stage of the image encoder, three convolutions with group norms
//! and a skip ([`image_stage`]). Each is a single operation of burn's graph.
//!
//! burn's autodiff has no layer norm, group norm or attention of its own: it differentiates
//! their decompositions (for layer norm: mean, centring, variance, square root, division, scale,
//! shift; about ten element-wise passes forward and more backward), adds biases separately,
//! takes a ReLU's gradient as a masked fill and draws a dropout mask as a uniform tensor and a
//! comparison. PyTorch runs fused kernels forward and backward. Here the whole layer is handed
//! to LibTorch's own autograd ([`torch_autograd_op`]): the forward records LibTorch's ops on
//! leaf views of the layer's input and parameters (sharing their memory), the backward asks
//! LibTorch's engine for the gradients of the dot product `y · ∂L/∂y` with respect to those
//! leaves (only those burn tracks) and gives them to burn's graph. Dropout inside a fused layer
//! draws its mask on every compute thread ([`dropout_mask`]), where LibTorch's own dropout draws
//! it on one. On LibTorch without autodiff (inference, EMA target networks) the same LibTorch
//! ops run without autograd and without dropout. The functions are those of burn's
//! modules ([`burn::nn::Linear`], [`burn::nn::LayerNorm`] (Ba, Kiros & Hinton 2016, eq. 4:
//! biased variance, ε inside the square root), [`burn::nn::GroupNorm`], [`burn::nn::Dropout`],
//! burn's `TransformerEncoderLayer`), up to rounding; the parameters stay burn's, so checkpoints
//! do not change.
//!
//! Other backends take burn's own path (the functions return `None`).

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::nn::activation::Activation;
use burn::nn::conv::Conv2d;
use burn::nn::transformer::TransformerEncoderLayer;
use burn::nn::{GroupNorm, LayerNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

use crate::model::dropout_mask;
use crate::model::image::Stage;
use crate::{LibTorch, LibTorchTrain};

/// The layer's LibTorch autograd graph, kept from the forward pass to the backward pass.
struct TorchGraph {
    /// The layer's output, the root of the graph.
    output: tch::Tensor,
    /// Leaves in the order of the operation's parents.
    leaves: Vec<tch::Tensor>,
    /// Indices of the leaves whose parent burn tracks (the only ones given gradients: a leaf
    /// burn does not differentiate, such as an input image, costs LibTorch no gradient).
    tracked: Vec<usize>,
    /// burn's handles of the same memory: while the graph lives, burn sees these buffers as
    /// shared and never overwrites them in place (LibTorch's backward reads them).
    _pinned: Vec<TchTensor>,
}

impl Clone for TorchGraph {
    fn clone(&self) -> TorchGraph {
        TorchGraph {
            output: self.output.shallow_clone(),
            leaves: self.leaves.iter().map(tch::Tensor::shallow_clone).collect(),
            tracked: self.tracked.clone(),
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
        // ∂/∂leaf of Σ y ⊙ g is the vector-Jacobian product gᵀ ∂y/∂leaf. As a dot product the
        // root is a scalar: its forward only reads y and g, and its backward is one pass (g
        // times the seed 1), where an element-wise root would write y ⊙ g, a tensor of ones
        // (LibTorch's seed) and their product.
        let g = grad_output.tensor.detach().reshape([-1]);
        let root = graph.output.reshape([-1]).dot(&g);
        let targets: Vec<&tch::Tensor> = graph.tracked.iter().map(|&i| &graph.leaves[i]).collect();
        let leaf_grads = tch::Tensor::run_backward(&[root], &targets, false, false);
        let mut parents = ops.parents;
        for (&i, grad) in graph.tracked.iter().zip(leaf_grads) {
            if let Some(node) = parents[i].take() {
                grads.register::<LibTorch>(node.id, TchTensor::new(grad));
            }
        }
    }
}

/// Whether `B` is one of the two LibTorch backends, the only ones with fused layers.
fn is_libtorch<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<LibTorchTrain>() || TypeId::of::<B>() == TypeId::of::<LibTorch>()
}

/// A layer input on one of the two LibTorch backends.
enum Leaf {
    /// On `Autodiff<LibTorch>`: burn's graph node and LibTorch's tensor.
    Train(FloatTensor<LibTorchTrain>),
    /// On LibTorch without autodiff (inference, EMA targets).
    Plain(TchTensor),
}

/// `t` as a [`Leaf`] when `B` is one of the LibTorch backends.
fn leaf<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<Leaf> {
    match (Box::new(t) as Box<dyn Any>).downcast::<Tensor<LibTorchTrain, D>>() {
        Ok(t) => Some(Leaf::Train(t.into_primitive().tensor())),
        Err(any) => any.downcast::<Tensor<LibTorch, D>>().ok().map(|t| Leaf::Plain(t.into_primitive().tensor())),
    }
}

/// The LibTorch tensor of the mask `t` when `B` is one of the LibTorch backends.
fn mask<B: Backend, const D: usize>(t: Tensor<B, D, Bool>) -> Option<tch::Tensor> {
    match (Box::new(t) as Box<dyn Any>).downcast::<Tensor<LibTorchTrain, D, Bool>>() {
        Ok(t) => Some(t.into_primitive().tensor),
        Err(any) => any.downcast::<Tensor<LibTorch, D, Bool>>().ok().map(|t| t.into_primitive().tensor),
    }
}

/// `forward(leaves, training)` as one operation on backend `B`: on the autodiff backend one
/// node of burn's graph differentiated by LibTorch's autograd ([`torch_autograd_op`],
/// `training` true), on the plain LibTorch backend a forward pass without autograd (`training`
/// false: no dropout, as burn's [`burn::nn::Dropout`] off autodiff). `None` when the inputs are
/// not all of `B`'s kind.
fn fused<B: Backend, const D: usize, const N: usize>(
    inputs: [Leaf; N],
    forward: impl Fn(&[tch::Tensor], bool) -> tch::Tensor,
) -> Option<Tensor<B, D>> {
    let (mut train, mut plain) = (Vec::with_capacity(N), Vec::new());
    for l in inputs {
        match l {
            Leaf::Train(p) => train.push(p),
            Leaf::Plain(p) => plain.push(p.tensor),
        }
    }
    let out: Box<dyn Any> = if let Ok(train) = <[FloatTensor<LibTorchTrain>; N]>::try_from(train) {
        let out = torch_autograd_op(train, |t| forward(t, true));
        Box::new(Tensor::<LibTorchTrain, D>::from_primitive(TensorPrimitive::Float(out)))
    } else if plain.len() == N {
        let out = TchTensor::new(tch::no_grad(|| forward(&plain, false)));
        Box::new(Tensor::<LibTorch, D>::from_primitive(TensorPrimitive::Float(out)))
    } else {
        return None;
    };
    out.downcast::<Tensor<B, D>>().ok().map(|t| *t)
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
            let tracked: Vec<usize> = (0..N).filter(|&i| !inputs[i].node.requirement.is_none()).collect();
            let leaves: Vec<tch::Tensor> = inputs
                .iter()
                .enumerate()
                .map(|(i, t)| t.primitive.tensor.detach().set_requires_grad(tracked.contains(&i)))
                .collect();
            let output = forward(&leaves);
            let result = TchTensor::new(output.detach());
            let mut pinned: Vec<TchTensor> = inputs.iter().map(|t| t.primitive.clone()).collect();
            pinned.push(result.clone());
            prep.finish(TorchGraph { output, leaves, tracked, _pinned: pinned }, result)
        }
        OpsKind::UnTracked(prep) => {
            let plain: Vec<tch::Tensor> = inputs.iter().map(|t| t.primitive.tensor.shallow_clone()).collect();
            prep.finish(TchTensor::new(tch::no_grad(|| forward(&plain))))
        }
    }
}

/// `relu(norm(lin(x)))` as one LibTorch operation when `B` is a LibTorch backend and
/// the layer has a bias and the norm a shift; `None` otherwise (the caller takes burn's path).
/// `epsilon` must be the norm's (burn keeps it private). `x`: `[B, in]`; output `[B, hidden]`.
pub fn linear_norm_relu<B: Backend>(
    lin: &Linear<B>,
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    if !is_libtorch::<B>() {
        return None;
    }
    let inputs = [
        leaf(x.clone())?,
        leaf(lin.weight.val())?,
        leaf(lin.bias.as_ref()?.val())?,
        leaf(norm.gamma.val())?,
        leaf(norm.beta.as_ref()?.val())?,
    ];
    let hidden = lin.weight.dims()[1] as i64;
    fused(inputs, |t, _training| {
        t[2].addmm(&t[0], &t[1]).layer_norm([hidden], Some(&t[3]), Some(&t[4]), epsilon, true).relu()
    })
}

/// [`linear_norm_relu`] of the rows `[shared_i, rows_r]` (`shared`: `[n, F]`, `rows`:
/// `[n·m, C]`, row `r` in group `i = r / m`, F + C = the layer's input), `[n·m, hidden]`, as one
/// LibTorch operation when `B` is a LibTorch backend and the layer has a bias and the norm a
/// shift; `None` otherwise. The shared part of the product, `shared · W[..F]`, is computed once
/// per group and broadcast over its `m` rows. The caller checks that `n` divides the rows.
pub fn grouped_linear_norm_relu<B: Backend>(
    lin: &Linear<B>,
    norm: &LayerNorm<B>,
    epsilon: f64,
    shared: &Tensor<B, 2>,
    rows: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    if !is_libtorch::<B>() {
        return None;
    }
    let [n, f] = shared.dims().map(|v| v as i64);
    let [n_rows, c] = rows.dims().map(|v| v as i64);
    let hidden = lin.weight.dims()[1] as i64;
    let inputs = [
        leaf(shared.clone())?,
        leaf(rows.clone())?,
        leaf(lin.weight.val())?,
        leaf(lin.bias.as_ref()?.val())?,
        leaf(norm.gamma.val())?,
        leaf(norm.beta.as_ref()?.val())?,
    ];
    fused(inputs, |t, _training| {
        let per_group = t[0].mm(&t[2].narrow(0, 0, f)).unsqueeze(1); // [n, 1, hidden]
        let per_row = t[3].addmm(&t[1], &t[2].narrow(0, f, c)).view([n, n_rows / n, hidden]);
        (per_row + per_group)
            .view([n_rows, hidden])
            .layer_norm([hidden], Some(&t[4]), Some(&t[5]), epsilon, true)
            .relu()
    })
}

/// One pre-norm encoder layer of burn's [`TransformerEncoder`] (`norm_first`, exact GELU, no
/// quiet softmax), `[B, T, d]` → `[B, T, d]`, as one LibTorch operation when `B` is a LibTorch
/// backend; `None` otherwise. The same function as burn's layer: `x + drop(mha(norm_2(x)))`
/// then `+ drop(ffn(norm_1(·)))`, attention dropout on the scaled scores before the padding
/// mask and the softmax, as burn does; dropout masks come from [`dropout_mask::dropout`], seeded
/// from LibTorch's generator, which burn seeds. `pad`: `[B, T]`, true where a token is padding. `epsilon`: the layer norms' ε.
pub fn encoder_layer<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
    x: &Tensor<B, 3>,
    pad: &Tensor<B, 2, Bool>,
    epsilon: f64,
) -> Option<Tensor<B, 3>> {
    if !is_libtorch::<B>()
        || !layer.norm_first
        || layer.mha.quiet_softmax
        || !matches!(layer.pwff.activation, Activation::Gelu(_))
    {
        return None;
    }
    let mha = &layer.mha;
    let lin = |l: &Linear<B>| -> Option<[Leaf; 2]> { Some([leaf(l.weight.val())?, leaf(l.bias.as_ref()?.val())?]) };
    let norm = |n: &LayerNorm<B>| -> Option<[Leaf; 2]> { Some([leaf(n.gamma.val())?, leaf(n.beta.as_ref()?.val())?]) };
    let [qw, qb] = lin(&mha.query)?;
    let [kw, kb] = lin(&mha.key)?;
    let [vw, vb] = lin(&mha.value)?;
    let [ow, ob] = lin(&mha.output)?;
    let [g2, b2] = norm(&layer.norm_2)?;
    let [g1, b1] = norm(&layer.norm_1)?;
    let [iw, ib] = lin(&layer.pwff.linear_inner)?;
    let [fw, fb] = lin(&layer.pwff.linear_outer)?;
    let pad = mask(pad.clone())?;
    let (heads, d_k) = (mha.n_heads as i64, mha.d_k as i64);
    let (p_attn, p_ffn, p_layer) = (mha.dropout.prob, layer.pwff.dropout.prob, layer.dropout.prob);
    let min_float = mha.min_float;
    let inputs = [leaf(x.clone())?, qw, qb, kw, kb, vw, vb, ow, ob, g2, b2, g1, b1, iw, ib, fw, fb];
    fused(inputs, |t, training| {
        let size = t[0].size();
        let (b, s, d) = (size[0], size[1], size[2]);
        let drop = |y: tch::Tensor, p: f64| if training && p > 0.0 { dropout_mask::dropout(&y, p) } else { y };
        let linear = |y: &tch::Tensor, w: &tch::Tensor, bias: &tch::Tensor| y.matmul(w) + bias;
        let split = |y: tch::Tensor| y.reshape([b, s, heads, d_k]).transpose(1, 2);
        let r = t[0].layer_norm([d], Some(&t[9]), Some(&t[10]), epsilon, true);
        let (q, k, v) =
            (split(linear(&r, &t[1], &t[2])), split(linear(&r, &t[3], &t[4])), split(linear(&r, &t[5], &t[6])));
        let scores = drop(q.matmul(&k.transpose(-2, -1)) / (d_k as f64).sqrt(), p_attn)
            .masked_fill(&pad.reshape([b, 1, 1, s]), min_float);
        let context = scores.softmax(-1, tch::Kind::Float).matmul(&v).transpose(1, 2).reshape([b, s, d]);
        let x1 = &t[0] + drop(linear(&context, &t[7], &t[8]), p_layer);
        let r1 = x1.layer_norm([d], Some(&t[11]), Some(&t[12]), epsilon, true);
        let ffn = linear(&drop(linear(&r1, &t[13], &t[14]).gelu("none"), p_ffn), &t[15], &t[16]);
        x1 + drop(ffn, p_layer)
    })
}

/// `dropout(relu(lin(x)))` as one LibTorch operation when `B` is a LibTorch backend
/// and the layer has a bias; `None` otherwise. Dropout (probability `p_drop`, survivors scaled
/// by `1/(1 − p_drop)`, as burn's [`burn::nn::Dropout`] in training) draws its mask with
/// [`dropout_mask::dropout`], seeded from LibTorch's generator, which burn seeds. `x`: `[B, in]`; output `[B, out]`.
pub fn linear_relu_dropout<B: Backend>(lin: &Linear<B>, p_drop: f64, x: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    if !is_libtorch::<B>() {
        return None;
    }
    let inputs = [leaf(x.clone())?, leaf(lin.weight.val())?, leaf(lin.bias.as_ref()?.val())?];
    fused(inputs, |t, training| {
        let y = t[2].addmm(&t[0], &t[1]).relu();
        if training && p_drop > 0.0 {
            dropout_mask::dropout(&y, p_drop)
        } else {
            y
        }
    })
}

/// `lin(x) = x·W + b` as one LibTorch operation (`addmm`: the bias enters the product's
/// accumulator, where burn adds it in a pass of its own and sums its gradient in another) when
/// `B` is a LibTorch backend and the layer has a bias; `None` otherwise. `x`: `[B, in]`;
/// output `[B, out]`.
pub fn linear<B: Backend>(lin: &Linear<B>, x: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    if !is_libtorch::<B>() {
        return None;
    }
    let inputs = [leaf(x.clone())?, leaf(lin.weight.val())?, leaf(lin.bias.as_ref()?.val())?];
    fused(inputs, |t, _training| t[2].addmm(&t[0], &t[1]))
}

/// A convolution's weight and bias, and its stride, padding (symmetric only) and dilation.
struct ConvLeaves {
    params: [Leaf; 2],
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
}

fn conv_leaves<B: Backend>(c: &Conv2d<B>) -> Option<ConvLeaves> {
    let padding = match c.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top as i64, left as i64]
        }
        _ => return None,
    };
    if c.groups != 1 {
        return None;
    }
    Some(ConvLeaves {
        params: [leaf(c.weight.val())?, leaf(c.bias.as_ref()?.val())?],
        stride: c.stride.map(|v| v as i64),
        padding,
        dilation: c.dilation.map(|v| v as i64),
    })
}

/// A group norm's scale and shift (an affine norm only), its group count and ε.
fn norm_leaves<B: Backend>(n: &GroupNorm<B>) -> Option<([Leaf; 2], i64, f64)> {
    if !n.affine {
        return None;
    }
    Some(([leaf(n.gamma.as_ref()?.val())?, leaf(n.beta.as_ref()?.val())?], n.num_groups as i64, n.epsilon))
}

/// One stage of the image encoder ([`Stage`]): `h = relu(gn(conv_down(x)))`, then the residual
/// block `relu(h + gn_2(conv_2(relu(gn_1(conv_1(h))))))`, as one LibTorch operation when `B` is
/// a LibTorch backend; `None` otherwise. The same function as burn's modules:
/// [`burn::nn::GroupNorm`] (Wu & He 2018, eq. 1–3: biased variance over each group's channels
/// and pixels, ε inside the square root) and cross-correlation convolutions with bias.
/// `x`: `[N, C_in, H, W]` → `[N, C, H', W']`.
pub fn image_stage<B: Backend>(stage: &Stage<B>, x: &Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    if !is_libtorch::<B>() {
        return None;
    }
    let block = &stage.block;
    let convs = [conv_leaves(&stage.down)?, conv_leaves(&block.conv1)?, conv_leaves(&block.conv2)?];
    let norms = [norm_leaves(&stage.norm)?, norm_leaves(&block.norm1)?, norm_leaves(&block.norm2)?];
    let shapes: Vec<_> = convs.iter().map(|c| (c.stride, c.padding, c.dilation)).collect();
    let groups: Vec<_> = norms.iter().map(|n| (n.1, n.2)).collect();
    let [[dw, db], [w1, b1], [w2, b2]] = convs.map(|c| c.params);
    let [[g0, s0], [g1, s1], [g2, s2]] = norms.map(|n| n.0);
    let inputs = [leaf(x.clone())?, dw, db, g0, s0, w1, b1, g1, s1, w2, b2, g2, s2];
    fused(inputs, |t, _training| {
        // Convolution k (0: down, 1 and 2: the block's) then its group norm, on leaves 1 + 4k...
        let conv_norm = |y: &tch::Tensor, k: usize| {
            let (stride, padding, dilation) = shapes[k];
            let (num_groups, eps) = groups[k];
            let i = 1 + 4 * k;
            y.conv2d(&t[i], Some(&t[i + 1]), stride, padding, dilation, 1).group_norm(
                num_groups,
                Some(&t[i + 2]),
                Some(&t[i + 3]),
                eps,
                false,
            )
        };
        let h = conv_norm(&t[0], 0).relu();
        let r = conv_norm(&conv_norm(&h, 1).relu(), 2);
        (r + h).relu()
    })
}

#[cfg(test)]
mod tests;
