//! IDM training (SS-ORL): maximum likelihood of recorded actions on the labelled episodes, a
//! held-out 10% of them for validation, and the best checkpoint kept: the one whose clipped mean
//! has the lowest validation RMS error (training NLL when nothing is held out).
//!
//! Outputs in `out/`: `idm.mpk` (best weights), `idm.json` ([`IdmSpec`]) and `metrics.jsonl`.

use std::io::Write;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use dataset::Dataset;
use policy::train::backend_rng::{seeded, step_seed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{choose_labelled, episode_returns, fit_normalizer, inputs, split_validation, targets, IdmNormalizer};
use super::model::{tanh_gaussian_nll, Idm, IdmConfig};
use policy::train::adam::{adam, AdamOptimizer};

/// File stem of the weights.
pub const MODEL_STEM: &str = "idm";
/// The run description.
pub const SPEC_FILE: &str = "idm.json";

/// Errors of IDM training and labelling.
pub use crate::error::PretrainError as IdmError;

/// Training settings (SS-ORL defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdmTrainConfig {
    /// Gradient steps.
    pub steps: u64,
    /// Samples per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Fraction of the dataset's episodes used as the labelled set (SS-ORL: 0.1, from the
    /// lower-return half); 1 uses every episode.
    pub labelled_fraction: f64,
    /// Fraction of the labelled episodes held out for validation.
    pub val_fraction: f64,
    /// Validate (and keep the best) every this many steps.
    pub eval_every: u64,
    /// Seed of the episode choice, initialisation and batches.
    pub seed: u64,
    /// Hidden width of the MLP (SS-ORL: 1024).
    pub hidden: usize,
}

impl Default for IdmTrainConfig {
    fn default() -> Self {
        IdmTrainConfig {
            steps: 3000,
            batch_size: 1024,
            lr: 1e-4,
            labelled_fraction: 1.0,
            val_fraction: 0.1,
            eval_every: 100,
            seed: 0,
            hidden: 1024,
        }
    }
}

/// `idm.json`: what was trained, on what, and how well it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdmSpec {
    /// Network sizes.
    pub model: IdmConfig,
    /// Training settings.
    pub train: IdmTrainConfig,
    /// Normalisation of states and actions.
    pub normalizer: IdmNormalizer,
    /// `observation.state` width.
    pub state_dim: usize,
    /// `observation.environment_state` width.
    pub env_state_dim: usize,
    /// Names of the action components.
    pub action_names: Vec<String>,
    /// Control rate, Hz.
    pub fps: f64,
    /// The dataset trained on (canonical path).
    pub dataset: String,
    /// Labelled episodes (positions in the dataset), training and validation together.
    pub labelled_episodes: Vec<usize>,
    /// The validation episodes among them.
    pub val_episodes: Vec<usize>,
    /// Step of the kept weights.
    pub best_step: u64,
    /// Validation NLL of the kept weights (per sample, normalised actions; the training NLL
    /// when no episode was held out).
    pub val_nll: f64,
    /// Validation RMS error of the clipped mean per component, in units where the recorded
    /// range of each component spans [−1, 1].
    pub val_rmse: f64,
}

impl IdmSpec {
    /// Reads `dir/idm.json`.
    pub fn load(dir: &Path) -> Result<IdmSpec, IdmError> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| IdmError::Io { path: path.clone(), source })?;
        serde_json::from_str(&text).map_err(|e| IdmError::Config(format!("{}: {e}", path.display())))
    }
}

/// Names of the action components (from `info.json`; `a0, a1 …` when unnamed).
pub fn action_names(ds: &Dataset) -> Vec<String> {
    let named: Vec<String> = ds
        .info()
        .features
        .get(dataset::writer::ACTION)
        .and_then(|f| f.names.as_array().cloned())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if named.len() == ds.action_dim() {
        named
    } else {
        (0..ds.action_dim()).map(|k| format!("a{k}")).collect()
    }
}

