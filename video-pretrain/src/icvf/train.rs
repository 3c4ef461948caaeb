//! ICVF training on a frame store: the algorithm box of V-PTR stage 1.
//!
//! Each step: sample (s, s′, g, z) → encode the 4·B frames with the online network and with the
//! EMA target → V(s, g, z), V̄(s′, g, z), V̄(s′, z, z), V̄(s, z, z) → expectile-weighted TD loss
//! ([`icvf_loss`]) → Adam step → θ̄ ← (1 − τ)θ̄ + τθ. Outputs in `out/`: `icvf.mpk` (the whole
//! network), `encoder.mpk` (φ's trunk, which `train bc|co-rft --encoder` loads into a policy),
//! `icvf.json` and `metrics.jsonl`.

use std::io::Write;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use policy::train::backend_rng::{seeded, step_seed};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::loss::{icvf_loss, IcvfStats, IcvfTerms};
use super::model::{Icvf, IcvfConfig};
use super::sampling::{GoalMix, IcvfIndices, IcvfSampler};
use crate::store::FrameStore;
use policy::train::adam::{adam, AdamOptimizer};

/// File stem of the whole network.
pub const MODEL_STEM: &str = "icvf";
/// File stem of the encoder alone (with `encoder.json`: [`policy::pretrained`]).
pub use policy::pretrained::ENCODER_STEM;
/// The run description.
pub const SPEC_FILE: &str = "icvf.json";

/// Errors of ICVF training.
pub use crate::error::PretrainError as IcvfError;

/// Training settings (paper defaults where the paper gives one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IcvfTrainConfig {
    /// Gradient steps.
    pub steps: u64,
    /// Samples per batch (64 for vision in the paper).
    pub batch_size: usize,
    /// Adam learning rate (5e-5 for vision in the paper).
    pub lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Expectile τ on the intent advantage.
    pub expectile: f64,
    /// Target EMA rate.
    pub ema: f64,
    /// Seed of initialisation and sampling.
    pub seed: u64,
    /// Log a metrics line every this many steps.
    pub log_every: u64,
}

impl Default for IcvfTrainConfig {
    fn default() -> Self {
        IcvfTrainConfig {
            steps: 2000,
            batch_size: 64,
            lr: 5e-5,
            gamma: 0.99,
            expectile: 0.9,
            ema: 0.005,
            seed: 0,
            log_every: 50,
        }
    }
}

/// `icvf.json`: what was trained, on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IcvfSpec {
    /// Network sizes (the encoder config is what a policy must match).
    pub model: IcvfConfig,
    /// Training settings.
    pub train: IcvfTrainConfig,
    /// The frame store trained on.
    pub frames: String,
    /// Loss over the last logging window.
    pub final_loss: f64,
}

impl IcvfSpec {
    /// Reads `dir/icvf.json`.
    pub fn load(dir: &Path) -> Result<IcvfSpec, IcvfError> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| IcvfError::Io { path: path.clone(), source })?;
        serde_json::from_str(&text).map_err(|e| IcvfError::Config(format!("{}: {e}", path.display())))
    }
}

/// Normalised frames `[n, 3, S, S]` for store indices.
fn frames<B: Backend>(store: &FrameStore, idx: &[usize], device: &B::Device) -> Tensor<B, 4> {
    let size = store.manifest.size;
    let mut host = Vec::with_capacity(idx.len() * 3 * size * size);
    for &i in idx {
        policy::batch::push_image_chw(store.frame(i), &mut host);
    }
    Tensor::from_data(TensorData::new(host, [idx.len(), 3, size, size]), device)
}

/// r = 1[a = b] − 1 and m = 1 − 1[a = b] per sample.
fn reward_mask<B: Backend>(a: &[usize], b: &[usize], device: &B::Device) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let same: Vec<f32> = a.iter().zip(b).map(|(x, y)| f32::from(u8::from(x == y))).collect();
    let r: Vec<f32> = same.iter().map(|s| s - 1.0).collect();
    let m: Vec<f32> = same.iter().map(|s| 1.0 - s).collect();
    let n = a.len();
    (Tensor::from_data(TensorData::new(r, [n]), device), Tensor::from_data(TensorData::new(m, [n]), device))
}

/// The loss terms of one batch.
pub fn batch_terms<B: AutodiffBackend>(
    model: &Icvf<B>,
    target: &Icvf<B::InnerBackend>,
    store: &FrameStore,
    ix: &IcvfIndices,
    device: &B::Device,
) -> IcvfTerms<B> {
    let n = ix.s.len();
    // The online network sees only what V(s, g, z) reads: encoding s′ too (it only enters the
    // targets) cost a quarter of the encoder's forward and backward pass for a zero gradient.
    let online: Vec<usize> = [&ix.s, &ix.g, &ix.z].into_iter().flatten().copied().collect();
    let f = model.features(frames::<B>(store, &online, device));
    let part = |k: usize| f.clone().narrow(0, k * n, n);
    let v = model.values(part(0), part(1), part(2));
    let all: Vec<usize> = [&ix.s, &ix.next, &ix.g, &ix.z].into_iter().flatten().copied().collect();
    let tf = target.features(frames::<B::InnerBackend>(store, &all, device));
    let tpart = |k: usize| tf.clone().narrow(0, k * n, n);
    let lift = Tensor::<B, 2>::from_inner;
    let (r, m) = reward_mask::<B>(&ix.s, &ix.g, device);
    let (r_z, m_z) = reward_mask::<B>(&ix.s, &ix.z, device);
    IcvfTerms {
        v,
        next_g: lift(target.values(tpart(1), tpart(2), tpart(3))),
        next_z: lift(target.values(tpart(1), tpart(3), tpart(3))),
        now_z: lift(target.values(tpart(0), tpart(3), tpart(3))),
        r,
        m,
        r_z,
        m_z,
    }
}

