//! A plain SAC-style actor-critic on the chunk head: the baseline EXPO is compared with, and the
//! actor of H2O.
//!
//! Actor: a Gaussian over chunks around the BC chunk head, a = μ(s) + σ⊙ε with a learned
//! state-independent σ (`[H·D]`, starting at `init_std`), clipped to [−1, 1] for the critic. With
//! a′ ~ π(·|s′), S a random subset of the K target critics:
//! ```text
//! y = R + g · (min_{k∈S} Q̄_k(s′, a′) − [backup_entropy] α·log π(a′|s′))
//! L_Q = (1/K) Σ_k mean_b (Q_k(s, a) − y)²
//! L_π = mean_b [ α·log π(a|s) − (1/K) Σ_k Q_k(s, a) ],  a ~ π(·|s) reparameterised
//! L_α = −log α · mean_b (log π(a|s) + H̄)
//! ```
//! No imitation term: that is what makes it the "plain" online baseline. The entropy bonus is
//! left out of the backup by default: over H·D = 35 dimensions log π is ~+30 nats at σ = 0.1,
//! which would swamp a sparse 0/1 reward.

use std::path::Path;

use burn::module::{AutodiffModule, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{tensor, to_vec, HostObs};
use crate::checkpoint::save_module;
use crate::config::{CriticConfig, PolicyConfig};
use crate::error::Result;
use crate::features::RawObs;
use crate::gaussian::{gaussian_log_prob, normal_vec};
use crate::inference::MODEL_STEM;
use crate::model::{ChunkCritic, ChunkPolicy, ObsBatch};
use crate::online::collect::{ActMode, ChunkActor};
use crate::online::temperature::Temperature;
use crate::online::OnlineLearner;
use crate::spec::PolicySpec;
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::bc::targets;
use crate::train::co_rft::{td_target, CRITIC_STEM};
use crate::train::data::HostBatch;
use crate::train::ema::soft_update;

/// File stem of the whole Gaussian actor (mean network and log σ).
pub const ACTOR_STEM: &str = "actor";

/// SAC hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SacConfig {
    /// Discount per control step γ.
    pub gamma: f64,
    /// Target critic EMA rate τ.
    pub tau: f64,
    /// Critic ensemble.
    pub critic: CriticConfig,
    /// Target critics in the min (random subset).
    pub target_subset: usize,
    /// Actor learning rate.
    pub actor_lr: f64,
    /// Critic learning rate.
    pub critic_lr: f64,
    /// Initial temperature α.
    pub init_alpha: f64,
    /// Target entropy H̄ (`None`: −H·D/2, as EXPO's edit policy).
    pub target_entropy: Option<f64>,
    /// Initial σ of the chunk Gaussian (normalised units).
    pub init_std: f64,
    /// Subtract α·log π in the TD target.
    pub backup_entropy: bool,
}

impl Default for SacConfig {
    /// WSRL's settings (Zhou et al., 2025, “Efficient Online Reinforcement Learning Fine-Tuning
    /// Need Not Retain Offline Data”): 10 critics, min of a random 2, actor lr 1e-4, critic lr
    /// 3e-4; γ 0.99, τ 0.005.
    fn default() -> SacConfig {
        SacConfig {
            gamma: 0.99,
            tau: 0.005,
            critic: CriticConfig::default(),
            target_subset: 2,
            actor_lr: 1e-4,
            critic_lr: 3e-4,
            init_alpha: 0.1,
            target_entropy: None,
            init_std: 0.1,
            backup_entropy: false,
        }
    }
}

/// The Gaussian chunk policy: the BC chunk policy as the mean, a learned log σ.
#[derive(Module, Debug)]
pub struct GaussianChunkPolicy<B: Backend> {
    /// The mean μ(s).
    pub mean: ChunkPolicy<B>,
    log_std: Param<Tensor<B, 1>>,
}

impl<B: Backend> GaussianChunkPolicy<B> {
    /// Wraps `mean` with σ = `init_std` in every component.
    pub fn new(mean: ChunkPolicy<B>, config: &PolicyConfig, init_std: f64, device: &B::Device) -> Self {
        let n = config.horizon * config.action_dim;
        let log_std = Tensor::full([n], init_std.max(1e-6).ln(), device);
        GaussianChunkPolicy { mean, log_std: Param::from_tensor(log_std) }
    }