/// Mean NLL and RMS error of the clipped mean (in units where the recorded action range spans
/// [−1, 1]) of `model` on host inputs `x` and targets `y` (model units).
pub fn evaluate<B: Backend>(model: &Idm<B>, cfg: &IdmConfig, x: &[f32], y: &[f32], device: &B::Device) -> (f64, f64) {
    let n = y.len() / cfg.action_dim.max(1);
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (mut nll, mut sq) = (0.0, 0.0);
    for start in (0..n).step_by(4096) {
        let m = (n - start).min(4096);
        let xt = Tensor::<B, 2>::from_data(
            TensorData::new(x[start * cfg.input_dim()..(start + m) * cfg.input_dim()].to_vec(), [m, cfg.input_dim()]),
            device,
        );
        let yt = Tensor::<B, 2>::from_data(
            TensorData::new(y[start * cfg.action_dim..(start + m) * cfg.action_dim].to_vec(), [m, cfg.action_dim]),
            device,
        );
        let (mean, log_std) = model.forward(xt);
        let l: f32 = tanh_gaussian_nll(mean.clone(), log_std, yt.clone()).into_scalar().elem();
        nll += f64::from(l) * m as f64;
        // In the units of the recorded range ([−1, 1]), after the clip labelling applies.
        let scale = f64::from(super::data::ACTION_SCALE);
        let d = mean.tanh().div_scalar(scale).clamp(-1.0, 1.0) - yt.div_scalar(scale);
        let s: f32 = (d.clone() * d).sum().into_scalar().elem();
        sq += f64::from(s);
    }
    (nll / n as f64, (sq / (n * cfg.action_dim) as f64).sqrt())
}

/// `n` rows drawn uniformly (with `rng`) from inputs `x` (rows of `input_dim`) and targets `y`
/// (the same rows, `y.len() / rows` wide): the batch of one update.
pub fn sample_batch(rng: &mut impl Rng, x: &[f32], y: &[f32], input_dim: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / input_dim.max(1);
    let da = y.len() / rows.max(1);
    let (mut xb, mut yb) = (Vec::with_capacity(n * input_dim), Vec::with_capacity(n * da));
    for _ in 0..n {
        let k = rng.random_range(0..rows.max(1));
        xb.extend_from_slice(&x[k * input_dim..(k + 1) * input_dim]);
        yb.extend_from_slice(&y[k * da..(k + 1) * da]);
    }
    (xb, yb)
}

/// The learner: network and optimiser. [`IdmLearner::step`] is the one update that
/// [`train_idm`] repeats (and `armstack bench train` times).
pub struct IdmLearner<B: AutodiffBackend> {
    /// The network.
    pub model: Idm<B>,
    config: IdmConfig,
    optim: AdamOptimizer<Idm<B>, B>,
    lr: f64,
    device: B::Device,
}

impl<B: AutodiffBackend> IdmLearner<B> {
    /// A freshly initialised network (drawn from the backend generator: seed it with
    /// [`seeded`] around this call), trained with Adam at `lr`.
    pub fn new(config: &IdmConfig, lr: f64, device: &B::Device) -> IdmLearner<B> {
        IdmLearner { model: config.init(device), config: config.clone(), optim: adam(), lr, device: device.clone() }
    }

    /// One Adam step on the NLL of targets `y` (`[n, action_dim]`, model units) given inputs `x`
    /// (`[n, input_dim]`). Returns the batch NLL before the step; a non-finite one is returned
    /// as is (the caller stops).
    pub fn step(&mut self, x: Vec<f32>, y: Vec<f32>) -> f32 {
        let n = y.len() / self.config.action_dim.max(1);
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x, [n, self.config.input_dim()]), &self.device);
        let yt = Tensor::<B, 2>::from_data(TensorData::new(y, [n, self.config.action_dim]), &self.device);
        let (mean, log_std) = self.model.forward(xt);
        let loss = tanh_gaussian_nll(mean, log_std, yt);
        let value: f32 = loss.clone().into_scalar().elem();
        if value.is_finite() {
            let grads = GradientsParams::from_grads(loss.backward(), &self.model);
            self.model = self.optim.step(self.lr, self.model.clone(), grads);
        }
        value
    }
}

