//! A plain multilayer perceptron: `layers` × (Linear → [LayerNorm] → ReLU), then a linear output.
//! The critic members, the edit policy and the dynamics discriminators are built from it.

use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// ε of the layer norms [`linear_norm_relu`] reads (burn's default, named: the fused LibTorch
/// layer needs it and burn keeps a norm's ε private). Build those norms with it.
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Sizes of an [`Mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input width.
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Output width.
    pub output: usize,
    /// LayerNorm after every hidden linear layer.
    pub layer_norm: bool,
    /// Start the output layer at zero (the MLP outputs 0 until it learns otherwise).
    pub zero_output: bool,
}

impl MlpConfig {
    /// An MLP `input → layers × hidden → output` without LayerNorm.
    pub fn new(input: usize, hidden: usize, layers: usize, output: usize) -> MlpConfig {
        MlpConfig { input, hidden, layers, output, layer_norm: false, zero_output: false }
    }

    /// With LayerNorm after every hidden layer.
    pub fn with_layer_norm(mut self) -> MlpConfig {
        self.layer_norm = true;
        self
    }

    /// With the output layer initialised to zero.
    pub fn with_zero_output(mut self) -> MlpConfig {
        self.zero_output = true;
        self
    }

    /// A freshly initialised MLP.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut hidden = Vec::with_capacity(self.layers);
        let mut norms = Vec::new();
        let mut d_in = self.input;
        for _ in 0..self.layers {
            hidden.push(LinearConfig::new(d_in, self.hidden).init(device));
            if self.layer_norm {
                norms.push(LayerNormConfig::new(self.hidden).with_epsilon(LAYER_NORM_EPSILON).init(device));
            }
            d_in = self.hidden;
        }
        let mut out = LinearConfig::new(d_in, self.output);
        if self.zero_output {
            out = out.with_initializer(Initializer::Zeros);
        }
        crate::train::backend_rng::initialised(Mlp { hidden, norms, out: out.init(device) })
    }
}

/// The network. Field names match the critic members' saved records.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    hidden: Vec<Linear<B>>,
    norms: Vec<LayerNorm<B>>,
    out: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `[B, input]` → `[B, output]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut h = x;
        for (i, lin) in self.hidden.iter().enumerate() {
            h = match self.norms.get(i) {
                Some(norm) => linear_norm_relu(lin, norm, h),
                None => relu(lin.forward(h)),
            };
        }
        self.out.forward(h)
    }
}

/// `relu(norm(lin(x)))`, `[B, in]` → `[B, hidden]`: one fused operation on the LibTorch
/// backends (`model::fused_libtorch`), burn's modules elsewhere. `norm` must have been built
/// with ε = [`LAYER_NORM_EPSILON`].
pub fn linear_norm_relu<B: Backend>(lin: &Linear<B>, norm: &LayerNorm<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) = crate::model::fused_libtorch::linear_norm_relu(lin, norm, LAYER_NORM_EPSILON, &x) {
        return y;
    }
    relu(norm.forward(lin.forward(x)))
}

#[cfg(all(test, feature = "libtorch"))]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::LibTorchTrain;

    /// burn's modules, layer by layer: the reference for the fused LibTorch layer.
    fn unfused(mlp: &Mlp<LibTorchTrain>, x: Tensor<LibTorchTrain, 2>) -> Tensor<LibTorchTrain, 2> {
        let mut h = x;
        for (lin, norm) in mlp.hidden.iter().zip(&mlp.norms) {
            h = relu(norm.forward(lin.forward(h)));
        }
        mlp.out.forward(h)
    }

    #[test]
    fn the_fused_libtorch_layer_matches_burns_modules_in_value_and_gradient() {
        let dev = Default::default();
        let mlp = MlpConfig::new(12, 32, 2, 3).with_layer_norm().init::<LibTorchTrain>(&dev);
        let x = Tensor::<LibTorchTrain, 2>::random([16, 12], Distribution::Normal(0.0, 1.0), &dev);
        let target = Tensor::<LibTorchTrain, 2>::random([16, 3], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused { mlp.forward(x.clone()) } else { unfused(&mlp, x.clone()) };
            let grads = (y.clone() - target.clone()).powf_scalar(2.0).sum().backward();
            let g = |t: Option<Tensor<crate::LibTorch, 2>>| t.expect("a gradient").into_data().to_vec::<f32>().unwrap();
            let g1 = |t: Option<Tensor<crate::LibTorch, 1>>| t.expect("a gradient").into_data().to_vec::<f32>().unwrap();
            let mut out = vec![y.into_data().to_vec::<f32>().unwrap(), g(x.grad(&grads))];
            for (lin, norm) in mlp.hidden.iter().zip(&mlp.norms) {
                out.push(g(lin.weight.grad(&grads)));
                out.push(g1(lin.bias.as_ref().and_then(|b| b.grad(&grads))));
                out.push(g1(norm.gamma.grad(&grads)));
                out.push(g1(norm.beta.as_ref().and_then(|b| b.grad(&grads))));
            }
            out
        };
        // The LibTorch training backend takes the fused path (else this compares burn with itself).
        assert!(crate::model::fused_libtorch::linear_norm_relu(&mlp.hidden[0], &mlp.norms[0], LAYER_NORM_EPSILON, &x)
            .is_some());
        let (fused, reference) = (run(true), run(false));
        let names = ["output", "∂x", "∂W1", "∂b1", "∂γ1", "∂β1", "∂W2", "∂b2", "∂γ2", "∂β2"];
        for ((name, a), b) in names.iter().zip(&fused).zip(&reference) {
            assert_eq!(a.len(), b.len(), "{name}");
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-4 * scale, "{name}: differs by {worst} (scale {scale})");
        }
        // The gradients are not all zero (the comparison above means something).
        assert!(fused[2].iter().any(|v| v.abs() > 1e-4), "∂W1 is zero");
    }
}
