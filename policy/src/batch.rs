//! Host-side batches: raw observations normalised into flat arrays, then moved to a device as an
//! [`ObsBatch`]. The same code path serves training samples and live inference.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::PolicyConfig;
use crate::error::{PolicyError, Result};
use crate::features::RawObs;
use crate::model::ObsBatch;
use crate::spec::PolicySpec;
use crate::vocab::PAD;

/// Mean and spread used to normalise 8-bit image values: x = (v / 255 − 0.5) / 0.25.
const IMAGE_MEAN: f32 = 0.5;
const IMAGE_SCALE: f32 = 0.25;

/// Appends interleaved RGB8 `rgb` as normalised channel-major planes (`[3, H, W]`), the image
/// encoder's input. Every model that feeds or pre-trains the image encoder uses this.
pub fn push_image_chw(rgb: &[u8], out: &mut Vec<f32>) {
    let pixels = rgb.len() / 3;
    for ch in 0..3 {
        out.extend((0..pixels).map(|p| (f32::from(rgb[p * 3 + ch]) / 255.0 - IMAGE_MEAN) / IMAGE_SCALE));
    }
}

/// Appends the model's object-state input for `raw` in raw units (width
/// [`PolicyConfig::env_input_dim`]): the first `env_state_dim` object-state values, zeros for the
/// objects `raw` lacks (a scene with fewer objects, [`PolicyConfig::pad_objects`]), then the
/// finger-tip features of the objects present, zeros for the missing ones. Training statistics
/// and every batch go through this one function.
pub fn push_env_input(config: &PolicyConfig, raw: &RawObs, out: &mut Vec<f32>) {
    let dim = config.env_state_dim;
    let env = &raw.env_state[..dim.min(raw.env_state.len())];
    out.extend_from_slice(env);
    out.resize(out.len() + dim - env.len(), 0.0);
    if config.tip_features {
        let start = out.len();
        crate::features::push_tip_features(&raw.state, env, out);
        out.resize(start + crate::features::tip_feature_dim(dim), 0.0);
    }
}

/// Normalised observations of a batch, row-major.
#[derive(Clone, Debug, Default)]
pub struct HostObs {
    /// Rows.
    pub n: usize,
    /// `[n, state_dim]`.
    pub state: Vec<f32>,
    /// `[n, env_input_dim]` (object state, then finger-tip features).
    pub env_state: Vec<f32>,
    /// `[n, max_words]`.
    pub words: Vec<i64>,
    /// `[n, cameras, 3, side, side]` (channel-first).
    pub images: Vec<f32>,
}

impl HostObs {
    /// Normalises and appends one observation; checks its widths against the model.
    pub fn push(&mut self, spec: &PolicySpec, raw: &RawObs) -> Result<()> {
        let c = &spec.config;
        if raw.state.len() != c.state_dim {
            return Err(PolicyError::Mismatch(format!(
                "the policy takes {} proprioception values, the observation has {}",
                c.state_dim,
                raw.state.len()
            )));
        }
        if raw.env_state.len() < c.env_state_dim && !c.pad_objects {
            return Err(PolicyError::Mismatch(format!(
                "the policy takes {} object-state values, the observation has {} (another scene?)",
                c.env_state_dim,
                raw.env_state.len()
            )));
        }
        let start = self.state.len();
        self.state.extend_from_slice(&raw.state);
        spec.normalizer.state.apply(&mut self.state[start..]);
        let start = self.env_state.len();
        push_env_input(c, raw, &mut self.env_state);
        spec.normalizer.env_state.apply(&mut self.env_state[start..]);
        self.words.extend(spec.vocab.encode(&raw.instruction, c.max_words));
        if let Some(img) = &c.image {
            if raw.images.len() != img.cameras.len() {
                return Err(PolicyError::Mismatch(format!(
                    "the policy takes {} cameras ({}), the observation has {}",
                    img.cameras.len(),
                    img.cameras.join(", "),
                    raw.images.len()
                )));
            }
            let pixels = img.size * img.size;
            for rgb in &raw.images {
                if rgb.len() != pixels * 3 {
                    return Err(PolicyError::Mismatch(format!(
                        "the policy takes {0}×{0} RGB images ({1} bytes), got {2} bytes",
                        img.size,
                        pixels * 3,
                        rgb.len()
                    )));
                }
                push_image_chw(rgb, &mut self.images);
            }
        }
        self.n += 1;
        Ok(())
    }

    /// Raw observations normalised for `spec`'s model and moved to `device` in one batch.
    pub fn batch_of<B: Backend>(spec: &PolicySpec, observations: &[RawObs], device: &B::Device) -> Result<ObsBatch<B>> {
        let mut host = HostObs::default();
        for o in observations {
            host.push(spec, o)?;
        }
        Ok(host.to_batch(&spec.config, device))
    }

    /// Appends every row of `other` (same model).
    pub fn extend(&mut self, other: HostObs) {
        self.n += other.n;
        self.state.extend(other.state);
        self.env_state.extend(other.env_state);
        self.words.extend(other.words);
        self.images.extend(other.images);
    }

    /// The batch on `device`.
    pub fn to_batch<B: Backend>(&self, config: &PolicyConfig, device: &B::Device) -> ObsBatch<B> {
        let n = self.n;
        let state = Tensor::from_data(TensorData::new(self.state.clone(), [n, config.state_dim]), device);
        let env_dim = config.env_input_dim();
        let env_state =
            (env_dim > 0).then(|| Tensor::from_data(TensorData::new(self.env_state.clone(), [n, env_dim]), device));
        let words = Tensor::from_data(TensorData::new(self.words.clone(), [n, config.max_words]), device);
        let images = config.image.as_ref().map(|img| {
            let shape = [n * img.cameras.len(), 3, img.size, img.size];
            Tensor::from_data(TensorData::new(self.images.clone(), shape), device)
        });
        // Padding mask: only instruction slots can be padding.
        let tokens = config.obs_tokens() + config.horizon;
        let word_start = 1 + usize::from(config.env_input_dim() > 0);
        let mut mask = vec![false; n * tokens];
        for r in 0..n {
            for w in 0..config.max_words {
                mask[r * tokens + word_start + w] = self.words[r * config.max_words + w] == PAD;
            }
        }
        let pad_mask = Tensor::from_data(TensorData::new(mask, [n, tokens]), device);
        ObsBatch { state, env_state, words, images, pad_mask }
    }
}

/// A `[rows, cols…]` float tensor from a flat vector.
pub fn tensor<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The values of a float tensor, row-major.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default()
}
