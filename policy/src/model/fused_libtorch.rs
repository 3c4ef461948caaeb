//! Fused layers of the LibTorch backends (the `libtorch` feature): a hidden layer of a LayerNorm
//! MLP, `relu(layer_norm(x·W + b))` ([`linear_norm_relu`]); a hidden layer of a dropout MLP,
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
use burn::nn::transformer::TransformerEncoderLayer;
use burn::nn::activation::Activation;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, LayerNorm, Linear, PaddingConfig2d};
use burn::tensor::ops::FloatTensor;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::backend::libtorch::TchTensor;

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
        let mut parents = ops.parents.map(Some);
        for (&i, grad) in graph.tracked.iter().zip(leaf_grads) {
            if let Some(node) = parents[i].take().flatten() {
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
    let train: Option<Vec<FloatTensor<LibTorchTrain>>> =
        inputs.iter().map(|l| if let Leaf::Train(p) = l { Some(p.clone()) } else { None }).collect();
    if let Some(train) = train {
        let out = torch_autograd_op::<N>(train.try_into().ok()?, |t| forward(t, true));
        let out = Tensor::<LibTorchTrain, D>::from_primitive(TensorPrimitive::Float(out));
        return (Box::new(out) as Box<dyn Any>).downcast::<Tensor<B, D>>().ok().map(|t| *t);
    }
    let plain: Option<Vec<tch::Tensor>> =
        inputs.iter().map(|l| if let Leaf::Plain(p) = l { Some(p.tensor.shallow_clone()) } else { None }).collect();
    let plain = plain?;
    let out = TchTensor::new(tch::no_grad(|| forward(&plain, false)));
    let out = Tensor::<LibTorch, D>::from_primitive(TensorPrimitive::Float(out));
    (Box::new(out) as Box<dyn Any>).downcast::<Tensor<B, D>>().ok().map(|t| *t)
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
    let lin = |l: &Linear<B>| -> Option<[Leaf; 2]> {
        Some([leaf(l.weight.val())?, leaf(l.bias.as_ref()?.val())?])
    };
    let norm = |n: &LayerNorm<B>| -> Option<[Leaf; 2]> {
        Some([leaf(n.gamma.val())?, leaf(n.beta.as_ref()?.val())?])
    };
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
        let (q, k, v) = (split(linear(&r, &t[1], &t[2])), split(linear(&r, &t[3], &t[4])), split(linear(&r, &t[5], &t[6])));
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
        if training && p_drop > 0.0 { dropout_mask::dropout(&y, p_drop) } else { y }
    })
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
            y.conv2d(&t[i], Some(&t[i + 1]), stride, padding, dilation, 1)
                .group_norm(num_groups, Some(&t[i + 2]), Some(&t[i + 3]), eps, false)
        };
        let h = conv_norm(&t[0], 0).relu();
        let r = conv_norm(&conv_norm(&h, 1).relu(), 2);
        (r + h).relu()
    })
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

    #[test]
    fn the_fused_image_stage_matches_burns_modules_in_value_and_gradient() {
        let dev = Default::default();
        let config = crate::ImageEncoderConfig::new(32, vec!["cam".into()]);
        let encoder = crate::model::image::ImageEncoder::<LibTorchTrain>::new(&config, &dev);
        let x = Tensor::<LibTorchTrain, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let mut h = x.clone();
            for stage in &encoder.stages {
                h = if fused { image_stage(stage, &h).expect("the fused path on LibTorchTrain") } else { stage.forward_burn(h) };
            }
            let weights = Tensor::<LibTorchTrain, 4>::ones(h.dims(), &dev).cumsum(3) / 7.0;
            let grads = (h.clone() * weights).sum().backward();
            let flat = |d: burn::tensor::TensorData| d.to_vec::<f32>().unwrap();
            let mut out = vec![flat(h.into_data()), flat(x.grad(&grads).expect("∂x").into_data())];
            for stage in &encoder.stages {
                out.push(flat(stage.down.weight.grad(&grads).expect("∂W_down").into_data()));
                out.push(flat(stage.block.conv2.bias.as_ref().and_then(|b| b.grad(&grads)).expect("∂b_2").into_data()));
                out.push(flat(stage.block.norm1.gamma.as_ref().and_then(|g| g.grad(&grads)).expect("∂γ_1").into_data()));
                out.push(flat(stage.norm.beta.as_ref().and_then(|b| b.grad(&grads)).expect("∂β").into_data()));
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

    #[test]
    fn the_fused_linear_relu_layer_matches_burns_without_dropout_and_drops_a_tenth_with() {
        let dev = Default::default();
        let lin = burn::nn::LinearConfig::new(12, 64).init::<LibTorchTrain>(&dev);
        let x = Tensor::<LibTorchTrain, 2>::random([256, 12], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let fused = linear_relu_dropout(&lin, 0.0, &x).expect("the fused path on LibTorchTrain");
        let burns = burn::tensor::activation::relu(lin.forward(x.clone()));
        fused.to_data().assert_approx_eq::<f32>(&burns.to_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-5));
        let g_fused = lin.weight.grad(&(fused * 1.5).sum().backward()).expect("∂W");
        let g_burn = lin.weight.grad(&(burns * 1.5).sum().backward()).expect("∂W");
        g_fused.to_data().assert_approx_eq::<f32>(&g_burn.to_data(), burn::tensor::Tolerance::rel_abs(1e-4, 1e-4));
        // An input burn does not differentiate (data) gets no gradient; the parameters still do.
        let data = x.clone().set_require_grad(false);
        let grads = (linear_relu_dropout(&lin, 0.0, &data).expect("fused") * 1.5).sum().backward();
        assert!(data.grad(&grads).is_none(), "data has no gradient");
        let g_data = lin.weight.grad(&grads).expect("∂W with an untracked input");
        g_data.to_data().assert_approx_eq::<f32>(&g_burn.to_data(), burn::tensor::Tolerance::rel_abs(1e-4, 1e-4));
        // With dropout 0.1: survivors are scaled by 1/0.9, about a tenth of the positives are zero.
        let plain = burn::tensor::activation::relu(lin.forward(x.clone())).into_data().to_vec::<f32>().unwrap();
        let dropped = linear_relu_dropout(&lin, 0.1, &x).expect("fused").into_data().to_vec::<f32>().unwrap();
        let positive: Vec<(f32, f32)> = plain.iter().zip(&dropped).filter(|(p, _)| **p > 1e-3).map(|(p, d)| (*p, *d)).collect();
        let zeroed = positive.iter().filter(|(_, d)| *d == 0.0).count() as f64 / positive.len() as f64;
        assert!((0.07..0.13).contains(&zeroed), "dropped fraction {zeroed}");
        for (p, d) in positive.iter().filter(|(_, d)| *d != 0.0) {
            assert!((d - p / 0.9).abs() <= 1e-4 * p.abs().max(1.0), "survivor {d} is not {p}/0.9");
        }
    }

    /// Off autodiff (inference, EMA targets) every fused layer gives burn's values, with no
    /// dropout.
    #[test]
    fn the_fused_layers_off_autodiff_give_burns_values_without_dropout() {
        use burn::module::AutodiffModule;
        let dev = Default::default();
        let close = |a: Tensor<LibTorch, 2>, b: Tensor<LibTorch, 2>, what: &str| {
            let (a, b) = (a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(&b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-4 * scale, "{what}: differs by {worst} (scale {scale})");
        };
        // Image stages.
        let config = crate::ImageEncoderConfig::new(32, vec!["cam".into()]);
        let encoder = crate::model::image::ImageEncoder::<LibTorchTrain>::new(&config, &dev).valid();
        let x = Tensor::<LibTorch, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let (mut fused, mut burns) = (x.clone(), x);
        for stage in &encoder.stages {
            fused = image_stage(stage, &fused).expect("the fused path on LibTorch");
            burns = stage.forward_burn(burns);
        }
        close(fused.flatten(1, 3), burns.flatten(1, 3), "image stages");
        // A transformer layer with dropout 0.1 (inactive off autodiff).
        let layer = TransformerEncoderConfig::new(16, 32, 4, 1)
            .with_norm_first(true)
            .with_dropout(0.1)
            .init::<LibTorchTrain>(&dev)
            .valid();
        let x = Tensor::<LibTorch, 3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &dev);
        let pad = Tensor::<LibTorch, 2, Bool>::from_data([[false; 5], [false, false, false, false, true]], &dev);
        let fused = encoder_layer(&layer.layers[0], &x, &pad, 1e-5).expect("the fused path on LibTorch");
        let burns = layer.forward(TransformerEncoderInput::new(x).mask_pad(pad));
        close(fused.flatten(1, 2), burns.flatten(1, 2), "encoder layer");
        // Dropout MLP layer: no dropout off autodiff.
        let lin = burn::nn::LinearConfig::new(12, 64).init::<LibTorch>(&dev);
        let x = Tensor::<LibTorch, 2>::random([64, 12], Distribution::Normal(0.0, 1.0), &dev);
        let fused = linear_relu_dropout(&lin, 0.5, &x).expect("the fused path on LibTorch");
        close(fused, burn::tensor::activation::relu(lin.forward(x.clone())), "linear relu dropout");
        // LayerNorm MLP layer.
        let norm = burn::nn::LayerNormConfig::new(64).with_epsilon(1e-5).init::<LibTorch>(&dev);
        let fused = linear_norm_relu(&lin, &norm, 1e-5, &x).expect("the fused path on LibTorch");
        close(fused, burn::tensor::activation::relu(norm.forward(lin.forward(x))), "linear norm relu");
    }
}