    /// A sample μ(s) + σ⊙ε (`[B, H, D]`, not clipped) and its log density `[B, 1]`, for the
    /// standard noise `eps` (`[B, H·D]`).
    pub fn sample(&self, obs: &ObsBatch<B>, eps: Tensor<B, 2>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let mu = self.mean.forward(obs);
        let [b, h, d] = mu.dims();
        let log_std = self.log_std.val().clamp(-5.0, 1.0).unsqueeze_dim::<2>(0).repeat_dim(0, b);
        let a = mu + (log_std.clone().exp() * eps.clone()).reshape([b, h, d]);
        (a, gaussian_log_prob(eps, log_std))
    }

    /// Mean σ over components.
    pub fn mean_std(&self) -> f64 {
        f64::from(self.log_std.val().exp().mean().into_scalar().elem::<f32>())
    }
}

/// SAC learner state.
pub struct SacLearner<B: AutodiffBackend> {
    actor: GaussianChunkPolicy<B>,
    critic: ChunkCritic<B>,
    target: ChunkCritic<B::InnerBackend>,
    temperature: Temperature<B>,
    actor_optim: AdamOptimizer<GaussianChunkPolicy<B>, B>,
    critic_optim: AdamOptimizer<ChunkCritic<B>, B>,
    alpha_optim: AdamOptimizer<Temperature<B>, B>,
    spec: PolicySpec,
    rl: SacConfig,
    device: B::Device,
}

impl<B: AutodiffBackend> SacLearner<B> {
    /// Starts from a BC policy with a fresh critic.
    pub fn new(policy: ChunkPolicy<B>, spec: &PolicySpec, rl: &SacConfig, device: &B::Device) -> SacLearner<B> {
        let critic = ChunkCritic::new(&spec.config, &rl.critic, device);
        SacLearner {
            actor: GaussianChunkPolicy::new(policy, &spec.config, rl.init_std, device),
            target: critic.valid(),
            critic,
            temperature: Temperature::new(rl.init_alpha, device),
            actor_optim: adam(),
            critic_optim: adam(),
            alpha_optim: adam(),
            spec: spec.clone(),
            rl: rl.clone(),
            device: device.clone(),
        }
    }

    fn config(&self) -> &PolicyConfig {
        &self.spec.config
    }

    /// Squared TD errors `[n, K]` and Q of the batch chunks `[n, K]` (differentiable in the critic).
    pub fn td_errors(&self, batch: &HostBatch, rng: &mut ChaCha8Rng) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (n, h, d) = (batch.len(), self.config().horizon, self.config().action_dim);
        let dev = &self.device;
        let k = self.critic.ensemble();
        let actor = self.actor.valid();
        let next = batch.next_obs.to_batch::<B::InnerBackend>(self.config(), dev);
        let eps = tensor::<B::InnerBackend, 2>(normal_vec(rng, n * h * d), [n, h * d], dev);
        let (a_next, log_p) = actor.sample(&next, eps);
        let feat = self.target.features(&next, actor.mean.image_features(&next));
        let members: Vec<usize> = sample(rng, k, self.rl.target_subset.clamp(1, k)).into_vec();
        let q_next = self.target.forward_members(feat, a_next.clamp(-1.0, 1.0), &members).min_dim(1); // [n, 1]
        let q_next = if self.rl.backup_entropy { q_next - log_p.mul_scalar(self.temperature.value()) } else { q_next };
        let y = td_target(&batch.reward, &batch.bootstrap, &to_vec(q_next), 1, &[0]);
        let y = tensor::<B, 2>(y, [n, 1], dev);
        let obs = batch.obs.to_batch::<B>(self.config(), dev);
        let image = self.actor.mean.image_features(&obs).map(|f| f.detach());
        let (chunks, _) = targets::<B>(batch, h, d, dev);
        let q = self.critic.forward(self.critic.features(&obs, image), chunks);
        ((q.clone() - y).powf_scalar(2.0), q)
    }

    /// One critic step on `loss`, then the target update.
    pub fn critic_step(&mut self, loss: Tensor<B, 1>) {
        let grads = GradientsParams::from_grads(loss.backward(), &self.critic);
        self.critic = self.critic_optim.step(self.rl.critic_lr, self.critic.clone(), grads);
        self.target = soft_update(self.target.clone(), &self.critic.valid(), self.rl.tau);
    }

    /// The policy the learner acts with now (for evaluation and saving).
    pub fn gaussian(&self) -> GaussianChunkPolicy<B::InnerBackend> {
        self.actor.valid()
    }
}

