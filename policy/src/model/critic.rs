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

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

use crate::config::{CriticConfig, PolicyConfig};
use crate::model::mlp::{Mlp, MlpConfig};
use crate::model::policy::ObsBatch;

/// The critic ensemble.
#[derive(Module, Debug)]
pub struct ChunkCritic<B: Backend> {
    words: Embedding<B>,
    members: Vec<Mlp<B>>,
}

/// Width of the pooled image features the policy's encoder gives the critic.
pub fn image_feature_dim(policy: &PolicyConfig) -> usize {
    policy.image.as_ref().map_or(0, |i| i.cameras.len() * i.channels[2])
}

/// The flat observation features the MLP heads read (critic, edit policy, discriminators):
/// [normalised proprioception, object state, the mean embedding of the instruction's words
/// (`words`, padding left out), pooled image features], `[B, F]`.
pub fn obs_features<B: Backend>(
    words: &Embedding<B>,
    obs: &ObsBatch<B>,
    image_features: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    let present = obs.words.clone().not_equal_elem(0).float().unsqueeze_dim::<3>(2); // [B, W, 1]
    let emb = words.forward(obs.words.clone()) * present.clone();
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

/// Width of [`obs_features`] for `policy`'s observations with a `word_dim` instruction embedding.
pub fn obs_feature_dim(policy: &PolicyConfig, word_dim: usize) -> usize {
    policy.state_dim + policy.env_input_dim() + word_dim + image_feature_dim(policy)
}

impl<B: Backend> ChunkCritic<B> {
    /// A fresh ensemble for `policy`'s observations and chunks.
    pub fn new(policy: &PolicyConfig, config: &CriticConfig, device: &B::Device) -> ChunkCritic<B> {
        let input = obs_feature_dim(policy, config.word_dim) + policy.horizon * policy.action_dim;
        let member = MlpConfig::new(input, config.hidden, config.layers, 1).with_layer_norm();
        let members = (0..config.ensemble).map(|_| member.init(device)).collect();
        crate::train::backend_rng::initialised(ChunkCritic {
            words: EmbeddingConfig::new(policy.vocab_size, config.word_dim).init(device),
            members,
        })
    }

    /// Ensemble size K.
    pub fn ensemble(&self) -> usize {
        self.members.len()
    }

    /// Observation features `[B, F]`; `image_features` are the policy's pooled (and, in
    /// training, detached) image features.
    pub fn features(&self, obs: &ObsBatch<B>, image_features: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        obs_features(&self.words, obs, image_features)
    }

    /// Q-values `[n·m, K]` of `chunks` (`[n·m, H, D]`, normalised) from `features` (`[n, F]`):
    /// chunk rows `i·m .. (i+1)·m` are `m` chunks scored in state `i` (`m` = 1: one chunk per
    /// state). The observation part of each member's first layer is computed once per state
    /// ([`Mlp::forward_grouped`]), so scoring many chunks per state (Cal-QL samples, EXPO's
    /// candidates) costs little more than scoring the chunks alone.
    ///
    /// # Panics
    /// When `n` does not divide the chunk rows.
    pub fn forward(&self, features: Tensor<B, 2>, chunks: Tensor<B, 3>) -> Tensor<B, 2> {
        let rows = flat_chunks(chunks);
        Tensor::cat(self.members.iter().map(|m| m.forward_grouped(features.clone(), rows.clone())).collect(), 1)
    }

    /// Q-values `[n·m, |members|]` of the listed ensemble `members` only (cheaper than all K);
    /// shapes as [`ChunkCritic::forward`].
    pub fn forward_members(&self, features: Tensor<B, 2>, chunks: Tensor<B, 3>, members: &[usize]) -> Tensor<B, 2> {
        let rows = flat_chunks(chunks);
        Tensor::cat(
            members
                .iter()
                .filter_map(|&k| self.members.get(k))
                .map(|m| m.forward_grouped(features.clone(), rows.clone()))
                .collect(),
            1,
        )
    }
}

/// `[B, H, D]` → `[B, H·D]`.
fn flat_chunks<B: Backend>(chunks: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, h, d] = chunks.dims();
    chunks.reshape([b, h * d])
}
