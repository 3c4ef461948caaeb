//! Values and gradients of the fused layers against burn's modules, on and off autodiff.

use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
use burn::tensor::Distribution;

use super::*;

/// Every tensor of `fused` (output, ∂x, then parameter gradients) equals `reference`'s within
/// 2e-4 of its largest magnitude, and ∂x (the second) is not zero.
fn assert_same_values(fused: &[Vec<f32>], reference: &[Vec<f32>]) {
    assert_eq!(fused.len(), reference.len());
    for (k, (a, b)) in fused.iter().zip(reference).enumerate() {
        assert_eq!(a.len(), b.len(), "tensor {k}");
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(worst <= 2e-4 * scale, "tensor {k}: differs by {worst} (scale {scale})");
    }
    assert!(fused[1].iter().any(|v| v.abs() > 1e-4), "∂x is zero");
}

#[test]
fn the_fused_encoder_layer_matches_burns_in_value_and_gradient() {
    let dev = Default::default();
    let encoder =
        TransformerEncoderConfig::new(16, 32, 4, 2).with_norm_first(true).with_dropout(0.0).init::<LibTorchTrain>(&dev);
    let x = Tensor::<LibTorchTrain, 3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &dev);
    // The last two tokens of the second sequence are padding.
    let pad =
        Tensor::<LibTorchTrain, 2, Bool>::from_data([[false; 5], [false, false, false, true, true], [false; 5]], &dev);
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
    assert_same_values(&run(true), &run(false));
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
            h = if fused {
                image_stage(stage, &h).expect("the fused path on LibTorchTrain")
            } else {
                stage.forward_burn(h)
            };
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
    assert_same_values(&run(true), &run(false));
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
    // With an input burn does not track (data), only the parameters are LibTorch leaves with
    // gradients; each must still reach its own parameter.
    let data = x.clone().set_require_grad(false);
    let grads = (linear_relu_dropout(&lin, 0.0, &data).expect("fused") * 1.5).sum().backward();
    let g_bias = lin.bias.as_ref().and_then(|b| b.grad(&grads)).expect("∂b with an untracked input");
    assert_eq!(g_bias.dims(), [64], "∂b has the bias's shape");
    let g_data = lin.weight.grad(&grads).expect("∂W with an untracked input");
    g_data.to_data().assert_approx_eq::<f32>(&g_burn.to_data(), burn::tensor::Tolerance::rel_abs(1e-4, 1e-4));
    // With dropout 0.1: survivors are scaled by 1/0.9, about a tenth of the positives are zero.
    let plain = burn::tensor::activation::relu(lin.forward(x.clone())).into_data().to_vec::<f32>().unwrap();
    let dropped = linear_relu_dropout(&lin, 0.1, &x).expect("fused").into_data().to_vec::<f32>().unwrap();
    let positive: Vec<(f32, f32)> =
        plain.iter().zip(&dropped).filter(|(p, _)| **p > 1e-3).map(|(p, d)| (*p, *d)).collect();
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
