//! CO-RFT stage 2: offline RL over action chunks, starting from a BC policy.
//!
//! Notation: a batch of frames t with observation s, recorded chunk a = a_{t:t+H} (normalised,
//! in [−1, 1]), chunk reward R = Σ_{i<m} γ^i r_{t+i} with m = H inside the episode, bootstrap
//! weight g and observation s': g = γ^H and s' = s_{t+H} inside the episode; g = 0 when the
//! episode terminates inside the chunk; after a truncation (time limit) g = γ^m and s' = the
//! episode's last observation, the m rewards before it in R ([`crate::train::data::chunk_return`],
//! [`dataset::NStep`]); and Monte-Carlo return G_t. K online critics Q_k, target critics Q̄_k (EMA),
//! policy π (deterministic chunk head). `clip` clamps a chunk to [−1, 1].
//!
//! **Chunked TD target** (Q-chunking backup; min over a random subset S of `target_subset`
//! target critics, S = all K when `target_subset ≥ K`):
//! ```text
//! y = R + g · min_{k∈S} Q̄_k(s', clip(π(s')))
//! L_TD = (1/K) Σ_k mean_b (Q_k(s, a) − y)²
//! ```
//! **Conservative regulariser** (Cal-QL): per state, N uniform chunks u ~ U[−1,1]^{H×D}
//! (log density −HD·ln 2), N chunks clip(π(s) + σε) and N chunks clip(π(s') + σε), ε ~ N(0, I)
//! (log density of N(π, σ²I)); the Q of the 2N policy chunks is raised to at least G_t
//! (calibration), then, with w_j = log p(a_j) when `importance_sampling` is on and
//! w_j = log 3N otherwise (the default, see [`CoRftConfig::importance_sampling`]):
//! ```text
//! L_CQL = (1/K) Σ_k mean_b [ log Σ_j exp(Q_k(s, a_j) − w_j) − Q_k(s, a) ]
//! L_critic = L_TD + α · L_CQL
//! ```
//! **Actor** (every `actor_every` critic updates, after `critic_warmup` steps): BC weighted by
//! the critic's advantage of the recorded chunk over the policy's (AWR), plus an optional
//! TD3+BC Q term:
//! ```text
//! q(s, x) = (1/K) Σ_k Q_k(s, x),  A_b = q(s_b, a_b) − q(s_b, clip(π(s_b)))   (not differentiated)
//! Ā = mean_b A_b   (a baseline: the conservative term biases every A_b upwards alike)
//! w_b = min(exp((A_b − Ā) / β), w_max) / mean_b min(exp((A_b − Ā) / β), w_max)
//! L_BC^w = Σ_b w_b Σ_i m_{b,i} ‖π(s_b)_i − a_{b,t+i}‖ₚᵖ / (D · Σ_b Σ_i m_{b,i})   (p: the run's `--loss`, 1 by default)
//! L_actor = L_BC^w − λ · mean_b q(s_b, clip(π(s_b))),   λ = η / mean_b |q(s_b, π(s_b))|
//! ```
//! Defaults: β = 0.05, w_max = 20, η = 0. Measured on pick_cube (50 demonstrations at noise
//! 0.3, BC at 40% success): the TD3+BC term alone (η = 2.5, and even η = 0.25 with actor lr
//! 3e-5) followed the critic's action gradient over the 70-dimensional chunk and fell to 0–5%
//! within 100 actor updates, so the default trades BC against Q through the weights instead:
//! the actor imitates the chunks the critic rates above its own, which filters failed
//! demonstrations without leaving their support.
//! Targets: Q̄ ← (1 − τ)·Q̄ + τ·Q after every critic update.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{tensor, to_vec};
use crate::checkpoint::{load_module, save_module};
use crate::config::{CriticConfig, PolicyConfig};
use crate::error::Result;
use crate::gaussian::normal;
use crate::inference::MODEL_STEM;
use crate::model::{ChunkCritic, ChunkPolicy, ObsBatch};
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::bc::{chunk_loss, load_average, load_optim, save_average, save_optim, targets, ChunkLoss};
use crate::train::data::HostBatch;
use crate::train::ema::{soft_update, WeightAverage};
use crate::train::Learner;

