//! H2O: scarce real transitions mixed with sim rollouts, sim TD errors weighted by a
//! discriminator-estimated dynamics ratio (Niu et al., 2022, “When to Trust Your Simulator:
//! Dynamics-Aware Hybrid Offline-and-Online Reinforcement Learning”).
//!
//! Each batch holds n_r real chunks (the offline rows) and n_s sim chunks (the online replay).
//! Per critic update: the discriminators ([`Discriminators`]) take one cross-entropy step
//! (real = class 0, sim = class 1, inputs with N(0, σ²) noise); then, with ρ_i their dynamics
//! ratio on sim row i and u_i = clip(log(P_sim/P_real)_i, 10⁻⁵, 10⁵) = clip(−log ρ_i),
//! ω_i = u_i / Σ_j u_j:
//! ```text
//! L_Q = (1/K) Σ_k [ mean_real (Q_k − y)² + mean_sim clip(ρ, 10⁻⁵, 1)·(Q_k − y)²
//!                   + λ·( log Σ_{i∈sim} exp(Q_k(s_i, a_i) + log ω_i) − mean_real Q_k ) ]
//! ```
//! λ = 0.01; y the SAC target ([`crate::online::sac`]); the actor is SAC's.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{tensor, to_vec, HostObs};
use crate::error::Result;
use crate::gaussian::normal_vec;
use crate::model::Discriminators;
use crate::online::collect::ChunkActor;
use crate::online::sac::{SacConfig, SacLearner};
use crate::online::OnlineLearner;
use crate::train::adam::{adam, AdamOptimizer};
use crate::train::data::HostBatch;

/// H2O hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct H2oConfig {
    /// The SAC actor-critic.
    pub sac: SacConfig,
    /// Discriminator hidden width (two layers).
    pub disc_hidden: usize,
    /// σ of the discriminators' input noise in training.
    pub disc_noise: f64,
    /// Discriminator learning rate.
    pub disc_lr: f64,
    /// λ of the sim Q penalty.
    pub penalty: f64,
    /// Lower clip of the dynamics ratio weight (the upper is 1).
    pub ratio_min: f64,
}

impl Default for H2oConfig {
    /// H2O's published settings: MLP 256-256, noise 0.1, λ 0.01, ρ clipped to [10⁻⁵, 1].
    fn default() -> H2oConfig {
        H2oConfig {
            sac: SacConfig::default(),
            disc_hidden: 256,
            disc_noise: 0.1,
            disc_lr: 3e-4,
            penalty: 0.01,
            ratio_min: 1e-5,
        }
    }
}

/// Rows `rows` of a batch as discriminator inputs: (s, a, s′) flattened, host vectors.
pub fn transition_rows(
    batch: &HostBatch,
    rows: std::ops::Range<usize>,
    chunk: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let state = |o: &HostObs| {
        let (sd, ed) = (o.state.len() / o.n.max(1), o.env_state.len() / o.n.max(1));
        let mut v = Vec::with_capacity(rows.len() * (sd + ed));
        for r in rows.clone() {
            v.extend_from_slice(&o.state[r * sd..(r + 1) * sd]);
            v.extend_from_slice(&o.env_state[r * ed..(r + 1) * ed]);
        }
        v
    };
    (state(&batch.obs), batch.actions[rows.start * chunk..rows.end * chunk].to_vec(), state(&batch.next_obs))
}

/// The discriminators' inputs of `rows` as tensors, with N(0, `noise`²) added when `noise > 0`.
fn inputs<B: Backend>(
    batch: &HostBatch,
    rows: std::ops::Range<usize>,
    chunk: usize,
    noise: f64,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
    let n = rows.len();
    let (s, a, s2) = transition_rows(batch, rows, chunk);
    let w = s.len() / n.max(1);
    let mut noisy = |mut v: Vec<f32>| {
        if noise > 0.0 {
            let eps = normal_vec(rng, v.len());
            for (x, e) in v.iter_mut().zip(eps) {
                *x += noise as f32 * e;
            }
        }
        v
    };
    (tensor(noisy(s), [n, w], device), tensor(noisy(a), [n, chunk], device), tensor(noisy(s2), [n, w], device))
}

