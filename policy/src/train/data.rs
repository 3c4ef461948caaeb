//! Training data: one or more LeRobot datasets behind a single frame index, the policy spec
//! derived from them (dimensions, normalisation, vocabulary), chunk samples with their chunked
//! TD quantities, and a background thread that prefetches batches.
//!
//! Batch `k` of a run is drawn with an RNG seeded from (run seed, k), so a resumed run sees the
//! same batches it would have seen without the interruption.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use dataset::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batch::{push_env_input, HostObs};
use crate::config::{ImageEncoderConfig, PolicyConfig, Variant};
use crate::error::{PolicyError, Result};
use crate::features::RawObs;
use crate::normalize::{FeatureAccumulator, Normalizer};
use crate::spec::PolicySpec;
use crate::vocab::Vocabulary;

/// One sampled batch, normalised, on the host.
#[derive(Clone, Debug, Default)]
pub struct HostBatch {
    /// Observations at t.
    pub obs: HostObs,
    /// Chunks a_{t:t+H} `[n, H, D]`, normalised.
    pub actions: Vec<f32>,
    /// `[n, H]`: 1 for real actions, 0 for padding past the episode end.
    pub action_mask: Vec<f32>,
    /// Observations at t+H (the bootstrap state; the last frame when the episode ends sooner).
    pub next_obs: HostObs,
    /// Σ_{i<m} γ^i r_{t+i}: m = H inside the episode, fewer at its end ([`chunk_return`]).
    pub reward: Vec<f32>,
    /// Weight of the bootstrap value: γ^H inside the episode, 0 after a termination inside the
    /// chunk, γ^m from the last observation after a truncation.
    pub bootstrap: Vec<f32>,
    /// Monte-Carlo return Σ_k γ^k r_{t+k} to the episode end (Cal-QL's lower bound).
    pub mc_return: Vec<f32>,
}

impl HostBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.obs.n
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.obs.n == 0
    }

    /// Appends every row of `other` (same model).
    pub fn extend(&mut self, other: HostBatch) {
        self.obs.extend(other.obs);
        self.actions.extend(other.actions);
        self.action_mask.extend(other.action_mask);
        self.next_obs.extend(other.next_obs);
        self.reward.extend(other.reward);
        self.bootstrap.extend(other.bootstrap);
        self.mc_return.extend(other.mc_return);
    }
}

/// Seed of the held-out episode draw, the same for every run (see [`TrainingData::hold_out`]).
pub const HELD_OUT_SEED: u64 = 0x4E1D;

/// Datasets addressed as one.
pub struct TrainingData {
    datasets: Vec<Dataset>,
    /// (dataset, frame) of every training frame.
    frames: Vec<(usize, usize)>,
    /// (dataset, frame) of the held-out episodes' frames (never sampled for training).
    held_out: Vec<(usize, usize)>,
    /// Per dataset, per frame: Monte-Carlo return.
    mc_return: Vec<Vec<f32>>,
    /// Per dataset, with [`PolicyConfig::action_targets`]: every frame's target row
    /// ([`action_row`]), `[len, D]`, computed once (empty otherwise: the recorded actions serve).
    target_rows: Vec<Vec<f32>>,
    /// The spec every sample is normalised with.
    pub spec: PolicySpec,
    /// Discount per control step.
    pub gamma: f64,
}

/// The chunked TD quantities of frame `i` of `ds`: (R, g, index of the bootstrap frame) with
/// R = Σ_{k<m} γ^k r_{i+k} and target R + g · Q̄(s_next, π(s_next)): g = γ^H inside the episode,
/// 0 when the episode terminates inside the chunk, and γ^m from the last frame when a truncation
/// (time limit, recording stopped) cuts it ([`dataset::NStep`]).
pub fn chunk_return(ds: &Dataset, i: usize, horizon: usize, gamma: f64) -> (f32, f32, usize) {
    let n = ds.n_step(i, horizon, gamma);
    let next = n.next.unwrap_or(i + n.steps.max(1) - 1);
    (n.discounted_reward as f32, n.discount as f32, next)
}

fn mc_returns(ds: &Dataset, gamma: f64) -> Vec<f32> {
    let mut out = vec![0.0f32; ds.len()];
    for ep in ds.episodes() {
        let mut g = 0.0f64;
        for i in (ep.from_index as usize..ep.to_index as usize).rev() {
            if ds.done(i) {
                g = 0.0;
            }
            g = f64::from(ds.reward(i)) + gamma * g;
            out[i] = g as f32;
        }
    }
    out
}