/// File stems of the critic weights.
pub const CRITIC_STEM: &str = "critic";
const TARGET_STEM: &str = "target_critic";

/// CO-RFT hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoRftConfig {
    /// Discount per control step γ.
    pub gamma: f64,
    /// Target EMA rate τ.
    pub tau: f64,
    /// Critic ensemble.
    pub critic: CriticConfig,
    /// Target critics in the min of the backup.
    pub target_subset: usize,
    /// Weight α of the conservative term.
    pub cql_alpha: f64,
    /// Chunks per source (uniform, π(s), π(s')) in the conservative term, N.
    pub cql_samples: usize,
    /// Standard deviation σ of the policy samples, normalised units.
    pub policy_noise: f64,
    /// Weight the Cal-QL samples by their proposal densities (CQL's importance sampling). Off by
    /// default for chunks: over H·D = 70 dimensions the uniform and Gaussian log densities differ
    /// by ~100 nats, so with weights the policy samples (and Cal-QL's calibration) would never
    /// count; without them every sample counts equally (CQL's `cql_importance_sample = False`).
    #[serde(default)]
    pub importance_sampling: bool,
    /// η of the actor's Q term (TD3+BC's α; 0: no Q gradient through the critic).
    pub actor_eta: f64,
    /// Temperature β of the advantage weights on the actor's BC term (0: plain BC term).
    pub awr_beta: f64,
    /// Largest advantage weight.
    pub awr_max_weight: f64,
    /// Actor update every this many critic updates.
    pub actor_every: u64,
    /// Critic-only steps before the actor moves.
    pub critic_warmup: u64,
    /// Critic learning rate.
    pub critic_lr: f64,
    /// Actor learning rate.
    pub actor_lr: f64,
}

impl Default for CoRftConfig {
    /// Defaults of Q-chunking's and Cal-QL's published code (Li, Zhou, Levine, 2025; Nakamoto et
    /// al., 2023): γ 0.99, τ 0.005, 10 critics (min of a random 2), 10+10+10 Cal-QL samples,
    /// TD3+BC η 2.5 with delayed actor updates, critic lr 3e-4. α = 0.2 because the sparse 0/1
    /// success reward keeps Q in [0, 1]: the data's Q settles about α/2 above its TD target, and
    /// α = 1 measured Q(data) ≈ 2 on pick_cube.
    fn default() -> CoRftConfig {
        CoRftConfig {
            gamma: 0.99,
            tau: 0.005,
            critic: CriticConfig::default(),
            target_subset: 2,
            cql_alpha: 0.2,
            cql_samples: 10,
            policy_noise: 0.1,
            importance_sampling: false,
            actor_eta: 0.0,
            awr_beta: 0.05,
            awr_max_weight: 20.0,
            actor_every: 2,
            critic_warmup: 200,
            critic_lr: 3e-4,
            actor_lr: 1e-4,
        }
    }
}

/// The chunked TD target y = R + g · min over `subset` of `target_q` (`[B, K]`), on the host.
pub fn td_target(reward: &[f32], bootstrap: &[f32], target_q: &[f32], k: usize, subset: &[usize]) -> Vec<f32> {
    reward
        .iter()
        .zip(bootstrap)
        .enumerate()
        .map(|(b, (r, g))| {
            let min = subset.iter().map(|&j| target_q[b * k + j]).fold(f32::INFINITY, f32::min);
            r + g * if min.is_finite() { min } else { 0.0 }
        })
        .collect()
}

/// log Σ_j exp(x_j) along `dim`, stabilised by the (non-differentiated) max.
fn logsumexp<B: Backend>(x: Tensor<B, 3>, dim: usize) -> Tensor<B, 3> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// CO-RFT learner state.
pub struct CoRftLearner<B: AutodiffBackend> {
    /// The policy (actor).
    pub policy: ChunkPolicy<B>,
    /// The critic ensemble.
    pub critic: ChunkCritic<B>,
    target: ChunkCritic<B::InnerBackend>,
    policy_optim: AdamOptimizer<ChunkPolicy<B>, B>,
    critic_optim: AdamOptimizer<ChunkCritic<B>, B>,
    config: PolicyConfig,
    rl: CoRftConfig,
    seed: u64,
    lr_factor: f64,
    loss: ChunkLoss,
    average: Option<WeightAverage<ChunkPolicy<B::InnerBackend>>>,
    device: B::Device,
}