/// The goal sampler over `store`'s episodes (paper mix); fails when no episode has two frames.
pub fn store_sampler(store: &FrameStore) -> Result<IcvfSampler, IcvfError> {
    let episodes = store.manifest.episodes.iter().map(|e| (e.start as usize, e.len as usize)).collect();
    IcvfSampler::new(episodes, GoalMix::default())
        .ok_or_else(|| IcvfError::Config("the frame store has no episode with two frames".into()))
}

/// The learner: online network, EMA target, optimiser. [`IcvfLearner::step`] is the one update
/// that [`train_icvf`] repeats (and `armstack bench train` times).
pub struct IcvfLearner<B: AutodiffBackend> {
    /// The online network.
    pub model: Icvf<B>,
    target: Icvf<B::InnerBackend>,
    optim: AdamOptimizer<Icvf<B>, B>,
    cfg: IcvfTrainConfig,
    device: B::Device,
}

impl<B: AutodiffBackend> IcvfLearner<B> {
    /// A freshly initialised network (drawn from the backend generator: seed it with
    /// [`seeded`] around this call) with its target equal to it.
    pub fn new(model_cfg: &IcvfConfig, cfg: &IcvfTrainConfig, device: &B::Device) -> IcvfLearner<B> {
        let model: Icvf<B> = model_cfg.init(device);
        IcvfLearner { target: model.valid(), model, optim: adam(), cfg: cfg.clone(), device: device.clone() }
    }

    /// One update on the frames `ix` of `store`: loss, Adam step, θ̄ ← (1 − τ)θ̄ + τθ. Returns
    /// the batch's statistics.
    pub fn step(&mut self, store: &FrameStore, ix: &IcvfIndices) -> IcvfStats {
        let terms = batch_terms(&self.model, &self.target, store, ix, &self.device);
        let (loss, stats) = icvf_loss(terms, self.cfg.gamma, self.cfg.expectile);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.cfg.lr, self.model.clone(), grads);
        self.target = policy::train::ema::soft_update(self.target.clone(), &self.model.valid(), self.cfg.ema);
        stats
    }
}

/// Trains ICVF on `store` into `out`; `on_log(step, stats)` is called every `log_every` steps.
pub fn train_icvf<B: AutodiffBackend>(
    store: &FrameStore,
    store_path: &Path,
    model_cfg: &IcvfConfig,
    cfg: &IcvfTrainConfig,
    out: &Path,
    device: &B::Device,
    on_log: &mut dyn FnMut(u64, &IcvfStats),
) -> Result<IcvfSpec, IcvfError> {
    if model_cfg.encoder.size != store.manifest.size {
        return Err(IcvfError::Config(format!(
            "the encoder takes {0}×{0} frames, the store holds {1}×{1}",
            model_cfg.encoder.size, store.manifest.size
        )));
    }
    let sampler = store_sampler(store)?;
    std::fs::create_dir_all(out).map_err(|source| IcvfError::Io { path: out.into(), source })?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut learner = {
        let _rng = seeded::<B>(device, cfg.seed);
        IcvfLearner::<B>::new(model_cfg, cfg, device)
    };
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics =
        std::fs::File::create(&metrics_path).map_err(|source| IcvfError::Io { path: metrics_path.clone(), source })?;
    let mut window = Vec::new();
    let mut last_loss = f64::NAN;
    for step in 1..=cfg.steps {
        let ix = sampler.sample(&mut rng, cfg.batch_size);
        let stats = {
            let _rng = seeded::<B>(device, step_seed(cfg.seed, step));
            learner.step(store, &ix)
        };
        if !stats.loss.is_finite() {
            return Err(IcvfError::Config(format!("the loss became {} at step {step}", stats.loss)));
        }
        window.push(stats);
        if step % cfg.log_every.max(1) == 0 || step == cfg.steps {
            let n = window.len() as f64;
            let mean = IcvfStats {
                loss: window.iter().map(|s| s.loss).sum::<f64>() / n,
                v_mean: window.iter().map(|s| s.v_mean).sum::<f64>() / n,
                adv_positive: window.iter().map(|s| s.adv_positive).sum::<f64>() / n,
            };
            window.clear();
            last_loss = mean.loss;
            let line = format!(
                "{{\"step\":{step},\"loss\":{},\"v_mean\":{},\"adv_positive\":{}}}\n",
                mean.loss, mean.v_mean, mean.adv_positive
            );
            metrics
                .write_all(line.as_bytes())
                .map_err(|source| IcvfError::Io { path: metrics_path.clone(), source })?;
            on_log(step, &mean);
        }
    }
    let model = learner.model;
    policy::checkpoint::save_module(&model, &out.join(MODEL_STEM))?;
    policy::pretrained::save_encoder(&model.encoder, &model_cfg.encoder, out)?;
    let spec = IcvfSpec {
        model: model_cfg.clone(),
        train: cfg.clone(),
        frames: store_path.display().to_string(),
        final_loss: last_loss,
    };
    let text = serde_json::to_string_pretty(&spec).map_err(|e| IcvfError::Config(e.to_string()))?;
    policy::spec::write_atomic(&out.join(SPEC_FILE), text.as_bytes())?;
    Ok(spec)
}

/// Loads a trained network from `dir`.
pub fn load_icvf<B: Backend>(dir: &Path, device: &B::Device) -> Result<(IcvfSpec, Icvf<B>), IcvfError> {
    let spec = IcvfSpec::load(dir)?;
    let model = policy::checkpoint::load_module(spec.model.init(device), &dir.join(MODEL_STEM), "ICVF", device)?;
    Ok((spec, model))
}