/// How to build a new policy's spec from data.
#[derive(Clone, Debug)]
pub struct SpecRequest {
    /// Observation variant.
    pub variant: Variant,
    /// Chunk length H.
    pub horizon: usize,
    /// Model size preset to start from (`None`: the variant's default).
    pub config: Option<PolicyConfig>,
    /// Finger-tip features on or off (`None`: the config's choice; on for state-only policies
    /// of data with object state, see [`PolicyConfig::tip_features`]).
    pub tip_features: Option<bool>,
    /// Action rows as absolute finger-tip targets (`None`: the config's choice, on for a new
    /// policy of end-effector delta data with the arm's joints in the state; see
    /// [`PolicyConfig::action_targets`]). `Some(true)` is refused for other data.
    pub action_targets: Option<bool>,
    /// Fit the statistics on the frames of successful episodes only (with
    /// [`TrainingData::successful_only`], so they describe what training sees).
    pub successful_only: bool,
}

impl SpecRequest {
    /// A request for `variant` with chunk length `horizon` and every other choice at its
    /// default (the variant's config, its feature and action defaults, every frame fitted).
    pub fn new(variant: Variant, horizon: usize) -> SpecRequest {
        SpecRequest { variant, horizon, config: None, tip_features: None, action_targets: None, successful_only: false }
    }
}

/// Per frame of `ds`: whether its episode has a success frame.
fn in_successful_episode(ds: &Dataset) -> Vec<bool> {
    let mut keep = vec![false; ds.len()];
    for e in ds.episodes() {
        let range = e.from_index as usize..e.to_index as usize;
        let success = range.clone().any(|i| ds.success(i));
        keep[range].fill(success);
    }
    keep
}

/// Frame `i`'s action row as the model predicts it: the recorded action, or with
/// [`PolicyConfig::action_targets`] the tip target it names ([`crate::action_targets`]).
pub fn action_row(config: &PolicyConfig, ds: &Dataset, i: usize) -> Vec<f32> {
    match config.action_targets.then(|| crate::features::tip_pose(ds.state(i))).flatten() {
        Some(tip) => crate::action_targets::target_row(&tip, ds.action(i)),
        None => ds.action(i).to_vec(),
    }
}

/// Infers what an action row means from the dataset's action component names.
fn action_kind(ds: &Dataset) -> bus::ActionKind {
    let names = ds.info().features.get(dataset::writer::ACTION).map(|f| f.names.to_string()).unwrap_or_default();
    if names.contains("delta_x") {
        bus::ActionKind::EeDelta
    } else {
        bus::ActionKind::JointTarget
    }
}

impl TrainingData {
    /// Wraps `datasets`, checking they agree on dimensions, rate and action meaning.
    pub fn new(datasets: Vec<Dataset>, spec: PolicySpec, gamma: f64) -> Result<TrainingData> {
        let c = &spec.config;
        for ds in &datasets {
            let root = ds.root().display();
            let env_ok = ds.env_state_dim() >= c.env_state_dim || c.pad_objects;
            if ds.state_dim() != c.state_dim || ds.action_dim() != c.action_dim || !env_ok {
                return Err(PolicyError::Mismatch(format!(
                    "{root}: state/action/object-state widths {}/{}/{} do not match the policy's {}/{}/{}",
                    ds.state_dim(),
                    ds.action_dim(),
                    ds.env_state_dim(),
                    c.state_dim,
                    c.action_dim,
                    c.env_state_dim
                )));
            }
            if (ds.fps() - spec.fps).abs() > 1e-6 {
                return Err(PolicyError::Mismatch(format!(
                    "{root}: {} fps, the policy runs at {}",
                    ds.fps(),
                    spec.fps
                )));
            }
            if action_kind(ds) != spec.action_kind {
                return Err(PolicyError::Mismatch(format!(
                    "{root}: actions are {:?}, the policy's are {:?}",
                    action_kind(ds),
                    spec.action_kind
                )));
            }
            if let Some(img) = &c.image {
                for key in &img.cameras {
                    if !ds.camera_keys().contains(key) {
                        return Err(PolicyError::Mismatch(format!("{root}: no camera `{key}`")));
                    }
                }
            }
        }
        let frames = datasets.iter().enumerate().flat_map(|(d, ds)| (0..ds.len()).map(move |i| (d, i))).collect();
        let mc_return = datasets.iter().map(|ds| mc_returns(ds, gamma)).collect();
        let target_rows =
            datasets
                .iter()
                .map(|ds| {
                    if c.action_targets {
                        (0..ds.len()).flat_map(|i| action_row(c, ds, i)).collect()
                    } else {
                        Vec::new()
                    }
                })
                .collect();
        Ok(TrainingData { datasets, frames, held_out: Vec::new(), mc_return, target_rows, spec, gamma })
    }

