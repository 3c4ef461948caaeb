//! The critic: an ensemble of K Q-functions over (observation, action chunk).
//!
//! Design choice — the critic does **not** share the policy's transformer. Each member is a
//! small MLP (Linear → LayerNorm → ReLU, repeated) over [normalised proprioception, object
//! state, a bag-of-words instruction embedding, pooled image features, the flattened chunk].
//! Reasons: (1) TD targets are noisy and non-stationary; letting their gradients into the trunk
//! that BC pre-trained would erase what imitation learned (CO-RFT fine-tunes the actor with a
//! BC anchor for the same reason); (2) an MLP ensemble of 10 costs a fraction of one transformer
//! pass, so the Cal-QL samples (30 per state) stay affordable on a CPU. For the vision variant
//! the critic does reuse the policy's image encoder, **detached**: pooled features of the
//! BC-trained ResNet feed the critic without a second convolutional network and without TD
//! gradients reaching it.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::config::{CriticConfig, PolicyConfig};
use crate::model::policy::ObsBatch;

/// One ensemble member.
#[derive(Module, Debug)]
pub struct QMember<B: Backend> {
    hidden: Vec<Linear<B>>,
    norms: Vec<LayerNorm<B>>,
    out: Linear<B>,
}

impl<B: Backend> QMember<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut h = x;
        for (lin, norm) in self.hidden.iter().zip(&self.norms) {
            h = relu(norm.forward(lin.forward(h)));
        }
        self.out.forward(h)
    }
}

/// The critic ensemble.
#[derive(Module, Debug)]
pub struct ChunkCritic<B: Backend> {
    words: Embedding<B>,
    members: Vec<QMember<B>>,
}

/// Width of the pooled image features the policy's encoder gives the critic.
pub fn image_feature_dim(policy: &PolicyConfig) -> usize {
    policy.image.as_ref().map_or(0, |i| i.cameras.len() * i.channels[2])
}

impl<B: Backend> ChunkCritic<B> {
    /// A fresh ensemble for `policy`'s observations and chunks.
    pub fn new(policy: &PolicyConfig, config: &CriticConfig, device: &B::Device) -> ChunkCritic<B> {
        let input = policy.state_dim
            + policy.env_state_dim
            + config.word_dim
            + image_feature_dim(policy)
            + policy.horizon * policy.action_dim;
        let members = (0..config.ensemble)
            .map(|_| {
                let mut hidden = Vec::new();
                let mut norms = Vec::new();
                let mut d_in = input;
                for _ in 0..config.layers {
                    hidden.push(LinearConfig::new(d_in, config.hidden).init(device));
                    norms.push(LayerNormConfig::new(config.hidden).init(device));
                    d_in = config.hidden;
                }
                QMember { hidden, norms, out: LinearConfig::new(d_in, 1).init(device) }
            })
            .collect();
        ChunkCritic { words: EmbeddingConfig::new(policy.vocab_size, config.word_dim).init(device), members }
    }

    /// Ensemble size K.
    pub fn ensemble(&self) -> usize {
        self.members.len()
    }

    /// Observation features `[B, F]`; `image_features` are the policy's pooled (and, in
    /// training, detached) image features.
    pub fn features(&self, obs: &ObsBatch<B>, image_features: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        let present = obs.words.clone().not_equal_elem(0).float().unsqueeze_dim::<3>(2); // [B, W, 1]
        let emb = self.words.forward(obs.words.clone()) * present.clone();
        let count = present.sum_dim(1).clamp_min(1.0); // [B, 1, 1]
        let bag = (emb.sum_dim(1) / count).squeeze_dim::<2>(1);
        let mut parts = vec![obs.state.clone()];
        if let Some(e) = &obs.env_state {
            parts.push(e.clone());
        }
        parts.push(bag);
        if let Some(f) = image_features {
            parts.push(f);
        }
        Tensor::cat(parts, 1)
    }

    /// Q-values `[B, K]` of `chunks` (`[B, H, D]`, normalised) from `features` (`[B, F]`).
    pub fn forward(&self, features: Tensor<B, 2>, chunks: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, h, d] = chunks.dims();
        let x = Tensor::cat(vec![features, chunks.reshape([b, h * d])], 1);
        Tensor::cat(self.members.iter().map(|m| m.forward(x.clone())).collect(), 1)
    }
}
