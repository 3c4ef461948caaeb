//! EXPO: expressive-policy edits (Dong et al., 2025, “EXPO: Stable Reinforcement Learning with
//! Expressive Policies”).
//!
//! Networks: the base policy π_base (the BC trunk with a flow head, [`FlowPolicy`]) and its EMA
//! copy π̄_base (rate 0.001) used for acting and backups; the edit policy π_edit(u | s, a)
//! ([`EditPolicy`]); K critics Q_k with targets Q̄_k (EMA τ); the temperature α.
//!
//! **On-the-fly policy** π_otf(s): draw N chunks a_1…a_N ~ π̄_base(s), edit each,
//! ã_j = clip(a_j + β·u_j) with u_j ~ π_edit(·|s, a_j) (the mean edit tanh(μ) when evaluating),
//! and among the 2N candidates {a_j, ã_j} take
//! ```text
//! a* = argmax_c min_{k∈S} Q̄_k(s, c),   S a random subset of the K target critics (|S| = 1–2)
//! ```
//! It acts, and gives the TD target (no entropy term):
//! ```text
//! y = R + g · min_{k∈S} Q̄_k(s′, π_otf(s′)),      L_Q = (1/K) Σ_k mean_b (Q_k(s, a) − y)²
//! ```
//! with the chunked R and g = γ^H·m of [`crate::train::data::HostBatch`]. Once per
//! `actor_every` critic updates (one per env step at UTD 20):
//! ```text
//! L_base = L_flow(batch chunks)                                   (imitation on all data)
//! L_edit = mean_b [ α·log π_edit(u|s, a) − (1/K) Σ_k Q_k(s, clip(a + β·u)) ],  a the batch chunk
//! L_α    = −log α · mean_b (log π_edit(u|s, a) + H̄),  H̄ = −|A|/2, |A| = H·D
//! ```

use std::path::Path;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{tensor, to_vec, HostObs};
use crate::checkpoint::save_module;
use crate::config::{CriticConfig, PolicyConfig};
use crate::error::Result;
use crate::features::RawObs;
use crate::gaussian::normal_vec;
use crate::inference::MODEL_STEM;
use crate::model::edit::{apply_edit, EditConfig};
use crate::model::flow::FlowHeadConfig;
use crate::model::{ChunkCritic, EditPolicy, FlowPolicy, ObsBatch};
use crate::online::collect::{ActMode, ChunkActor};
use crate::online::temperature::Temperature;
use crate::online::OnlineLearner;
use crate::spec::PolicySpec;
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::bc::targets;
use crate::train::co_rft::{td_target, CRITIC_STEM};
use crate::train::data::HostBatch;
use crate::train::ema::soft_update;

/// File stems of EXPO's extra weights.
pub const FLOW_STEM: &str = "flow";
/// The edit policy's weights.
pub const EDIT_STEM: &str = "edit";

/// EXPO hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpoConfig {
    /// Discount per control step γ.
    pub gamma: f64,
    /// Target critic EMA rate τ.
    pub tau: f64,
    /// Critic ensemble.
    pub critic: CriticConfig,
    /// Target critics in each min (random subset, 1–2).
    pub target_subset: usize,
    /// Edit scale β (normalised action units).
    pub beta: f64,
    /// Base samples N per state (as many edited ones join them).
    pub samples: usize,
    /// The flow head.
    pub flow: FlowHeadConfig,
    /// The edit policy.
    pub edit: EditConfig,
    /// EMA rate of the acting copy of the base policy.
    pub base_ema: f64,
    /// Base policy learning rate.
    pub base_lr: f64,
    /// Critic learning rate.
    pub critic_lr: f64,
    /// Edit policy and temperature learning rate.
    pub edit_lr: f64,
    /// Initial temperature α.
    pub init_alpha: f64,
    /// Target entropy H̄ of the edit policy (`None`: −H·D/2).
    pub target_entropy: Option<f64>,
    /// Imitation steps of the flow head on the offline data before going online.
    pub base_pretrain_steps: u64,
}

