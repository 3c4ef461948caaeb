//! Behaviour cloning of the chunk head (multi-task: the instruction is an input).
//!
//! Loss, for a batch of frames t with chunk targets a_{t:t+H} (normalised, masked past the
//! episode end by m_i ∈ {0, 1}):
//!
//! ```text
//! L_BC = Σ_b Σ_{i<H} m_{b,i} · ‖π(s_b)_i − a_{b,t+i}‖ₚᵖ / (D · Σ_b Σ_i m_{b,i})
//! ```
//! with p = 1 ([`ChunkLoss::L1`], ACT's loss: Zhao et al. 2023, §III-B, where it "leads to more
//! precise modeling of the action sequence" than L2) or p = 2 ([`ChunkLoss::L2`]). An L1 fit
//! follows the median label of similar states rather than the mean, so a minority of
//! mistaken demonstrations pulls it less.
//! optimised with Adam at the run's learning-rate schedule ([`crate::train::schedule`]); the
//! policy evaluated and saved is the exponential moving average of the weights when the run
//! keeps one ([`WeightAverage`]).

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::batch::tensor;
use crate::checkpoint::{load_module, recorder, save_module};
use crate::config::PolicyConfig;
use crate::error::{PolicyError, Result};
use crate::inference::MODEL_STEM;
use crate::model::ChunkPolicy;
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::data::HostBatch;
use crate::train::ema::WeightAverage;
use crate::train::Learner;

/// File stem of a run's averaged policy weights in its resume folder.
pub const AVERAGE_STEM: &str = "model_average";

/// The regression loss of a chunk policy's predictions against the recorded chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkLoss {
    /// Mean absolute error (ACT's).
    L1,
    /// Mean squared error (the only loss of runs saved before the choice existed).
    #[default]
    L2,
}

impl ChunkLoss {
    /// The loss's name: `l1` or `l2`.
    pub fn name(self) -> &'static str {
        match self {
            ChunkLoss::L1 => "l1",
            ChunkLoss::L2 => "l2",
        }
    }
}

/// The masked chunk regression loss (a scalar tensor) in the normalised action space: the mean
/// over unmasked rows and action dimensions of |π − a| (L1) or (π − a)² (L2), each sample
/// weighted by `weights` (`[B, 1]`, mean 1) when given.
pub fn chunk_loss<B: Backend>(
    loss: ChunkLoss,
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    weights: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let d = pred.dims()[2] as f64;
    let diff = pred - target;
    let per_row = match loss {
        ChunkLoss::L1 => diff.abs(),
        ChunkLoss::L2 => diff.clone() * diff,
    };
    let per_row = per_row.sum_dim(2).squeeze_dim::<2>(2) * mask.clone(); // [B, H]
    let per_row = match weights {
        Some(w) => per_row * w,
        None => per_row,
    };
    per_row.sum() / mask.sum().clamp_min(1.0).mul_scalar(d)
}

/// [`chunk_loss`] with [`ChunkLoss::L2`]: the held-out metric of every run, whatever it trains
/// with, so held-out losses compare across runs.
pub fn chunk_mse<B: Backend>(
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    weights: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    chunk_loss(ChunkLoss::L2, pred, target, mask, weights)
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
    crate::checkpoint::save_durably(&dir.join(stem), "optimiser", |partial| {
        recorder().record(optim.to_record(), partial.to_path_buf()).map_err(|e| e.to_string())
    })
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
    lr_factor: f64,
    loss: ChunkLoss,
    average: Option<WeightAverage<ChunkPolicy<B::InnerBackend>>>,
    device: B::Device,
}

impl<B: AutodiffBackend> BcLearner<B> {
    /// Starts from `model` (built from `config`) with learning rate `lr` and loss `loss`, without
    /// a weight average.
    pub fn new(
        model: ChunkPolicy<B>,
        config: &PolicyConfig,
        lr: f64,
        loss: ChunkLoss,
        device: &B::Device,
    ) -> BcLearner<B> {
        BcLearner {
            model,
            config: config.clone(),
            optim: adam(),
            lr,
            lr_factor: 1.0,
            loss,
            average: None,
            device: device.clone(),
        }
    }

    /// Keeps an exponential moving average of the weights with decay `decay` (0: none); the
    /// average is what [`Learner::policy`] returns and what is saved.
    pub fn with_weight_average(mut self, decay: f64) -> BcLearner<B> {
        self.average = (decay > 0.0).then(|| WeightAverage::new(decay));
        self
    }
}

/// Saves a learner's weight average (if any) into a resume folder.
pub fn save_average<B: Backend>(average: &Option<WeightAverage<ChunkPolicy<B>>>, dir: &Path) -> Result<()> {
    match average.as_ref().and_then(WeightAverage::get) {
        Some(avg) => save_module(avg, &dir.join(AVERAGE_STEM)),
        None => Ok(()),
    }
}

