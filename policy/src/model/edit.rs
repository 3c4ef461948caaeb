//! EXPO's edit policy π_edit(u | s, a): a light tanh-Gaussian MLP over (observation features,
//! chunk). The edited chunk is clip(a + β·u) with u ∈ (−1, 1)^{H×D}, so an edit moves every
//! action component by less than β (normalised units).

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::gaussian::tanh_gaussian;
use crate::model::critic::{obs_feature_dim, obs_features};
use crate::model::mlp::{Mlp, MlpConfig};
use crate::model::ObsBatch;

/// Bounds of the edit policy's log standard deviation.
pub const LOG_STD_RANGE: (f64, f64) = (-5.0, 2.0);

/// Sizes of the edit policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditConfig {
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Instruction embedding width (bag of words).
    pub word_dim: usize,
}

impl Default for EditConfig {
    /// 3 × 256 (EXPO's edit policy: Dong et al., 2025).
    fn default() -> EditConfig {
        EditConfig { hidden: 256, layers: 3, word_dim: 16 }
    }
}

/// The edit policy.
#[derive(Module, Debug)]
pub struct EditPolicy<B: Backend> {
    words: Embedding<B>,
    net: Mlp<B>,
    chunk: usize,
}

impl<B: Backend> EditPolicy<B> {
    /// A fresh edit policy for `policy`'s observations and chunks.
    pub fn new(policy: &PolicyConfig, config: &EditConfig, device: &B::Device) -> EditPolicy<B> {
        let chunk = policy.horizon * policy.action_dim;
        let input = obs_feature_dim(policy, config.word_dim) + chunk;
        crate::train::backend_rng::initialised(EditPolicy {
            words: EmbeddingConfig::new(policy.vocab_size, config.word_dim).init(device),
            net: MlpConfig::new(input, config.hidden, config.layers, 2 * chunk).init(device),
            chunk,
        })
    }

    /// Observation features `[B, F]` (`image_features`: the base policy's pooled image features).
    pub fn features(&self, obs: &ObsBatch<B>, image_features: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        obs_features(&self.words, obs, image_features)
    }

    /// Pre-squash mean and log σ (`[B, H·D]` each) of u for chunks `[B, H, D]`.
    pub fn distribution(&self, features: Tensor<B, 2>, chunks: Tensor<B, 3>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let [b, h, d] = chunks.dims();
        let out = self.net.forward(Tensor::cat(vec![features, chunks.reshape([b, h * d])], 1));
        let mean = out.clone().narrow(1, 0, self.chunk);
        let log_std = out.narrow(1, self.chunk, self.chunk).clamp(LOG_STD_RANGE.0, LOG_STD_RANGE.1);
        (mean, log_std)
    }

    /// A sampled edit u (`[B, H·D]`, reparameterised by the standard noise `eps`) and log π_edit(u)
    /// (`[B, 1]`). With `eps = None`, the deterministic edit tanh(mean) and a zero log density.
    pub fn sample(
        &self,
        features: Tensor<B, 2>,
        chunks: Tensor<B, 3>,
        eps: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (mean, log_std) = self.distribution(features, chunks);
        match eps {
            Some(eps) => tanh_gaussian(mean, log_std, eps),
            None => {
                let b = mean.dims()[0];
                let device = mean.device();
                (mean.tanh(), Tensor::zeros([b, 1], &device))
            }
        }
    }
}

/// The edited chunks clip(a + β·u, −1, 1), `[B, H, D]`, for chunks `a` and edits `u` (`[B, H·D]`).
pub fn apply_edit<B: Backend>(chunks: Tensor<B, 3>, u: Tensor<B, 2>, beta: f64) -> Tensor<B, 3> {
    let [b, h, d] = chunks.dims();
    (chunks + u.reshape([b, h, d]).mul_scalar(beta)).clamp(-1.0, 1.0)
}
