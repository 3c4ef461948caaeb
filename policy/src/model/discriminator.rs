//! H2O's dynamics discriminators: D_sa over (s, a) and D_sas over (s, a, s′), each an MLP
//! 256-256 with two logits (class 0: real, class 1: sim), Gaussian input noise σ = 0.1 in
//! training. Their class probabilities give the dynamics ratio
//! ```text
//! ρ(s, a, s′) = P_real(s′ | s, a) / P_sim(s′ | s, a) = (p_sas[0] · p_sa[1]) / (p_sas[1] · p_sa[0])
//! ```
//! Inputs are flat host vectors in normalised units: s = [proprioception, object state], a the
//! flattened chunk, s′ the observation the chunk leads to.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::model::mlp::{Mlp, MlpConfig};

/// The two discriminators.
#[derive(Module, Debug)]
pub struct Discriminators<B: Backend> {
    sa: Mlp<B>,
    sas: Mlp<B>,
}

/// Class log-probabilities `[B, 2]` of both discriminators: (log p_sa, log p_sas).
pub type ClassLogProbs<B> = (Tensor<B, 2>, Tensor<B, 2>);

impl<B: Backend> Discriminators<B> {
    /// Fresh discriminators for states of width `state_dim` and chunks of width `chunk_dim`,
    /// `hidden` wide, two hidden layers (H2O's discriminators: 256-256, Niu et al., 2022).
    pub fn new(state_dim: usize, chunk_dim: usize, hidden: usize, device: &B::Device) -> Discriminators<B> {
        Discriminators {
            sa: MlpConfig::new(state_dim + chunk_dim, hidden, 2, 2).init(device),
            sas: MlpConfig::new(2 * state_dim + chunk_dim, hidden, 2, 2).init(device),
        }
    }

    /// Class log-probabilities of (s, a, s′) (`[B, S]`, `[B, A]`, `[B, S]`).
    pub fn log_probs(&self, s: Tensor<B, 2>, a: Tensor<B, 2>, s_next: Tensor<B, 2>) -> ClassLogProbs<B> {
        let sa = Tensor::cat(vec![s, a], 1);
        let sas = Tensor::cat(vec![sa.clone(), s_next], 1);
        (log_softmax(self.sa.forward(sa), 1), log_softmax(self.sas.forward(sas), 1))
    }

    /// log ρ `[B, 1]` = log p_sas[0] − log p_sas[1] − log p_sa[0] + log p_sa[1].
    pub fn log_ratio(&self, s: Tensor<B, 2>, a: Tensor<B, 2>, s_next: Tensor<B, 2>) -> Tensor<B, 2> {
        let (sa, sas) = self.log_probs(s, a, s_next);
        let class = |t: &Tensor<B, 2>, k: usize| t.clone().narrow(1, k, 1);
        class(&sas, 0) - class(&sas, 1) - class(&sa, 0) + class(&sa, 1)
    }

    /// Cross-entropy of both discriminators on a real batch (class 0) and a sim batch (class 1),
    /// a scalar: mean over samples of −log p_sa[label] − log p_sas[label].
    pub fn loss(
        &self,
        real: (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>),
        sim: (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>),
    ) -> Tensor<B, 1> {
        let (r_sa, r_sas) = self.log_probs(real.0, real.1, real.2);
        let (s_sa, s_sas) = self.log_probs(sim.0, sim.1, sim.2);
        let nll_real = (r_sa.narrow(1, 0, 1) + r_sas.narrow(1, 0, 1)).mean().neg();
        let nll_sim = (s_sa.narrow(1, 1, 1) + s_sas.narrow(1, 1, 1)).mean().neg();
        (nll_real + nll_sim).mul_scalar(0.5)
    }
}
