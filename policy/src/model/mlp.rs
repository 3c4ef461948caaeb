//! A plain multilayer perceptron: `layers` × (Linear → [LayerNorm] → ReLU), then a linear output.
//! The critic members, the edit policy and the dynamics discriminators are built from it.

use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

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
                norms.push(LayerNormConfig::new(self.hidden).init(device));
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
            h = lin.forward(h);
            if let Some(norm) = self.norms.get(i) {
                h = norm.forward(h);
            }
            h = relu(h);
        }
        self.out.forward(h)
    }
}