impl<B: AutodiffBackend> CoRftLearner<B> {
    /// Starts from a BC `policy` with a fresh critic.
    pub fn new(policy: ChunkPolicy<B>, config: &PolicyConfig, rl: &CoRftConfig, seed: u64, device: &B::Device) -> Self {
        let critic = ChunkCritic::new(config, &rl.critic, device);
        CoRftLearner {
            target: critic.valid(),
            critic,
            policy,
            policy_optim: adam(),
            critic_optim: adam(),
            config: config.clone(),
            rl: rl.clone(),
            seed,
            lr_factor: 1.0,
            loss: ChunkLoss::default(),
            average: None,
            device: device.clone(),
        }
    }

    /// Keeps an exponential moving average of the actor's weights with decay `decay` (0: none),
    /// updated after every actor update; the average is what [`Learner::policy`] returns and
    /// what is saved.
    pub fn with_weight_average(mut self, decay: f64) -> Self {
        self.average = (decay > 0.0).then(|| WeightAverage::new(decay));
        self
    }

    /// The actor's (advantage-weighted) regression loss; [`ChunkLoss::L2`] unless set.
    pub fn with_loss(mut self, loss: ChunkLoss) -> Self {
        self.loss = loss;
        self
    }

    fn image_features(&self, obs: &ObsBatch<B>) -> Option<Tensor<B, 2>> {
        self.policy.image_features(obs).map(|f| f.detach())
    }

    /// Critic update; returns (L_TD, L_CQL, mean Q of the data).
    fn critic_step(&mut self, batch: &HostBatch, rng: &mut ChaCha8Rng) -> (f64, f64, f64) {
        let (n, h, d, k) = (batch.obs.n, self.config.horizon, self.config.action_dim, self.critic.ensemble());
        let dev = &self.device;
        let inner_policy = self.policy.valid();
        let obs = batch.obs.to_batch::<B>(&self.config, dev);
        let next_inner = batch.next_obs.to_batch::<B::InnerBackend>(&self.config, dev);
        let obs_inner = batch.obs.to_batch::<B::InnerBackend>(&self.config, dev);

        // Target y (no gradient).
        let next_pi = inner_policy.forward(&next_inner).clamp(-1.0, 1.0);
        let next_feat = self.target.features(&next_inner, inner_policy.image_features(&next_inner));
        let target_q = to_vec(self.target.forward(next_feat, next_pi.clone()));
        let subset: Vec<usize> = sample(rng, k, self.rl.target_subset.clamp(1, k)).into_vec();
        let y = td_target(&batch.reward, &batch.bootstrap, &target_q, k, &subset);
        let y = tensor::<B, 2>(y, [n, 1], dev);

        // Q of the data and of the Cal-QL samples in one pass.
        let feat = self.critic.features(&obs, self.image_features(&obs));
        let ns = self.rl.cql_samples;
        let (chunks, log_p) = self.cql_chunks(&inner_policy, &obs_inner, next_pi, rng);
        let (data_chunks, _) = targets::<B>(batch, h, d, dev);
        let all = Tensor::cat(vec![data_chunks.unsqueeze_dim::<4>(1), Tensor::from_inner(chunks)], 1); // [n, 1+3N, h, d]
        let m = 1 + 3 * ns;
        let q = self.critic.forward(feat, all.reshape([n * m, h, d])).reshape([n, m, k]).swap_dims(1, 2); // [n, k, m]
        let q_data = q.clone().narrow(2, 0, 1).squeeze_dim::<2>(2); // [n, k]
        let td = (q_data.clone() - y).powf_scalar(2.0).mean();

        // Calibration: policy samples' Q at least the Monte-Carlo return.
        let mc = tensor::<B, 3>(batch.mc_return.clone(), [n, 1, 1], dev);
        let q_uniform = q.clone().narrow(2, 1, ns);
        let q_policy = q.narrow(2, 1 + ns, 2 * ns).max_pair(mc.repeat_dim(1, k).repeat_dim(2, 2 * ns));
        let q_samples = Tensor::cat(vec![q_uniform, q_policy], 2);
        let q_samples = if self.rl.importance_sampling {
            q_samples - Tensor::from_inner(log_p).unsqueeze_dim::<3>(1)
        } else {
            q_samples.sub_scalar(((3 * ns) as f64).ln())
        };
        let cql = (logsumexp(q_samples, 2).squeeze_dim::<2>(2) - q_data.clone()).mean();
        let loss = td.clone() + cql.clone().mul_scalar(self.rl.cql_alpha);
        let grads = GradientsParams::from_grads(loss.backward(), &self.critic);
        self.critic = self.critic_optim.step(self.rl.critic_lr * self.lr_factor, self.critic.clone(), grads);
        self.target = soft_update(self.target.clone(), &self.critic.valid(), self.rl.tau);
        let scalar = |t: Tensor<B, 1>| f64::from(t.into_scalar().elem::<f32>());
        (scalar(td), scalar(cql), scalar(q_data.mean()))
    }

