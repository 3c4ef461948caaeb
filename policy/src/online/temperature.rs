//! The automatically tuned entropy temperature α of SAC-style policies:
//! L(α) = −log α · (log π(a|s) + H̄) averaged over the batch, H̄ the target entropy.

use burn::module::Param;
use burn::prelude::*;

/// log α as a trainable parameter.
#[derive(Module, Debug)]
pub struct Temperature<B: Backend> {
    log_alpha: Param<Tensor<B, 1>>,
}

impl<B: Backend> Temperature<B> {
    /// Starts at α = `init`.
    pub fn new(init: f64, device: &B::Device) -> Temperature<B> {
        Temperature { log_alpha: Param::from_tensor(Tensor::from_floats([init.max(1e-8).ln() as f32], device)) }
    }

    /// α (a `[1]` tensor, differentiable through log α).
    pub fn alpha(&self) -> Tensor<B, 1> {
        self.log_alpha.val().exp()
    }

    /// α as a number.
    pub fn value(&self) -> f64 {
        f64::from(self.alpha().into_scalar().elem::<f32>())
    }

    /// The temperature loss for log-densities `log_p` (`[B, 1]`, not differentiated) and target
    /// entropy `target`.
    pub fn loss(&self, log_p: Tensor<B, 2>, target: f64) -> Tensor<B, 1> {
        let gap = log_p.detach().add_scalar(target).mean();
        (self.log_alpha.val() * gap).neg()
    }
}
