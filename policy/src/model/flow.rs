//! The expressive base policy of EXPO: a conditional flow-matching head on the policy trunk.
//!
//! Notation: observation s, chunk a ∈ [−1, 1]^{H×D} (normalised), the trunk's query features
//! q(s) (`[H, d_model]`) and its deterministic chunk head μ(s). A sample starts from noise
//! x₀ ~ N(0, I) and follows the straight path x_t = (1 − t)·x₀ + t·a. The head predicts the end
//! point (the "x₁ form" of flow matching),
//! ```text
//! x̂₁(s, x_t, t) = μ(s) + r_θ(q(s), μ(s), x_t, t),     v(s, x_t, t) = (x̂₁ − x_t) / (1 − t)
//! L_flow = Σ_b Σ_{i<H} m_{b,i} ‖x̂₁(s_b, x_t, t)_i − a_{b,i}‖² / (D · Σ m),   t ~ U[0, 1)
//! ```
//! and sampling integrates v with `steps` Euler steps on t = 0, 1/T, …, (T−1)/T, which lands on
//! x̂₁ at the last step. The residual r_θ's output layer starts at zero, so a fresh head samples
//! exactly the BC policy's chunk μ(s): fine-tuning starts from the BC policy it was given, and
//! imitation then spreads the samples over the demonstrated chunks.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::batch::tensor;
use crate::config::PolicyConfig;
use crate::gaussian::normal_vec;
use crate::model::mlp::{Mlp, MlpConfig};
use crate::model::{ChunkPolicy, ObsBatch};
use crate::train::bc::chunk_mse;

/// Sizes of the flow head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowHeadConfig {
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Euler steps per sample (T).
    pub steps: usize,
    /// Sinusoidal features of t (even).
    pub time_features: usize,
}

impl Default for FlowHeadConfig {
    /// 3 × 256, 10 steps (EXPO's base policy: T = 10, Dong et al., 2025).
    fn default() -> FlowHeadConfig {
        FlowHeadConfig { hidden: 256, layers: 3, steps: 10, time_features: 16 }
    }
}

/// The residual network r_θ.
#[derive(Module, Debug)]
pub struct FlowHead<B: Backend> {
    /// [q(s) flattened, μ(s) flattened] → hidden (computed once per observation).
    cond: Linear<B>,
    /// [x_t flattened, time features] → hidden.
    input: Linear<B>,
    /// hidden → … → H·D (zero output at start).
    body: Mlp<B>,
    horizon: usize,
    action_dim: usize,
    time_features: usize,
    steps: usize,
}

/// sin/cos features of `t` (`[B, 1]`, in [0, 1]) at frequencies π·2^k, `[B, n]`.
fn time_embedding<B: Backend>(t: Tensor<B, 2>, n: usize) -> Tensor<B, 2> {
    let half = (n / 2).max(1);
    let freqs: Vec<f32> = (0..half).map(|k| std::f32::consts::PI * 2f32.powi(k as i32)).collect();
    let device = t.device();
    let angles = t * tensor::<B, 2>(freqs, [1, half], &device);
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}

impl<B: Backend> FlowHead<B> {
    /// A fresh head for `policy`'s chunks (r_θ = 0: samples equal μ(s)).
    pub fn new(policy: &PolicyConfig, config: &FlowHeadConfig, device: &B::Device) -> FlowHead<B> {
        let chunk = policy.horizon * policy.action_dim;
        let time_features = config.time_features.max(2) & !1;
        crate::train::backend_rng::initialised(FlowHead {
            cond: LinearConfig::new(policy.horizon * policy.d_model + chunk, config.hidden).init(device),
            input: LinearConfig::new(chunk + time_features, config.hidden).with_bias(false).init(device),
            body: MlpConfig::new(config.hidden, config.hidden, config.layers.saturating_sub(1), chunk)
                .with_zero_output()
                .init(device),
            horizon: policy.horizon,
            action_dim: policy.action_dim,
            time_features,
            steps: config.steps.max(1),
        })
    }