    /// The 3N Cal-QL chunks per state `[n, 3N, h, d]` and their log densities `[n, 3N]`.
    fn cql_chunks(
        &self,
        policy: &ChunkPolicy<B::InnerBackend>,
        obs: &ObsBatch<B::InnerBackend>,
        next_pi: Tensor<B::InnerBackend, 3>,
        rng: &mut ChaCha8Rng,
    ) -> (Tensor<B::InnerBackend, 4>, Tensor<B::InnerBackend, 2>) {
        let [n, h, d] = next_pi.dims();
        let ns = self.rl.cql_samples;
        let dim = (h * d) as f64;
        let sigma = self.rl.policy_noise;
        let dev = &self.device;
        let uniform: Vec<f32> = (0..n * ns * h * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let uniform = tensor::<B::InnerBackend, 4>(uniform, [n, ns, h, d], dev);
        let pi = policy.forward(obs).clamp(-1.0, 1.0);
        let mut noisy = Vec::new();
        let mut log_p = vec![-(dim * std::f64::consts::LN_2) as f32; n * ns];
        for base in [pi, next_pi] {
            let eps: Vec<f32> = (0..n * ns * h * d).map(|_| normal(rng)).collect();
            // log N(x; μ, σ²I) = −½|ε|² − HD·(ln σ + ½ ln 2π) with x = μ + σε.
            for b in 0..n {
                for j in 0..ns {
                    let e = &eps[(b * ns + j) * h * d..(b * ns + j + 1) * h * d];
                    let sq: f64 = e.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
                    log_p.push((-0.5 * sq - dim * (sigma.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln())) as f32);
                }
            }
            let eps = tensor::<B::InnerBackend, 4>(eps, [n, ns, h, d], dev).mul_scalar(sigma);
            noisy.push((base.unsqueeze_dim::<4>(1) + eps).clamp(-1.0, 1.0));
        }
        // log_p is laid out source-major; reorder to [n, 3N].
        let mut ordered = Vec::with_capacity(n * 3 * ns);
        for b in 0..n {
            for s in 0..3 {
                let src = match s {
                    0 => &log_p[..n * ns],
                    1 => &log_p[n * ns..2 * n * ns],
                    _ => &log_p[2 * n * ns..],
                };
                ordered.extend_from_slice(&src[b * ns..(b + 1) * ns]);
            }
        }
        let mut chunks = vec![uniform];
        chunks.extend(noisy);
        (Tensor::cat(chunks, 1), tensor(ordered, [n, 3 * ns], dev))
    }

    /// Actor update.
    fn actor_step(&mut self, batch: &HostBatch) -> ActorStats {
        let dev = &self.device;
        let (h, d) = (self.config.horizon, self.config.action_dim);
        let obs = batch.obs.to_batch::<B>(&self.config, dev);
        let feat = self.critic.features(&obs, self.image_features(&obs)).detach();
        let pi = self.policy.forward(&obs);
        let (target, mask) = targets::<B>(batch, h, d, dev);
        // Advantage weights w_b = min(exp((A_b − mean A) / β), w_max), normalised to mean 1. The
        // batch mean is a baseline: the conservative term lowers Q on the policy's chunks, so A is
        // biased upwards for every sample, and exp(A / β) alone put nearly every weight at w_max
        // (measured: mean Q(s, a) 0.68 against Q(s, π(s)) 0.49 on the mixed pick_cube set),
        // which made the weighting uniform, i.e. plain BC.
        let q_pi = self.critic.forward(feat.clone(), pi.clone().clamp(-1.0, 1.0)).mean_dim(1); // [n, 1]
        let (mut clipped, mut failed_weight) = (0.0, None);
        let weights = if self.rl.awr_beta > 0.0 {
            let q_data = self.critic.forward(feat, target.clone()).mean_dim(1).detach();
            let (w, at_max) =
                advantage_weights(q_data - q_pi.clone().detach(), self.rl.awr_beta, self.rl.awr_max_weight);
            clipped = at_max;
            failed_weight = mean_weight_of_failed(&to_vec(w.clone()), &batch.mc_return);
            Some(w)
        } else {
            None
        };
        let bc = chunk_loss(self.loss, pi, target, mask, weights);
        let q_mean = q_pi.mean();
        let loss = if self.rl.actor_eta > 0.0 {
            let lambda = self.rl.actor_eta / f64::from(q_mean.clone().abs().into_scalar().elem::<f32>()).max(1e-3);
            bc - q_mean.clone().mul_scalar(lambda)
        } else {
            bc
        };
        let value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.policy);
        self.policy = self.policy_optim.step(self.rl.actor_lr * self.lr_factor, self.policy.clone(), grads);
        ActorStats { loss: value, q_pi: f64::from(q_mean.into_scalar().elem::<f32>()), at_max: clipped, failed_weight }
    }
}

