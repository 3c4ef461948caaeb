//! Behaviour cloning of the chunk head (multi-task: the instruction is an input).
//!
//! Loss, for a batch of frames t with chunk targets a_{t:t+H} (normalised, masked past the
//! episode end by m_i ∈ {0, 1}):
//!
//! ```text
//! L_BC = Σ_b Σ_{i<H} m_{b,i} · ‖π(s_b)_i − a_{b,t+i}‖² / (D · Σ_b Σ_i m_{b,i})
//! ```
//! optimised with Adam.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;

use crate::batch::tensor;
use crate::checkpoint::{load_module, recorder, save_module};
use crate::config::PolicyConfig;
use crate::error::{PolicyError, Result};
use crate::inference::MODEL_STEM;
use crate::model::ChunkPolicy;
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::data::HostBatch;
use crate::train::Learner;

/// The masked chunk regression loss (a scalar tensor), each sample weighted by `weights`
/// (`[B, 1]`, mean 1) when given.
pub fn chunk_mse<B: Backend>(
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    weights: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let d = pred.dims()[2] as f64;
    let diff = pred - target;
    let sq = (diff.clone() * diff).sum_dim(2).squeeze_dim::<2>(2) * mask.clone(); // [B, H]
    let sq = match weights {
        Some(w) => sq * w,
        None => sq,
    };
    sq.sum() / mask.sum().clamp_min(1.0).mul_scalar(d)
}

/// Target tensors of a host batch: (chunks `[B, H, D]`, mask `[B, H]`).
pub fn targets<B: Backend>(batch: &HostBatch, h: usize, d: usize, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let n = batch.obs.n;
    (tensor(batch.actions.clone(), [n, h, d], device), tensor(batch.action_mask.clone(), [n, h], device))
}

/// Saves an optimiser's state to `dir/<stem>.mpk`.
pub fn save_optim<B: AutodiffBackend, M: AutodiffModule<B>>(
    optim: &AdamOptimizer<M, B>,
    dir: &Path,
    stem: &str,
) -> Result<()> {
    let path = dir.join(stem);
    recorder()
        .record(optim.to_record(), path.clone())
        .map_err(|e| PolicyError::checkpoint(path.with_extension("mpk"), format!("cannot save optimiser: {e}")))
}

/// Loads an optimiser's state from `dir/<stem>.mpk`.
pub fn load_optim<B: AutodiffBackend, M: AutodiffModule<B>>(
    optim: AdamOptimizer<M, B>,
    dir: &Path,
    stem: &str,
    device: &B::Device,
) -> Result<AdamOptimizer<M, B>> {
    let path = dir.join(stem);
    let record = recorder()
        .load(path.clone(), device)
        .map_err(|e| PolicyError::checkpoint(path.with_extension("mpk"), format!("cannot load optimiser: {e}")))?;
    Ok(optim.load_record(record))
}

/// BC learner state.
pub struct BcLearner<B: AutodiffBackend> {
    /// The policy being trained.
    pub model: ChunkPolicy<B>,
    config: PolicyConfig,
    optim: AdamOptimizer<ChunkPolicy<B>, B>,
    lr: f64,
    device: B::Device,
}

impl<B: AutodiffBackend> BcLearner<B> {
    /// Starts from `model` (built from `config`) with learning rate `lr`.
    pub fn new(model: ChunkPolicy<B>, config: &PolicyConfig, lr: f64, device: &B::Device) -> BcLearner<B> {
        BcLearner { model, config: config.clone(), optim: adam(), lr, device: device.clone() }
    }
}

impl<B: AutodiffBackend> Learner<B> for BcLearner<B> {
    fn update(&mut self, batch: &HostBatch, _step: u64) -> Result<Vec<(&'static str, f64)>> {
        let obs = batch.obs.to_batch::<B>(&self.config, &self.device);
        let (target, mask) = targets::<B>(batch, self.config.horizon, self.config.action_dim, &self.device);
        let loss = chunk_mse(self.model.forward(&obs), target, mask, None);
        let value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.lr, self.model.clone(), grads);
        Ok(vec![("bc", value)])
    }

    fn policy(&self) -> ChunkPolicy<B::InnerBackend> {
        self.model.valid()
    }

    fn save_weights(&self, dir: &Path) -> Result<()> {
        save_module(&self.model, &dir.join(MODEL_STEM))
    }

    fn save_resume(&self, dir: &Path) -> Result<()> {
        save_module(&self.model, &dir.join(MODEL_STEM))?;
        save_optim(&self.optim, dir, "optim_policy")
    }

    fn load_resume(&mut self, dir: &Path) -> Result<()> {
        self.model = load_module(self.model.clone(), &dir.join(MODEL_STEM), "policy", &self.device)?;
        self.optim = load_optim(self.optim.clone(), dir, "optim_policy", &self.device)?;
        Ok(())
    }
}
