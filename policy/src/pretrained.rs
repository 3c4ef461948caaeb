//! Pre-trained image encoders (V-PTR stage 1, e.g. `armstack train icvf`): a folder holding
//! `encoder.json` (the [`ImageEncoderConfig`] it was built from) and `encoder.mpk` (its weights).
//! `train bc|co-rft --encoder DIR` starts a policy's image encoder from them.
//!
//! What must match: the channels of the three stages and the token grid (they fix the weight
//! shapes). The input size may differ (the encoder is convolutional and ends in adaptive
//! pooling), but features are then computed at another scale than in pre-training, so a
//! mismatch is logged as a warning. Camera names do not matter: one encoder serves every camera.

use std::path::Path;

use burn::prelude::*;

use crate::checkpoint::{load_module, save_module};
use crate::config::ImageEncoderConfig;
use crate::error::{PolicyError, Result};
use crate::model::image::ImageEncoder;
use crate::spec::write_atomic;

/// File stem of the weights.
pub const ENCODER_STEM: &str = "encoder";
/// File name of the config.
pub const ENCODER_SPEC: &str = "encoder.json";

/// Saves `encoder` (built from `config`) into `dir`.
pub fn save_encoder<B: Backend>(encoder: &ImageEncoder<B>, config: &ImageEncoderConfig, dir: &Path) -> Result<()> {
    save_module(encoder, &dir.join(ENCODER_STEM))?;
    let text = serde_json::to_string_pretty(config).map_err(|e| PolicyError::Training(e.to_string()))?;
    write_atomic(&dir.join(ENCODER_SPEC), text.as_bytes())
}

/// Reads `dir/encoder.json`.
pub fn encoder_config(dir: &Path) -> Result<ImageEncoderConfig> {
    let path = dir.join(ENCODER_SPEC);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        PolicyError::checkpoint(
            &path,
            format!("not a pre-trained encoder folder (train one with `armstack train icvf`): {e}"),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| PolicyError::checkpoint(&path, e.to_string()))
}

/// Makes `target` (a policy's image config) able to take the encoder in `dir`: adopts its
/// channels and grid, warns when the input size differs. Returns the pre-trained config.
pub fn adopt_encoder_shape(dir: &Path, target: &mut ImageEncoderConfig) -> Result<ImageEncoderConfig> {
    let pre = encoder_config(dir)?;
    target.channels = pre.channels;
    target.grid = pre.grid;
    if pre.size != target.size {
        tracing::warn!(
            "the encoder in {} was pre-trained on {}×{} frames, the policy sees {}×{}: features change scale",
            dir.display(),
            pre.size,
            pre.size,
            target.size,
            target.size
        );
    }
    Ok(pre)
}

/// Loads the encoder in `dir` for a policy whose image config is `target`; its channels and
/// grid must equal the pre-trained ones ([`adopt_encoder_shape`] makes them so for a new policy).
pub fn load_encoder<B: Backend>(
    dir: &Path,
    target: &ImageEncoderConfig,
    device: &B::Device,
) -> Result<ImageEncoder<B>> {
    let pre = encoder_config(dir)?;
    if pre.channels != target.channels || pre.grid != target.grid {
        return Err(PolicyError::Mismatch(format!(
            "the encoder in {} has channels {:?} and a {}×{} grid, the policy's has {:?} and {}×{}",
            dir.display(),
            pre.channels,
            pre.grid,
            pre.grid,
            target.channels,
            target.grid,
            target.grid
        )));
    }
    load_module(ImageEncoder::new(&pre, device), &dir.join(ENCODER_STEM), "encoder", device)
}