/// What one actor update reports.
struct ActorStats {
    /// L_actor.
    loss: f64,
    /// Mean Q of the policy's chunks.
    q_pi: f64,
    /// Share of advantage weights at w_max.
    at_max: f64,
    /// Mean advantage weight of the batch's frames from failed episodes (see
    /// [`mean_weight_of_failed`]), when it has any.
    failed_weight: Option<f64>,
}

/// Mean advantage weight (weights normalised to mean 1 over the batch) of the frames whose
/// Monte-Carlo return is 0, the frames of episodes that never succeed under the sparse success
/// reward; `None` when the batch has none. Far below 1 when the critic tells their chunks from
/// the successful episodes' ones; 1 when the weighting does not (plain BC).
pub fn mean_weight_of_failed(weights: &[f32], mc_return: &[f32]) -> Option<f64> {
    let failed: Vec<f64> =
        weights.iter().zip(mc_return).filter(|(_, g)| **g == 0.0).map(|(w, _)| f64::from(*w)).collect();
    (!failed.is_empty()).then(|| failed.iter().sum::<f64>() / failed.len() as f64)
}

/// The actor's advantage weights of advantages `adv` (`[n, 1]`): w_b = min(exp((A_b − Ā) / β),
/// w_max) normalised to mean 1, with Ā the batch mean; and the share of weights at w_max.
pub fn advantage_weights<B: Backend>(adv: Tensor<B, 2>, beta: f64, max_weight: f64) -> (Tensor<B, 2>, f64) {
    let baseline = adv.clone().mean().into_scalar().elem::<f32>();
    let raw = adv.sub_scalar(baseline).div_scalar(beta).exp();
    let at_max = raw.clone().greater_equal_elem(max_weight).float().mean().into_scalar().elem::<f32>();
    let w = raw.clamp_max(max_weight);
    let mean = w.clone().mean().into_scalar().elem::<f32>().max(1e-6);
    (w.div_scalar(mean), f64::from(at_max))
}