/// Acting with the Gaussian chunk policy on the inner backend.
pub struct SacActor<B: Backend> {
    policy: GaussianChunkPolicy<B>,
    spec: PolicySpec,
    rng: ChaCha8Rng,
    device: B::Device,
}

impl<B: Backend> ChunkActor for SacActor<B> {
    fn act(&mut self, obs: &[RawObs], mode: ActMode) -> Result<Vec<Vec<f32>>> {
        let batch = HostObs::batch_of::<B>(&self.spec, obs, &self.device)?;
        let per = self.spec.config.horizon * self.spec.config.action_dim;
        let chunks = match mode {
            ActMode::Evaluate => self.policy.mean.forward(&batch),
            ActMode::Explore | ActMode::Pretrained => {
                let eps = tensor::<B, 2>(normal_vec(&mut self.rng, obs.len() * per), [obs.len(), per], &self.device);
                self.policy.sample(&batch, eps).0
            }
        };
        Ok(to_vec(chunks.clamp(-1.0, 1.0)).chunks(per).map(<[f32]>::to_vec).collect())
    }
}

/// A snapshot actor of `policy`.
pub fn sac_actor<B: Backend>(
    policy: GaussianChunkPolicy<B>,
    spec: &PolicySpec,
    seed: u64,
    device: &B::Device,
) -> Box<dyn ChunkActor> {
    Box::new(SacActor {
        policy,
        spec: spec.clone(),
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5AC),
        device: device.clone(),
    })
}

impl<B: AutodiffBackend> OnlineLearner<B> for SacLearner<B> {
    fn critic_update(
        &mut self,
        batch: &HostBatch,
        _offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        let (sq, q) = self.td_errors(batch, rng);
        let loss = sq.mean();
        let td = f64::from(loss.clone().into_scalar().elem::<f32>());
        self.critic_step(loss);
        Ok(vec![("td", td), ("q_data", f64::from(q.mean().into_scalar().elem::<f32>()))])
    }

    fn actor_update(
        &mut self,
        batch: &HostBatch,
        _offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        let (n, h, d) = (batch.len(), self.config().horizon, self.config().action_dim);
        let dev = self.device.clone();
        let obs = batch.obs.to_batch::<B>(self.config(), &dev);
        let eps = tensor::<B, 2>(normal_vec(rng, n * h * d), [n, h * d], &dev);
        let (a, log_p) = self.actor.sample(&obs, eps);
        let image = self.actor.mean.image_features(&obs).map(|f| f.detach());
        let feat = self.critic.features(&obs, image).detach();
        let q = self.critic.forward(feat, a.clamp(-1.0, 1.0)).mean_dim(1);
        let alpha = self.temperature.value();
        let loss = (log_p.clone().mul_scalar(alpha) - q.clone()).mean();
        let actor_loss = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.actor);
        self.actor = self.actor_optim.step(self.rl.actor_lr, self.actor.clone(), grads);
        let c = self.config();
        let target = self.rl.target_entropy.unwrap_or(-((c.horizon * c.action_dim) as f64) / 2.0);
        let alpha_loss = self.temperature.loss(log_p.clone(), target);
        let grads = GradientsParams::from_grads(alpha_loss.backward(), &self.temperature);
        self.temperature = self.alpha_optim.step(self.rl.actor_lr, self.temperature.clone(), grads);
        let scalar = |t: Tensor<B, 2>| f64::from(t.mean().into_scalar().elem::<f32>());
        Ok(vec![
            ("actor", actor_loss),
            ("alpha", alpha),
            ("log_p", scalar(log_p)),
            ("q_pi", scalar(q)),
            ("std", self.actor.mean_std()),
        ])
    }

    fn actor(&self, seed: u64) -> Box<dyn ChunkActor> {
        sac_actor(self.actor.valid(), &self.spec, seed, &self.device)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let actor = self.actor.valid();
        save_module(&actor.mean, &dir.join(MODEL_STEM))?;
        save_module(&actor, &dir.join(ACTOR_STEM))?;
        save_module(&self.target, &dir.join(CRITIC_STEM))
    }
}
