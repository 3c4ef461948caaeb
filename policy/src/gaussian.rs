//! Gaussian noise from a seeded RNG (so a seed fixes every sample) and the densities of the
//! Gaussian and tanh-squashed Gaussian policies.

use burn::prelude::*;
use rand::Rng;
use rand_distr::StandardNormal;

/// ½·ln(2π).
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// One N(0, 1) sample (the ziggurat method of Marsaglia & Tsang 2000, `rand_distr`'s
/// [`StandardNormal`]: a few nanoseconds where Box–Muller's logarithm and cosine take tens; the
/// flow policies draw hundreds of thousands per update).
pub fn normal(rng: &mut impl Rng) -> f32 {
    rng.sample(StandardNormal)
}

/// `n` N(0, 1) samples.
pub fn normal_vec(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| normal(rng)).collect()
}

/// log N(μ + σ·ε; μ, σ²) summed over the last dimension, `[B, 1]`, from the standard noise `eps`
/// and `log_std` (both `[B, A]`): Σ_j (−½ε_j² − log σ_j − ½ ln 2π).
pub fn gaussian_log_prob<B: Backend>(eps: Tensor<B, 2>, log_std: Tensor<B, 2>) -> Tensor<B, 2> {
    let a = eps.dims()[1] as f64;
    (eps.powf_scalar(2.0).mul_scalar(-0.5) - log_std).sum_dim(1).sub_scalar(a * HALF_LN_2PI)
}

/// A tanh-squashed Gaussian sample u = tanh(μ + σ·ε) (`[B, A]`) and its log density `[B, 1]`:
/// log N(z) − Σ_j log(1 − u_j² + 10⁻⁶) with z = μ + σ·ε.
pub fn tanh_gaussian<B: Backend>(
    mean: Tensor<B, 2>,
    log_std: Tensor<B, 2>,
    eps: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let z = mean + log_std.clone().exp() * eps.clone();
    let u = z.tanh();
    let log_p =
        gaussian_log_prob(eps, log_std) - (u.clone().powf_scalar(2.0).neg().add_scalar(1.0 + 1e-6)).log().sum_dim(1);
    (u, log_p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{tensor, to_vec};
    use crate::Cpu;

    #[test]
    fn log_densities_match_hand_computed_values() {
        let dev = Default::default();
        // One sample, two dims: ε = (1, 0), log σ = (0, ln 2): −½ − 0 − 0 − ln 2 − 2·0.9189.
        let eps = tensor::<Cpu, 2>(vec![1.0, 0.0], [1, 2], &dev);
        let log_std = tensor::<Cpu, 2>(vec![0.0, 2f32.ln()], [1, 2], &dev);
        let lp = to_vec(gaussian_log_prob(eps.clone(), log_std.clone()))[0];
        let want = -0.5 - 2f32.ln() - 2.0 * HALF_LN_2PI as f32;
        assert!((lp - want).abs() < 1e-5, "{lp} vs {want}");
        // Squashed: z = (0 + 1·1, 0 + 2·0) = (1, 0); u = (tanh 1, 0); correction −ln(1 − tanh²1) − ln 1.
        let mean = tensor::<Cpu, 2>(vec![0.0, 0.0], [1, 2], &dev);
        let (u, lp2) = tanh_gaussian(mean, log_std, eps);
        let u = to_vec(u);
        assert!((u[0] - 1f32.tanh()).abs() < 1e-6 && u[1].abs() < 1e-6);
        let want2 = want - (1.0 - 1f32.tanh().powi(2) + 1e-6).ln() - (1.0f32 + 1e-6).ln();
        assert!((to_vec(lp2)[0] - want2).abs() < 1e-4);
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x = normal_vec(&mut rng, 20_000);
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / x.len() as f32;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }
}