impl<B: AutodiffBackend> Learner<B> for CoRftLearner<B> {
    fn update(&mut self, batch: &HostBatch, step: u64) -> Result<Vec<(&'static str, f64)>> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(0x5EED) ^ step.wrapping_mul(0xA24B_AED4_963E_E407));
        let (td, cql, q_data) = self.critic_step(batch, &mut rng);
        let mut out = vec![("td", td), ("cql", cql), ("q_data", q_data)];
        if step >= self.rl.critic_warmup && step.is_multiple_of(self.rl.actor_every.max(1)) {
            let stats = self.actor_step(batch);
            out.push(("actor", stats.loss));
            out.push(("q_pi", stats.q_pi));
            out.push(("awr_at_max", stats.at_max));
            if let Some(w) = stats.failed_weight {
                out.push(("awr_w_failed", w));
            }
            if let Some(avg) = self.average.as_mut() {
                let actor_updates = (step - self.rl.critic_warmup) / self.rl.actor_every.max(1);
                avg.update(self.policy.valid(), actor_updates);
            }
        }
        Ok(out)
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    fn policy(&self) -> ChunkPolicy<B::InnerBackend> {
        self.average.as_ref().and_then(WeightAverage::get).cloned().unwrap_or_else(|| self.policy.valid())
    }

    fn save_weights(&self, dir: &Path) -> Result<()> {
        save_module(&self.policy(), &dir.join(MODEL_STEM))?;
        save_module(&self.critic, &dir.join(CRITIC_STEM))
    }

    fn save_resume(&self, dir: &Path) -> Result<()> {
        save_module(&self.policy, &dir.join(MODEL_STEM))?;
        save_module(&self.critic, &dir.join(CRITIC_STEM))?;
        save_average(&self.average, dir)?;
        save_module(&self.target, &dir.join(TARGET_STEM))?;
        save_optim(&self.policy_optim, dir, "optim_policy")?;
        save_optim(&self.critic_optim, dir, "optim_critic")
    }

    fn load_resume(&mut self, dir: &Path) -> Result<()> {
        let dev = self.device.clone();
        self.policy = load_module(self.policy.clone(), &dir.join(MODEL_STEM), "policy", &dev)?;
        load_average(&mut self.average, self.policy.valid(), dir, &dev)?;
        self.critic = load_module(self.critic.clone(), &dir.join(CRITIC_STEM), "critic", &dev)?;
        self.target = load_module(self.target.clone(), &dir.join(TARGET_STEM), "target critic", &dev)?;
        self.policy_optim = load_optim(self.policy_optim.clone(), dir, "optim_policy", &dev)?;
        self.critic_optim = load_optim(self.critic_optim.clone(), dir, "optim_critic", &dev)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn weights(adv: &[f32], beta: f64, max: f64) -> (Vec<f32>, f64) {
        let t = Tensor::<Cpu, 1>::from_floats(adv, &Default::default()).reshape([adv.len(), 1]);
        let (w, at_max) = advantage_weights(t, beta, max);
        (w.into_data().to_vec::<f32>().unwrap(), at_max)
    }

    #[test]
    fn a_bias_shared_by_every_advantage_changes_no_weight() {
        // Advantages 0.1 apart at β = 0.05: weights in the ratio e² whatever the shared offset.
        // Without the baseline, an offset of 0.2 put both at w_max = 20 (uniform weights).
        let (w, at_max) = weights(&[0.0, 0.1], 0.05, 20.0);
        let (shifted, shifted_at_max) = weights(&[0.2, 0.3], 0.05, 20.0);
        let e2 = std::f32::consts::E.powi(2);
        assert!((w[1] / w[0] - e2).abs() < 1e-4, "{w:?}");
        assert!((w[0] + w[1] - 2.0).abs() < 1e-5, "mean 1: {w:?}");
        assert!(w.iter().zip(&shifted).all(|(a, b)| (a - b).abs() < 1e-5), "{w:?} {shifted:?}");
        assert_eq!((at_max, shifted_at_max), (0.0, 0.0));
        // A spread wider than w_max allows: the top weight is cut and counted.
        let (w, at_max) = weights(&[0.0, 0.0, 0.0, 1.0], 0.05, 20.0);
        assert!((at_max - 0.25).abs() < 1e-6 && w[3] > w[0], "{w:?} {at_max}");
    }

    #[test]
    fn the_failed_episodes_weight_averages_the_frames_with_no_return() {
        let w = [0.5, 1.5, 0.2, 1.8];
        let failed = mean_weight_of_failed(&w, &[0.0, 0.9, 0.0, 0.5]).expect("two failed frames");
        assert!((failed - 0.35).abs() < 1e-6, "{failed}");
        assert_eq!(mean_weight_of_failed(&w, &[0.1, 0.9, 0.3, 0.5]), None);
    }
}