    /// Euler steps per sample.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The per-observation conditioning `[B, hidden]` from query features `[B, H, d]` and μ
    /// `[B, H, D]`.
    pub fn condition(&self, query: Tensor<B, 3>, mu: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, h, d] = query.dims();
        let [_, _, a] = mu.dims();
        self.cond.forward(Tensor::cat(vec![query.reshape([b, h * d]), mu.reshape([b, h * a])], 1))
    }

    /// The predicted end point x̂₁ `[B, H, D]` of `x` (`[B, H, D]`) at times `t` (`[B, 1]`).
    pub fn endpoint(&self, cond: Tensor<B, 2>, mu: Tensor<B, 3>, x: Tensor<B, 3>, t: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, h, d] = x.dims();
        let inp = Tensor::cat(vec![x.reshape([b, h * d]), time_embedding(t, self.time_features)], 1);
        let r = self.body.forward(relu(cond + self.input.forward(inp)));
        mu + r.reshape([b, h, d])
    }
}

/// The base policy: the BC trunk with its chunk head μ, plus the flow head.
#[derive(Module, Debug)]
pub struct FlowPolicy<B: Backend> {
    /// The trunk and deterministic head (a [`ChunkPolicy`], as trained by BC).
    pub trunk: ChunkPolicy<B>,
    /// The residual flow head.
    pub head: FlowHead<B>,
}

impl<B: Backend> FlowPolicy<B> {
    /// Wraps a BC policy with a fresh flow head.
    pub fn new(trunk: ChunkPolicy<B>, policy: &PolicyConfig, config: &FlowHeadConfig, device: &B::Device) -> Self {
        FlowPolicy { head: FlowHead::new(policy, config, device), trunk }
    }

    /// The flow-matching imitation loss L_flow on chunks `target` (`[B, H, D]`) with `mask`
    /// (`[B, H]`); x₀ and t are drawn from `rng`.
    pub fn loss(
        &self,
        obs: &ObsBatch<B>,
        target: Tensor<B, 3>,
        mask: Tensor<B, 2>,
        rng: &mut impl Rng,
    ) -> Tensor<B, 1> {
        let [b, h, d] = target.dims();
        let device = target.device();
        let query = self.trunk.query_features(obs);
        let mu = self.trunk.head_forward(query.clone());
        let cond = self.head.condition(query, mu.clone());
        let x0 = tensor::<B, 3>(normal_vec(rng, b * h * d), [b, h, d], &device);
        let t: Vec<f32> = (0..b).map(|_| rng.random_range(0.0f32..1.0)).collect();
        let t = tensor::<B, 2>(t, [b, 1], &device);
        let tt = t.clone().unsqueeze_dim::<3>(2);
        let xt = x0 * (tt.clone().neg().add_scalar(1.0)) + target.clone() * tt;
        chunk_mse(self.head.endpoint(cond, mu, xt, t), target, mask, None)
    }

    /// `n` sampled chunks per observation, `[B·n, H, D]` observation-major, clamped to [−1, 1];
    /// the starting noise comes from `rng`, so a seed fixes the samples.
    pub fn sample(&self, obs: &ObsBatch<B>, n: usize, rng: &mut impl Rng) -> Tensor<B, 3> {
        let query = self.trunk.query_features(obs);
        let mu = self.trunk.head_forward(query.clone());
        let cond = self.head.condition(query, mu.clone());
        let [b, h, d] = mu.dims();
        let hidden = cond.dims()[1];
        let cond = cond.unsqueeze_dim::<3>(1).repeat_dim(1, n).reshape([b * n, hidden]);
        let mu = mu.unsqueeze_dim::<4>(1).repeat_dim(1, n).reshape([b * n, h, d]);
        let device = mu.device();
        let mut x = tensor::<B, 3>(normal_vec(rng, b * n * h * d), [b * n, h, d], &device);
        let steps = self.head.steps();
        for k in 0..steps {
            let t = k as f64 / steps as f64;
            let x1 = self.head.endpoint(cond.clone(), mu.clone(), x.clone(), Tensor::full([b * n, 1], t, &device));
            // x ← x + dt · (x̂₁ − x) / (1 − t); the last step lands on x̂₁.
            let w = (1.0 / steps as f64) / (1.0 - t);
            x = x.clone() + (x1 - x).mul_scalar(w);
        }
        x.clamp(-1.0, 1.0)
    }
}