    /// A fresh spec fitted to `datasets`: widths, normalisation from every frame (of the
    /// successful episodes with [`SpecRequest::successful_only`]), vocabulary from every task.
    pub fn fit_spec(datasets: &[Dataset], request: &SpecRequest) -> Result<PolicySpec> {
        let first = datasets.first().ok_or_else(|| PolicyError::Config("no dataset given".into()))?;
        let (mut state, mut env, mut action) =
            (FeatureAccumulator::default(), FeatureAccumulator::default(), FeatureAccumulator::default());
        let mut tasks: Vec<String> = Vec::new();
        // The frames the statistics describe: every frame, or those training keeps.
        let fitted: Vec<Vec<bool>> = datasets
            .iter()
            .map(|ds| if request.successful_only { in_successful_episode(ds) } else { vec![true; ds.len()] })
            .collect();
        let fitted = &fitted;
        let frames = |d: usize| (0..datasets[d].len()).filter(move |&i| fitted[d][i]);
        for (d, ds) in datasets.iter().enumerate() {
            if ds.is_empty() {
                return Err(PolicyError::Mismatch(format!("{}: the dataset has no frames", ds.root().display())));
            }
            if !ds.has_actions() {
                return Err(PolicyError::Mismatch(format!(
                    "{}: the dataset has no actions; label it first (`armstack train idm` on episodes with \
                     actions, then `armstack dataset label`)",
                    ds.root().display()
                )));
            }
            for i in frames(d) {
                state.push(ds.state(i));
            }
            for t in ds.tasks() {
                if !tasks.contains(t) {
                    tasks.push(t.clone());
                }
            }
        }
        let (state_dim, action_dim) = (first.state_dim(), first.action_dim());
        let mut config = match (&request.config, request.variant) {
            (Some(c), _) => c.clone(),
            (None, Variant::StateOnly) => {
                PolicyConfig::state_only(request.horizon, state_dim, first.env_state_dim(), action_dim)
            }
            (None, Variant::Vision) => {
                let cameras = first.camera_keys();
                let side = first
                    .info()
                    .features
                    .get(cameras.first().map_or("", String::as_str))
                    .map_or(0, |f| f.shape.first().copied().unwrap_or(0) as usize);
                PolicyConfig::vision(request.horizon, state_dim, action_dim, ImageEncoderConfig::new(side, cameras))
            }
        };
        config.horizon = request.horizon;
        config.state_dim = state_dim;
        config.action_dim = action_dim;
        if config.variant == Variant::StateOnly {
            // Scenes with different object counts (multi-task): the widest object state, the
            // others padded with absent objects.
            config.env_state_dim = datasets.iter().map(Dataset::env_state_dim).max().unwrap_or(0);
            config.pad_objects = datasets.iter().any(|ds| ds.env_state_dim() != config.env_state_dim);
            if request.config.is_none() {
                config.tip_features = config.env_state_dim >= crate::features::ENV_VALUES_PER_OBJECT
                    && state_dim >= sim::arm::spec::NUM_ARM_JOINTS;
            }
            if config.env_state_dim == 0 {
                // Recorded on a real arm without cameras: the policy sees the joints only.
                tracing::warn!(
                    dataset = %first.root().display(),
                    "no observation.environment_state or cameras: a proprioception-only policy (it cannot see objects)"
                );
            }
        }
        if let Some(on) = request.tip_features {
            config.tip_features = on;
        }
        let targets_possible =
            action_kind(first) == bus::ActionKind::EeDelta && state_dim >= sim::arm::spec::NUM_ARM_JOINTS;
        if request.config.is_none() {
            config.action_targets = targets_possible;
        }
        if let Some(on) = request.action_targets {
            if on && !targets_possible {
                return Err(PolicyError::Config(format!(
                    "{}: action targets need end-effector delta actions and the arm's {} joints in the state",
                    first.root().display(),
                    sim::arm::spec::NUM_ARM_JOINTS
                )));
            }
            config.action_targets = on;
        }
        // Action statistics over what the model predicts (deltas, or the targets they name).
        for (d, ds) in datasets.iter().enumerate() {
            for i in frames(d) {
                action.push(&action_row(&config, ds, i));
            }
        }
        let vocab = Vocabulary::build(tasks.iter().map(String::as_str));
        config.vocab_size = vocab.size();
        config.validate()?;
        // Object-state input statistics over what the model will see (object state and, when on,
        // the finger-tip features), through the same function every batch uses.
        let env_dim = config.env_input_dim();
        if env_dim > 0 {
            let mut row = Vec::with_capacity(env_dim);
            for (d, ds) in datasets.iter().enumerate() {
                for i in frames(d) {
                    let raw = RawObs {
                        state: ds.state(i).to_vec(),
                        env_state: ds.env_state(i).to_vec(),
                        ..RawObs::default()
                    };
                    row.clear();
                    push_env_input(&config, &raw, &mut row);
                    env.push(&row);
                }
            }
        }
        Ok(PolicySpec {
            config,
            critic: None,
            normalizer: Normalizer {
                state: state.z_score(state_dim),
                env_state: if env_dim > 0 {
                    env.z_score(env_dim)
                } else {
                    crate::normalize::ZScore { mean: Vec::new(), std: Vec::new() }
                },
                action: action.min_max(action_dim),
            },
            vocab,
            action_kind: action_kind(first),
            fps: first.fps(),
            scene: first.scene().map(str::to_string),
            tasks,
            num_params: 0,
            pretrained_encoder: None,
        })
    }