/// Loads a learner's weight average from a resume folder, when it keeps one and the file exists.
pub fn load_average<B: Backend>(
    average: &mut Option<WeightAverage<ChunkPolicy<B>>>,
    like: ChunkPolicy<B>,
    dir: &Path,
    device: &B::Device,
) -> Result<()> {
    if let Some(avg) = average.as_mut() {
        if dir.join(AVERAGE_STEM).with_extension("mpk").exists() {
            avg.set(load_module(like, &dir.join(AVERAGE_STEM), "averaged policy", device)?);
        }
    }
    Ok(())
}

impl<B: AutodiffBackend> Learner<B> for BcLearner<B> {
    fn update(&mut self, batch: &HostBatch, step: u64) -> Result<Vec<(&'static str, f64)>> {
        let obs = batch.obs.to_batch::<B>(&self.config, &self.device);
        let (target, mask) = targets::<B>(batch, self.config.horizon, self.config.action_dim, &self.device);
        let loss = chunk_loss(self.loss, self.model.forward(&obs), target, mask, None);
        let value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.lr * self.lr_factor, self.model.clone(), grads);
        if let Some(avg) = self.average.as_mut() {
            avg.update(self.model.valid(), step);
        }
        Ok(vec![("bc", value)])
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    fn policy(&self) -> ChunkPolicy<B::InnerBackend> {
        self.average.as_ref().and_then(WeightAverage::get).cloned().unwrap_or_else(|| self.model.valid())
    }

    fn save_weights(&self, dir: &Path) -> Result<()> {
        save_module(&self.policy(), &dir.join(MODEL_STEM))
    }

    fn save_resume(&self, dir: &Path) -> Result<()> {
        save_module(&self.model, &dir.join(MODEL_STEM))?;
        save_average(&self.average, dir)?;
        save_optim(&self.optim, dir, "optim_policy")
    }

    fn load_resume(&mut self, dir: &Path) -> Result<()> {
        self.model = load_module(self.model.clone(), &dir.join(MODEL_STEM), "policy", &self.device)?;
        load_average(&mut self.average, self.model.valid(), dir, &self.device)?;
        self.optim = load_optim(self.optim.clone(), dir, "optim_policy", &self.device)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    type B = Cpu;

    fn scalar(t: Tensor<B, 1>) -> f32 {
        t.into_scalar().elem::<f32>()
    }

    /// One sample, H = 2 rows of D = 2: row 0 misses by (1, −3), row 1 by (2, 2) and is masked.
    fn case() -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 2>) {
        let dev = Default::default();
        let pred = Tensor::<B, 3>::from_floats([[[1.0, -3.0], [2.0, 2.0]]], &dev);
        let target = Tensor::<B, 3>::zeros([1, 2, 2], &dev);
        let mask = Tensor::<B, 2>::from_floats([[1.0, 0.0]], &dev);
        (pred, target, mask)
    }

    #[test]
    fn the_losses_average_the_unmasked_rows_per_dimension() {
        let (pred, target, mask) = case();
        // L1: (|1| + |−3|) / 2 = 2; L2: (1 + 9) / 2 = 5; the masked row counts for nothing.
        let l1 = scalar(chunk_loss(ChunkLoss::L1, pred.clone(), target.clone(), mask.clone(), None));
        let l2 = scalar(chunk_loss(ChunkLoss::L2, pred.clone(), target.clone(), mask.clone(), None));
        assert!((l1 - 2.0).abs() < 1e-6, "L1 {l1}");
        assert!((l2 - 5.0).abs() < 1e-6, "L2 {l2}");
        assert_eq!(scalar(chunk_mse(pred, target, mask, None)), l2);
    }

    #[test]
    fn sample_weights_scale_each_sample() {
        let dev = Default::default();
        // Two samples: the first misses by 1 in every entry, the second by 3; weights 1.5 and 0.5.
        let pred = Tensor::<B, 3>::from_floats([[[1.0, 1.0]], [[3.0, -3.0]]], &dev);
        let target = Tensor::<B, 3>::zeros([2, 1, 2], &dev);
        let mask = Tensor::<B, 2>::ones([2, 1], &dev);
        let w = Tensor::<B, 2>::from_floats([[1.5], [0.5]], &dev);
        // L1: (1.5·2 + 0.5·6) / (2 rows · 2 dims) = 1.5; L2: (1.5·2 + 0.5·18) / 4 = 3.
        let l1 = scalar(chunk_loss(ChunkLoss::L1, pred.clone(), target.clone(), mask.clone(), Some(w.clone())));
        let l2 = scalar(chunk_loss(ChunkLoss::L2, pred, target, mask, Some(w)));
        assert!((l1 - 1.5).abs() < 1e-6, "L1 {l1}");
        assert!((l2 - 3.0).abs() < 1e-6, "L2 {l2}");
    }
}