impl Default for ExpoConfig {
    /// EXPO's published settings: β 0.05, N 8, 10 LayerNorm critics 3×256 (min of a random 2), γ 0.99,
    /// τ 0.005, lr 3e-4, base EMA 0.001, entropy target −|A|/2.
    fn default() -> ExpoConfig {
        ExpoConfig {
            gamma: 0.99,
            tau: 0.005,
            critic: CriticConfig::default(),
            target_subset: 2,
            beta: 0.05,
            samples: 8,
            flow: FlowHeadConfig::default(),
            edit: EditConfig::default(),
            base_ema: 0.001,
            base_lr: 3e-4,
            critic_lr: 3e-4,
            edit_lr: 3e-4,
            init_alpha: 0.1,
            target_entropy: None,
            base_pretrain_steps: 500,
        }
    }
}

/// Per observation, the candidate with the highest min over the scored critics:
/// `candidates` `[B·C, H, D]` (observation-major, C per observation), `q` `[B·C, S]`. Returns
/// the chosen chunks `[B, H, D]` and their values `[B]`.
pub fn select_best<B: Backend>(
    candidates: Tensor<B, 3>,
    q: Tensor<B, 2>,
    per_obs: usize,
) -> (Tensor<B, 3>, Tensor<B, 1>) {
    let [n, h, d] = candidates.dims();
    let b = n / per_obs.max(1);
    let score = q.min_dim(1).reshape([b, per_obs]); // [B, C]
    let best = score.clone().argmax(1); // [B, 1]
    let value = score.gather(1, best.clone()).reshape([b]);
    let index = best.unsqueeze_dim::<3>(2).repeat_dim(2, h * d); // [B, 1, H·D]
    let chosen = candidates.reshape([b, per_obs, h * d]).gather(1, index).reshape([b, h, d]);
    (chosen, value)
}

/// The on-the-fly policy: N base samples per observation and their edits (sampled with noise
/// from `rng` when `explore`, the mean edit otherwise), scored by `score` (candidates
/// `[B·2N, H, D]` → Q `[B·2N, S]`). Returns the chosen chunks `[B, H, D]` and their values `[B]`.
#[allow(clippy::too_many_arguments)]
pub fn on_the_fly<B: Backend>(
    base: &FlowPolicy<B>,
    edit: &EditPolicy<B>,
    obs: &ObsBatch<B>,
    edit_features: Tensor<B, 2>,
    samples: usize,
    beta: f64,
    explore: bool,
    rng: &mut impl Rng,
    score: &dyn Fn(Tensor<B, 3>) -> Tensor<B, 2>,
) -> (Tensor<B, 3>, Tensor<B, 1>) {
    let n = samples.max(1);
    let a = base.sample(obs, n, rng); // [B·N, H, D]
    let [bn, h, d] = a.dims();
    let b = bn / n;
    let f = edit_features.dims()[1];
    let feats = edit_features.unsqueeze_dim::<3>(1).repeat_dim(1, n).reshape([bn, f]);
    let eps = explore.then(|| tensor::<B, 2>(normal_vec(rng, bn * h * d), [bn, h * d], &a.device()));
    let (u, _) = edit.sample(feats, a.clone(), eps);
    let edited = apply_edit(a.clone(), u, beta);
    let candidates =
        Tensor::cat(vec![a.reshape([b, n, h, d]), edited.reshape([b, n, h, d])], 1).reshape([b * 2 * n, h, d]);
    let q = score(candidates.clone());
    select_best(candidates, q, 2 * n)
}

/// A random subset of `size` (at least 1) of `k` critics.
fn subset(rng: &mut impl Rng, k: usize, size: usize) -> Vec<usize> {
    sample(rng, k, size.clamp(1, k.max(1))).into_vec()
}

/// EXPO learner state.
pub struct ExpoLearner<B: AutodiffBackend> {
    base: FlowPolicy<B>,
    base_ema: FlowPolicy<B::InnerBackend>,
    edit: EditPolicy<B>,
    critic: ChunkCritic<B>,
    target: ChunkCritic<B::InnerBackend>,
    temperature: Temperature<B>,
    base_optim: AdamOptimizer<FlowPolicy<B>, B>,
    edit_optim: AdamOptimizer<EditPolicy<B>, B>,
    critic_optim: AdamOptimizer<ChunkCritic<B>, B>,
    alpha_optim: AdamOptimizer<Temperature<B>, B>,
    spec: PolicySpec,
    rl: ExpoConfig,
    device: B::Device,
}