    /// Total frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Drops frames whose actions are proxy labels (`action.is_proxy`, written by `dataset
    /// label`), so training sees recorded actions only. Fails when nothing is left.
    pub fn without_proxy_labels(mut self) -> Result<TrainingData> {
        let before = self.frames.len();
        let datasets = &self.datasets;
        self.frames.retain(|&(d, i)| !datasets[d].is_proxy(i));
        tracing::info!(
            kept = self.frames.len(),
            dropped = before - self.frames.len(),
            "proxy-labelled frames left out"
        );
        if self.frames.is_empty() {
            return Err(PolicyError::Mismatch(
                "every frame's action is a proxy label: nothing left to train on".into(),
            ));
        }
        Ok(self)
    }

    /// Drops the frames of episodes that never succeed (no `next.success` frame), so training
    /// sees successful demonstrations only. Fails when nothing is left.
    pub fn successful_only(mut self) -> Result<TrainingData> {
        let keep: Vec<Vec<bool>> = self.datasets.iter().map(in_successful_episode).collect();
        let before = self.frames.len();
        self.frames.retain(|&(d, i)| keep[d][i]);
        tracing::info!(
            kept = self.frames.len(),
            dropped = before - self.frames.len(),
            "frames of episodes without success left out"
        );
        if self.frames.is_empty() {
            return Err(PolicyError::Mismatch("no episode succeeds: nothing left to train on".into()));
        }
        Ok(self)
    }

