//! The ICVF objective (Ghosh, Bhateja, Levine, 2023, “Reinforcement Learning from Passive Data
//! via Latent Intentions”), as a function of value tensors so it can be checked by hand.
//!
//! With r = 1[s = g] − 1, m = 1 − 1[s = g] (and r_z, m_z for the intent z):
//! - target q_i = r + γ·m·V̄_i(s′, g, z);
//! - intent advantage A = r_z + γ·m_z·min_i V̄_i(s′, z, z) − mean_i V̄_i(s, z, z);
//! - loss = Σ_i E[w·(q_i − V_i(s, g, z))²] with the expectile weight w = τ if A ≥ 0 else 1 − τ.

use burn::prelude::*;

/// One batch's values and rewards; `[B, E]` for E ensemble members, `[B]` per sample.
pub struct IcvfTerms<B: Backend> {
    /// V_i(s, g, z), online network.
    pub v: Tensor<B, 2>,
    /// V̄_i(s′, g, z), target network.
    pub next_g: Tensor<B, 2>,
    /// V̄_i(s′, z, z), target network.
    pub next_z: Tensor<B, 2>,
    /// V̄_i(s, z, z), target network.
    pub now_z: Tensor<B, 2>,
    /// r = 1[s = g] − 1.
    pub r: Tensor<B, 1>,
    /// m = 1 − 1[s = g].
    pub m: Tensor<B, 1>,
    /// r_z = 1[s = z] − 1.
    pub r_z: Tensor<B, 1>,
    /// m_z = 1 − 1[s = z].
    pub m_z: Tensor<B, 1>,
}

/// Scalars logged by training.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IcvfStats {
    /// The loss.
    pub loss: f64,
    /// Mean V(s, g, z).
    pub v_mean: f64,
    /// Fraction of samples with a non-negative intent advantage.
    pub adv_positive: f64,
}

/// The loss (a scalar tensor, differentiable through `v`) and its statistics.
pub fn icvf_loss<B: Backend>(t: IcvfTerms<B>, gamma: f64, expectile: f64) -> (Tensor<B, 1>, IcvfStats) {
    let [batch, _] = t.v.dims();
    let q = t.next_g.detach().mul(t.m.clone().unsqueeze_dim::<2>(1).mul_scalar(gamma)) + t.r.unsqueeze_dim::<2>(1);
    let next_z_min = t.next_z.detach().min_dim(1).squeeze_dim::<1>(1);
    let adv = t.r_z + t.m_z.mul(next_z_min).mul_scalar(gamma) - t.now_z.detach().mean_dim(1).squeeze_dim::<1>(1);
    let positive = adv.greater_equal_elem(0.0).float();
    let w = positive.clone().mul_scalar(expectile) + positive.clone().neg().add_scalar(1.0).mul_scalar(1.0 - expectile);
    let err = (q - t.v.clone()).powi_scalar(2);
    let loss = err.mul(w.unsqueeze_dim::<2>(1)).sum().div_scalar(batch as f64);
    let stats = IcvfStats {
        loss: loss.clone().into_scalar().elem::<f64>(),
        v_mean: t.v.mean().into_scalar().elem::<f64>(),
        adv_positive: positive.mean().into_scalar().elem::<f64>(),
    };
    (loss, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::Cpu;

    type B = Cpu;

    fn t2(v: [[f32; 2]; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.concat(), [2, 2]), &Default::default())
    }

    fn t1(v: [f32; 2]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [2]), &Default::default())
    }

    #[test]
    fn matches_a_hand_computed_batch() {
        // Sample 0: s ≠ g (r −1, m 1), s ≠ z (r_z −1, m_z 1).
        // Sample 1: s = g (r 0, m 0), s = z (r_z 0, m_z 0).
        let terms = IcvfTerms {
            v: t2([[-2.0, -3.0], [-0.5, 0.5]]),
            next_g: t2([[-4.0, -2.0], [-9.0, -9.0]]),
            next_z: t2([[-1.0, -3.0], [-7.0, -7.0]]),
            now_z: t2([[-5.0, -1.0], [-1.0, -2.0]]),
            r: t1([-1.0, 0.0]),
            m: t1([1.0, 0.0]),
            r_z: t1([-1.0, 0.0]),
            m_z: t1([1.0, 0.0]),
        };
        let (loss, stats) = icvf_loss(terms, 0.5, 0.9);
        // Sample 0: q = −1 + 0.5·(−4, −2) = (−3, −2); A = −1 + 0.5·min(−1, −3) − mean(−5, −1) = 0.5 ≥ 0
        //   → w 0.9; errors (−3 − −2)² = 1, (−2 − −3)² = 1 → 0.9·2 = 1.8.
        // Sample 1: q = (0, 0); A = 0 − mean(−1, −2) = 1.5 ≥ 0 → w 0.9; errors 0.25 + 0.25 → 0.45.
        // Mean over the batch of the ensemble sums: (1.8 + 0.45) / 2 = 1.125.
        assert!((stats.loss - 1.125).abs() < 1e-6, "{stats:?}");
        assert!((loss.into_scalar() - 1.125).abs() < 1e-6);
        assert_eq!(stats.adv_positive, 1.0);
        // A negative advantage weighs 1 − τ: make sample 0's intent look bad.
        let terms = IcvfTerms {
            v: t2([[-2.0, -3.0], [-0.5, 0.5]]),
            next_g: t2([[-4.0, -2.0], [-9.0, -9.0]]),
            next_z: t2([[-9.0, -9.0], [-7.0, -7.0]]),
            now_z: t2([[-1.0, -1.0], [-1.0, -2.0]]),
            r: t1([-1.0, 0.0]),
            m: t1([1.0, 0.0]),
            r_z: t1([-1.0, 0.0]),
            m_z: t1([1.0, 0.0]),
        };
        // A₀ = −1 + 0.5·(−9) + 1 = −4.5 < 0 → w 0.1 → 0.2; total (0.2 + 0.45) / 2 = 0.325.
        let (_, stats) = icvf_loss(terms, 0.5, 0.9);
        assert!((stats.loss - 0.325).abs() < 1e-6, "{stats:?}");
        assert_eq!(stats.adv_positive, 0.5);
    }
}