/// Trains an IDM on `ds` into `out`. `on_eval(step, train_nll, val_nll)` after each validation.
pub fn train_idm<B: AutodiffBackend>(
    ds: &Dataset,
    dataset_path: &Path,
    cfg: &IdmTrainConfig,
    out: &Path,
    device: &B::Device,
    mut on_eval: impl FnMut(u64, f64, f64),
) -> Result<IdmSpec, IdmError> {
    if !ds.has_actions() {
        return Err(IdmError::Config(format!("{}: the dataset has no actions to learn from", dataset_path.display())));
    }
    if cfg.batch_size == 0 || cfg.steps == 0 || cfg.hidden == 0 {
        return Err(IdmError::Config("steps, batch size and hidden width must be positive".into()));
    }
    std::fs::create_dir_all(out).map_err(|source| IdmError::Io { path: out.to_path_buf(), source })?;
    let labelled = choose_labelled(&episode_returns(ds), cfg.labelled_fraction, cfg.seed);
    let (train_eps, val_eps) = split_validation(&labelled, cfg.val_fraction, cfg.seed);
    let norm = fit_normalizer(ds, &train_eps);
    let (x_train, f_train) = inputs(ds, &train_eps, &norm);
    let y_train = targets(ds, &f_train, &norm);
    let (x_val, f_val) = inputs(ds, &val_eps, &norm);
    let y_val = targets(ds, &f_val, &norm);
    let model_cfg =
        IdmConfig { hidden: cfg.hidden, ..IdmConfig::new(ds.state_dim() + ds.env_state_dim(), ds.action_dim()) };
    tracing::info!(
        labelled = labelled.len(),
        of = ds.episodes().len(),
        train_frames = f_train.len(),
        val_frames = f_val.len(),
        "IDM training"
    );
    let mut learner = {
        let _rng = seeded::<B>(device, cfg.seed);
        IdmLearner::<B>::new(&model_cfg, cfg.lr, device)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics =
        std::fs::File::create(&metrics_path).map_err(|source| IdmError::Io { path: metrics_path.clone(), source })?;
    let din = model_cfg.input_dim();
    let mut best: Option<(u64, f64, f64, f64)> = None;
    let mut window = (0.0, 0u64);
    for step in 1..=cfg.steps {
        let (xb, yb) = sample_batch(&mut rng, &x_train, &y_train, din, cfg.batch_size);
        let value = {
            // Dropout masks of this step: a function of (seed, step) only.
            let _rng = seeded::<B>(device, step_seed(cfg.seed, step));
            learner.step(xb, yb)
        };
        if !value.is_finite() {
            return Err(IdmError::Config(format!("the NLL is {value} at step {step}")));
        }
        window = (window.0 + f64::from(value), window.1 + 1);
        if step.is_multiple_of(cfg.eval_every.max(1)) || step == cfg.steps {
            let valid = learner.model.valid();
            // Without validation episodes, the training NLL picks the checkpoint.
            let train_nll = window.0 / window.1.max(1) as f64;
            let (val_nll, val_rmse) = if f_val.is_empty() {
                (train_nll, f64::NAN)
            } else {
                evaluate(&valid, &model_cfg, &x_val, &y_val, device)
            };
            window = (0.0, 0);
            writeln!(
                metrics,
                "{}",
                serde_json::json!({"step": step, "train_nll": train_nll, "val_nll": val_nll, "val_rmse": val_rmse})
            )
            .map_err(|source| IdmError::Io { path: metrics_path.clone(), source })?;
            on_eval(step, train_nll, val_nll);
            // The kept checkpoint is the one whose clipped mean (what becomes the label) is
            // closest to the held-out actions; the NLL alone keeps falling on training data as
            // σ shrinks and rises on held-out data long before the mean stops improving.
            let score = if val_rmse.is_finite() { val_rmse } else { val_nll };
            if best.is_none_or(|(_, _, _, b)| score < b) {
                best = Some((step, val_nll, val_rmse, score));
                policy::checkpoint::save_module(&valid, &out.join(MODEL_STEM))?;
            }
        }
    }
    let (best_step, val_nll, val_rmse, _) = best.unwrap_or((0, f64::NAN, f64::NAN, f64::NAN));
    let spec = IdmSpec {
        model: model_cfg,
        train: cfg.clone(),
        normalizer: norm,
        state_dim: ds.state_dim(),
        env_state_dim: ds.env_state_dim(),
        action_names: action_names(ds),
        fps: ds.fps(),
        dataset: dataset_path.canonicalize().unwrap_or_else(|_| dataset_path.to_path_buf()).display().to_string(),
        labelled_episodes: labelled,
        val_episodes: val_eps,
        best_step,
        val_nll,
        val_rmse,
    };
    let text = serde_json::to_string_pretty(&spec).map_err(|e| IdmError::Config(e.to_string()))?;
    policy::spec::write_atomic(&out.join(SPEC_FILE), text.as_bytes())?;
    Ok(spec)
}

/// Loads a trained IDM from `dir` (inference backend).
pub fn load_idm<B: Backend>(dir: &Path, device: &B::Device) -> Result<(IdmSpec, Idm<B>), IdmError> {
    let spec = IdmSpec::load(dir)?;
    let model = policy::checkpoint::load_module(spec.model.init(device), &dir.join(MODEL_STEM), "IDM", device)?;
    Ok((spec, model))
}