impl<B: AutodiffBackend> ExpoLearner<B> {
    /// Starts from a base policy (a BC policy with a flow head) with a fresh edit policy and critic.
    pub fn new(base: FlowPolicy<B>, spec: &PolicySpec, rl: &ExpoConfig, device: &B::Device) -> ExpoLearner<B> {
        let critic = ChunkCritic::new(&spec.config, &rl.critic, device);
        ExpoLearner {
            base_ema: base.valid(),
            base,
            edit: EditPolicy::new(&spec.config, &rl.edit, device),
            target: critic.valid(),
            critic,
            temperature: Temperature::new(rl.init_alpha, device),
            base_optim: adam(),
            edit_optim: adam(),
            critic_optim: adam(),
            alpha_optim: adam(),
            spec: spec.clone(),
            rl: rl.clone(),
            device: device.clone(),
        }
    }

    /// Parameters the updates train: base policy, edit policy and critic ensemble.
    pub fn num_params(&self) -> usize {
        self.base.num_params() + self.edit.num_params() + self.critic.num_params()
    }

    fn config(&self) -> &PolicyConfig {
        &self.spec.config
    }

    fn target_entropy(&self) -> f64 {
        let c = self.config();
        self.rl.target_entropy.unwrap_or(-((c.horizon * c.action_dim) as f64) / 2.0)
    }

    /// One imitation step of the base policy (flow loss) on `batch`; returns the loss.
    pub fn base_step(&mut self, batch: &HostBatch, rng: &mut ChaCha8Rng) -> f64 {
        let (h, d) = (self.config().horizon, self.config().action_dim);
        let obs = batch.obs.to_batch::<B>(self.config(), &self.device);
        let (target, mask) = targets::<B>(batch, h, d, &self.device);
        let loss = self.base.loss(&obs, target, mask, rng);
        let value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.base);
        self.base = self.base_optim.step(self.rl.base_lr, self.base.clone(), grads);
        self.base_ema = soft_update(self.base_ema.clone(), &self.base.valid(), self.rl.base_ema);
        value
    }

    /// Pre-trains the flow head by imitation: `steps` steps, the acting copy then set to the
    /// result. Returns the last loss.
    pub fn pretrain_base(
        &mut self,
        steps: u64,
        mut batches: impl FnMut(&mut ChaCha8Rng) -> Result<HostBatch>,
        rng: &mut ChaCha8Rng,
    ) -> Result<f64> {
        let mut last = f64::NAN;
        for _ in 0..steps {
            let batch = batches(rng)?;
            last = self.base_step(&batch, rng);
        }
        self.base_ema = self.base.valid();
        Ok(last)
    }
}

/// Acting with the on-the-fly policy on the inner backend.
pub struct ExpoActor<B: Backend> {
    base: FlowPolicy<B>,
    edit: EditPolicy<B>,
    critic: ChunkCritic<B>,
    spec: PolicySpec,
    rl: ExpoConfig,
    rng: ChaCha8Rng,
    device: B::Device,
}

impl<B: Backend> ExpoActor<B> {
    /// Normalised chunks `[B, H, D]` for `obs` in `mode`.
    pub fn chunks(&mut self, obs: &ObsBatch<B>, mode: ActMode) -> Tensor<B, 3> {
        if mode == ActMode::Pretrained {
            return self.base.sample(obs, 1, &mut self.rng);
        }
        let image = self.base.trunk.image_features(obs);
        let critic_feat = self.critic.features(obs, image.clone());
        let edit_feat = self.edit.features(obs, image);
        let members = subset(&mut self.rng, self.critic.ensemble(), self.rl.target_subset);
        let critic = &self.critic;
        let score = |c: Tensor<B, 3>| critic.forward_members(critic_feat.clone(), c, &members);
        let explore = mode == ActMode::Explore;
        on_the_fly(
            &self.base,
            &self.edit,
            obs,
            edit_feat,
            self.rl.samples,
            self.rl.beta,
            explore,
            &mut self.rng,
            &score,
        )
        .0
    }
}

impl<B: Backend> ChunkActor for ExpoActor<B> {
    fn act(&mut self, obs: &[RawObs], mode: ActMode) -> Result<Vec<Vec<f32>>> {
        let batch = HostObs::batch_of::<B>(&self.spec, obs, &self.device)?;
        let per = self.spec.config.horizon * self.spec.config.action_dim;
        Ok(to_vec(self.chunks(&batch, mode)).chunks(per).map(<[f32]>::to_vec).collect())
    }
}