    /// Holds out a `fraction` of each dataset's episodes (at least one when the fraction is
    /// positive and the dataset has two or more; drawn with `seed`: callers pass
    /// [`HELD_OUT_SEED`], so every training seed, a resumed run and CO-RFT from a BC policy hold
    /// out the same episodes of the same data):
    /// their frames are never sampled for training and give the held-out loss
    /// ([`Self::held_out_batch`]). A fraction of 0 holds out nothing.
    pub fn hold_out(mut self, fraction: f64, seed: u64) -> TrainingData {
        if fraction <= 0.0 {
            return self;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut held: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        for (d, ds) in self.datasets.iter().enumerate() {
            let episodes = ds.episodes();
            if episodes.len() < 2 {
                tracing::warn!(dataset = %ds.root().display(), "one episode: nothing held out of it");
                continue;
            }
            let k = ((fraction * episodes.len() as f64).round() as usize).clamp(1, episodes.len() - 1);
            for e in rand::seq::index::sample(&mut rng, episodes.len(), k) {
                held.push((d, episodes[e].from_index as usize..episodes[e].to_index as usize));
            }
        }
        let is_held = |&(d, i): &(usize, usize)| held.iter().any(|(hd, r)| *hd == d && r.contains(&i));
        let (held_frames, train): (Vec<_>, Vec<_>) = self.frames.iter().partition(|f| is_held(f));
        tracing::info!(
            held_out_episodes = held.len(),
            held_out_frames = held_frames.len(),
            training_frames = train.len(),
            "episodes held out for the held-out loss"
        );
        self.frames = train;
        self.held_out = held_frames;
        self
    }

    /// Frames of the held-out episodes.
    pub fn held_out_len(&self) -> usize {
        self.held_out.len()
    }

    /// A fixed batch of at most `n` held-out frames (evenly spaced over them), or `None` when
    /// nothing is held out.
    pub fn held_out_batch(&self, n: usize) -> Result<Option<HostBatch>> {
        if self.held_out.is_empty() || n == 0 {
            return Ok(None);
        }
        let stride = self.held_out.len().div_ceil(n).max(1);
        let mut b = HostBatch::default();
        for &(d, i) in self.held_out.iter().step_by(stride) {
            self.push_sample(&mut b, d, i)?;
        }
        Ok(Some(b))
    }

    /// The datasets.
    pub fn datasets(&self) -> &[Dataset] {
        &self.datasets
    }

    /// Frame `i` of dataset `d` as a raw observation (images from the frame cache).
    pub fn raw_obs(&self, d: usize, i: usize) -> Result<RawObs> {
        let ds = &self.datasets[d];
        let mut images = Vec::new();
        if let Some(img) = &self.spec.config.image {
            for key in &img.cameras {
                images.push(ds.image(i, key)?.to_vec());
            }
        }
        Ok(RawObs {
            state: ds.state(i).to_vec(),
            env_state: ds.env_state(i).to_vec(),
            instruction: ds.task(i).to_string(),
            images,
        })
    }

    /// A batch of `n` frames drawn uniformly with `rng`.
    pub fn sample(&self, rng: &mut impl Rng, n: usize) -> Result<HostBatch> {
        let mut b = HostBatch::default();
        for _ in 0..n {
            let (ds_idx, i) = self.frames[rng.random_range(0..self.frames.len())];
            self.push_sample(&mut b, ds_idx, i)?;
        }
        Ok(b)
    }

    /// Appends frame `i` of dataset `ds_idx` to `b`: its observation, chunk, TD quantities and
    /// Monte-Carlo return.
    fn push_sample(&self, b: &mut HostBatch, ds_idx: usize, i: usize) -> Result<()> {
        let c = &self.spec.config;
        let (h, d) = (c.horizon, c.action_dim);
        let ds = &self.datasets[ds_idx];
        b.obs.push(&self.spec, &self.raw_obs(ds_idx, i)?)?;
        let w = ds.action_window(i, h);
        let start = b.actions.len();
        // Rows past the episode's end: with action targets after a termination (the task done,
        // or failed for good) the arm holds its last target, a label like any other, so those
        // rows are trained; otherwise (deltas, which the window pads by repeating the last one,
        // or a truncated episode, whose continuation is unknown) they are masked out.
        let last = ds.episode_of(i).to_index as usize - 1;
        let hold = c.action_targets && ds.done(last) && !ds.truncated(last);
        if c.action_targets {
            // Row k is frame min(i + k, last)'s target, as the window pads.
            let rows = &self.target_rows[ds_idx];
            for k in 0..h {
                let j = (i + k).min(last);
                b.actions.extend_from_slice(&rows[j * d..(j + 1) * d]);
            }
        } else {
            b.actions.extend_from_slice(&w.values);
        }
        self.spec.normalizer.action.apply(&mut b.actions[start..start + h * d]);
        b.action_mask.extend(w.mask.iter().map(|m| f32::from(u8::from(*m || hold))));
        let (r, boot, next) = chunk_return(ds, i, h, self.gamma);
        b.reward.push(r);
        b.bootstrap.push(boot);
        b.next_obs.push(&self.spec, &self.raw_obs(ds_idx, next)?)?;
        b.mc_return.push(self.mc_return[ds_idx][i]);
        Ok(())
    }
}

/// The RNG of batch `step` of a run with `seed`.
pub fn batch_rng(seed: u64, step: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Batches prepared on a background thread, `depth` ahead of the learner.
pub struct Prefetcher {
    rx: Receiver<Result<HostBatch>>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts preparing batches `first_step..` of size `batch` from `data`.
    pub fn start(data: Arc<TrainingData>, seed: u64, first_step: u64, batch: usize, depth: usize) -> Prefetcher {
        let (tx, rx) = bounded(depth.max(1));
        let thread = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                let mut step = first_step;
                loop {
                    let b = data.sample(&mut batch_rng(seed, step), batch);
                    if tx.send(b).is_err() {
                        return;
                    }
                    step += 1;
                }
            })
            .ok();
        Prefetcher { rx, thread }
    }

    /// The next batch (blocks until it is ready).
    pub fn next(&self) -> Result<HostBatch> {
        self.rx.recv().map_err(|_| PolicyError::Training("the prefetch thread stopped".into()))?
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Unblock the sender, then wait for it.
        let (_, dummy) = bounded(0);
        self.rx = dummy;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
