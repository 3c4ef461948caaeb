//! The IDM network: an MLP over (s_{t−1}, s_t, s_{t+1}) giving a tanh-Gaussian over a_t
//! (actions normalised to [−1, 1]), and its negative log-likelihood.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Bounds of the predicted log standard deviation.
pub const LOG_STD_RANGE: (f64, f64) = (-5.0, 2.0);
/// Actions are clipped to ±this before `atanh` (recorded actions sit on the box's faces).
pub const ACTION_CLIP: f64 = 0.999;

/// IDM sizes (SS-ORL: 2 hidden layers of 1024, dropout 0.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdmConfig {
    /// Width of one state s (proprioception + object state).
    pub obs_dim: usize,
    /// Action width.
    pub action_dim: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Dropout after every hidden layer (training only).
    pub dropout: f64,
}

impl IdmConfig {
    /// The paper's sizes for states of `obs_dim` and actions of `action_dim`.
    pub fn new(obs_dim: usize, action_dim: usize) -> IdmConfig {
        IdmConfig { obs_dim, action_dim, hidden: 1024, layers: 2, dropout: 0.1 }
    }

    /// Input width: three states.
    pub fn input_dim(&self) -> usize {
        3 * self.obs_dim
    }

    /// Builds the network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Idm<B> {
        let mut hidden = Vec::new();
        let mut d = self.input_dim();
        for _ in 0..self.layers {
            hidden.push(LinearConfig::new(d, self.hidden).init(device));
            d = self.hidden;
        }
        policy::train::backend_rng::initialised(Idm {
            hidden,
            dropout: DropoutConfig::new(self.dropout).init(),
            out: LinearConfig::new(d, 2 * self.action_dim).init(device),
            action_dim: self.action_dim,
        })
    }
}

/// The IDM.
#[derive(Module, Debug)]
pub struct Idm<B: Backend> {
    hidden: Vec<Linear<B>>,
    dropout: Dropout,
    out: Linear<B>,
    action_dim: usize,
}

impl<B: Backend> Idm<B> {
    /// `x`: `[N, 3·obs_dim]` normalised states → (mean, log std), each `[N, action_dim]`, of
    /// the Gaussian before the tanh.
    pub fn forward(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut h = x;
        for l in &self.hidden {
            h = hidden_layer(l, &self.dropout, h);
        }
        let y = self.out.forward(h);
        let d = self.action_dim;
        let mean = y.clone().narrow(1, 0, d);
        let log_std = y.narrow(1, d, d).clamp(LOG_STD_RANGE.0, LOG_STD_RANGE.1);
        (mean, log_std)
    }

    /// The proxy action: tanh of the mean, in normalised units (inside [−1, 1]).
    pub fn predict(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward(x).0.tanh()
    }
}

/// One hidden layer, `dropout(relu(lin(x)))`: one fused LibTorch operation on the LibTorch
/// backends (`policy::model::fused_libtorch`), burn's modules elsewhere.
fn hidden_layer<B: Backend>(lin: &Linear<B>, dropout: &Dropout, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) = policy::model::fused_libtorch::linear_relu_dropout(lin, dropout.prob, &x) {
        return y;
    }
    dropout.forward(relu(lin.forward(x)))
}

/// Mean negative log-likelihood per sample of normalised actions `a` (`[N, D]`, clipped to
/// ±[`ACTION_CLIP`]) under tanh(N(mean, exp(log_std)²)):
/// −log p(a) = Σ_d [½((atanh a − μ)/σ)² + log σ + ½ log 2π + log(1 − a²)].
pub fn tanh_gaussian_nll<B: Backend>(mean: Tensor<B, 2>, log_std: Tensor<B, 2>, a: Tensor<B, 2>) -> Tensor<B, 1> {
    let a = a.clamp(-ACTION_CLIP, ACTION_CLIP);
    let u = ((a.clone() + 1.0) / (a.clone().neg() + 1.0)).log() * 0.5;
    let z = (u - mean) / log_std.clone().exp();
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let jacobian = (a.clone() * a).neg().add_scalar(1.0).log();
    let nll = z.clone() * z * 0.5 + log_std + half_log_2pi + jacobian;
    nll.sum_dim(1).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::Cpu;

    #[test]
    fn nll_equals_the_hand_computed_value() {
        let device = Default::default();
        let t = |v: Vec<f32>| Tensor::<Cpu, 2>::from_data(TensorData::new(v, [2, 1]), &device);
        // Sample 1: a = 0 → u = 0; μ = 0.5, log σ = 0 → ½·0.25 + 0 + 0.918939 + log 1 = 1.043939.
        // Sample 2: a = 0.5 → u = atanh 0.5 = 0.549306; μ = 0, log σ = ln 2 → z = 0.274653;
        // ½z² = 0.037717; + 0.693147 + 0.918939 + log 0.75 (−0.287682) = 1.362121.
        let nll = tanh_gaussian_nll(t(vec![0.5, 0.0]), t(vec![0.0, 2f32.ln()]), t(vec![0.0, 0.5]));
        let v = nll.into_scalar();
        assert!((v - (1.043939 + 1.362121) / 2.0).abs() < 1e-5, "{v}");
    }
}