impl<B: AutodiffBackend> OnlineLearner<B> for ExpoLearner<B> {
    fn critic_update(
        &mut self,
        batch: &HostBatch,
        _offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        let (n, h, d) = (batch.len(), self.config().horizon, self.config().action_dim);
        let dev = self.device.clone();
        let k = self.critic.ensemble();
        // Target: y = R + g · min_S Q̄(s′, π_otf(s′)).
        let next = batch.next_obs.to_batch::<B::InnerBackend>(self.config(), &dev);
        let edit = self.edit.valid();
        let image = self.base_ema.trunk.image_features(&next);
        let target_feat = self.target.features(&next, image.clone());
        let members = subset(rng, k, self.rl.target_subset);
        let target = &self.target;
        let score = |c: Tensor<B::InnerBackend, 3>| target.forward_members(target_feat.clone(), c, &members);
        let edit_feat = edit.features(&next, image);
        let (_, value) =
            on_the_fly(&self.base_ema, &edit, &next, edit_feat, self.rl.samples, self.rl.beta, true, rng, &score);
        // The value is already the min over S; td_target with a one-member "ensemble".
        let y = td_target(&batch.reward, &batch.bootstrap, &to_vec(value), 1, &[0]);
        let y = tensor::<B, 2>(y, [n, 1], &dev);
        let obs = batch.obs.to_batch::<B>(self.config(), &dev);
        let image = self.base.trunk.image_features(&obs).map(|f| f.detach());
        let (chunks, _) = targets::<B>(batch, h, d, &dev);
        let q = self.critic.forward(self.critic.features(&obs, image), chunks); // [n, K]
        let loss = (q.clone() - y).powf_scalar(2.0).mean();
        let td = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.critic);
        self.critic = self.critic_optim.step(self.rl.critic_lr, self.critic.clone(), grads);
        self.target = soft_update(self.target.clone(), &self.critic.valid(), self.rl.tau);
        Ok(vec![("td", td), ("q_data", f64::from(q.mean().into_scalar().elem::<f32>()))])
    }

    fn actor_update(
        &mut self,
        batch: &HostBatch,
        _offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        let base = self.base_step(batch, rng);
        let (n, h, d) = (batch.len(), self.config().horizon, self.config().action_dim);
        let dev = self.device.clone();
        let obs = batch.obs.to_batch::<B>(self.config(), &dev);
        let image = self.base.trunk.image_features(&obs).map(|f| f.detach());
        let (chunks, _) = targets::<B>(batch, h, d, &dev);
        let eps = tensor::<B, 2>(normal_vec(rng, n * h * d), [n, h * d], &dev);
        let (u, log_p) = self.edit.sample(self.edit.features(&obs, image.clone()), chunks.clone(), Some(eps));
        let edited = apply_edit(chunks, u, self.rl.beta);
        let feat = self.critic.features(&obs, image).detach();
        let q = self.critic.forward(feat, edited).mean_dim(1); // [n, 1]
        let alpha = self.temperature.value();
        let loss = (log_p.clone().mul_scalar(alpha) - q.clone()).mean();
        let edit_loss = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.edit);
        self.edit = self.edit_optim.step(self.rl.edit_lr, self.edit.clone(), grads);
        let alpha_loss = self.temperature.loss(log_p.clone(), self.target_entropy());
        let grads = GradientsParams::from_grads(alpha_loss.backward(), &self.temperature);
        self.temperature = self.alpha_optim.step(self.rl.edit_lr, self.temperature.clone(), grads);
        let scalar = |t: Tensor<B, 2>| f64::from(t.mean().into_scalar().elem::<f32>());
        Ok(vec![
            ("base", base),
            ("edit", edit_loss),
            ("alpha", alpha),
            ("edit_log_p", scalar(log_p)),
            ("q_edit", scalar(q)),
        ])
    }

    fn actor(&self, seed: u64) -> Box<dyn ChunkActor> {
        Box::new(ExpoActor {
            base: self.base_ema.clone(),
            edit: self.edit.valid(),
            critic: self.target.clone(),
            spec: self.spec.clone(),
            rl: self.rl.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xE4_9000),
            device: self.device.clone(),
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_module(&self.base_ema.trunk, &dir.join(MODEL_STEM))?;
        save_module(&self.base_ema.head, &dir.join(FLOW_STEM))?;
        save_module(&self.edit.valid(), &dir.join(EDIT_STEM))?;
        save_module(&self.target, &dir.join(CRITIC_STEM))
    }
}