/// One cross-entropy step of `disc` on the real rows `..offline` and sim rows `offline..` of
/// `batch`; returns the updated discriminators and the loss.
#[allow(clippy::too_many_arguments)]
pub fn discriminator_step<B: AutodiffBackend>(
    disc: Discriminators<B>,
    optim: &mut AdamOptimizer<Discriminators<B>, B>,
    batch: &HostBatch,
    offline: usize,
    chunk: usize,
    noise: f64,
    lr: f64,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> (Discriminators<B>, f64) {
    let real = inputs::<B>(batch, 0..offline, chunk, noise, rng, device);
    let sim = inputs::<B>(batch, offline..batch.len(), chunk, noise, rng, device);
    let loss = disc.loss(real, sim);
    let value = f64::from(loss.clone().into_scalar().elem::<f32>());
    let grads = GradientsParams::from_grads(loss.backward(), &disc);
    (optim.step(lr, disc, grads), value)
}

/// The dynamics ratio ρ of rows `rows` of `batch` (no input noise).
pub fn dynamics_ratio<B: Backend>(
    disc: &Discriminators<B>,
    batch: &HostBatch,
    rows: std::ops::Range<usize>,
    chunk: usize,
    device: &B::Device,
) -> Vec<f32> {
    let n = rows.len();
    let (s, a, s2) = transition_rows(batch, rows, chunk);
    let w = s.len() / n.max(1);
    let log_ratio =
        disc.log_ratio(tensor(s, [n, w], device), tensor(a, [n, chunk], device), tensor(s2, [n, w], device));
    to_vec(log_ratio).into_iter().map(f32::exp).collect()
}

/// H2O learner state.
pub struct H2oLearner<B: AutodiffBackend> {
    sac: SacLearner<B>,
    disc: Discriminators<B>,
    disc_optim: AdamOptimizer<Discriminators<B>, B>,
    cfg: H2oConfig,
    chunk: usize,
    device: B::Device,
}

impl<B: AutodiffBackend> H2oLearner<B> {
    /// Wraps a SAC learner with fresh discriminators for states of width `state_width`.
    pub fn new(sac: SacLearner<B>, state_width: usize, chunk: usize, cfg: &H2oConfig, device: &B::Device) -> Self {
        H2oLearner {
            sac,
            disc: Discriminators::new(state_width, chunk, cfg.disc_hidden, device),
            disc_optim: adam(),
            cfg: cfg.clone(),
            chunk,
            device: device.clone(),
        }
    }
}

impl<B: AutodiffBackend> OnlineLearner<B> for H2oLearner<B> {
    fn critic_update(
        &mut self,
        batch: &HostBatch,
        offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        let n = batch.len();
        let n_sim = n - offline.min(n);
        if offline == 0 || n_sim == 0 {
            // Only one source so far: plain TD.
            return self.sac.critic_update(batch, offline, rng);
        }
        let dev = self.device.clone();
        let (disc, disc_loss) = discriminator_step(
            self.disc.clone(),
            &mut self.disc_optim,
            batch,
            offline,
            self.chunk,
            self.cfg.disc_noise,
            self.cfg.disc_lr,
            rng,
            &dev,
        );
        self.disc = disc;
        let rho = dynamics_ratio(&self.disc.valid(), batch, offline..n, self.chunk, &dev);
        let weights: Vec<f32> = rho.iter().map(|r| r.clamp(self.cfg.ratio_min as f32, 1.0)).collect();
        let u: Vec<f32> = rho.iter().map(|r| (-r.max(1e-30).ln()).clamp(1e-5, 1e5)).collect();
        let total: f32 = u.iter().sum();
        let log_omega: Vec<f32> = u.iter().map(|x| (x / total).ln()).collect();
        let (sq, q) = self.sac.td_errors(batch, rng);
        let k = q.dims()[1];
        let real_td = sq.clone().narrow(0, 0, offline).mean();
        let w = tensor::<B, 2>(weights.clone(), [n_sim, 1], &dev);
        let sim_td = (sq.narrow(0, offline, n_sim) * w).mean();
        let q_sim = q.clone().narrow(0, offline, n_sim) + tensor::<B, 2>(log_omega, [n_sim, 1], &dev); // [n_sim, K]
        let max = q_sim.clone().max_dim(0).detach();
        let lse = (q_sim - max.clone()).exp().sum_dim(0).log() + max; // [1, K]
        let penalty = (lse.squeeze_dim::<1>(0) - q.narrow(0, 0, offline).mean_dim(0).squeeze_dim::<1>(0))
            .sum()
            .div_scalar(k as f64);
        let loss = real_td.clone() + sim_td.clone() + penalty.clone().mul_scalar(self.cfg.penalty);
        let scalar = |t: &Tensor<B, 1>| f64::from(t.clone().into_scalar().elem::<f32>());
        let out = vec![
            ("td_real", scalar(&real_td)),
            ("td_sim", scalar(&sim_td)),
            ("penalty", scalar(&penalty)),
            ("disc", disc_loss),
            ("rho_sim", f64::from(rho.iter().sum::<f32>() / n_sim as f32)),
            ("weight_sim", f64::from(weights.iter().sum::<f32>() / n_sim as f32)),
        ];
        self.sac.critic_step(loss);
        Ok(out)
    }

    fn actor_update(
        &mut self,
        batch: &HostBatch,
        offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>> {
        self.sac.actor_update(batch, offline, rng)
    }

    fn actor(&self, seed: u64) -> Box<dyn ChunkActor> {
        self.sac.actor(seed)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.sac.save(dir)?;
        crate::checkpoint::save_module(&self.disc.valid(), &dir.join("discriminators"))
    }
}
