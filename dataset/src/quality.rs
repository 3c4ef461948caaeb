//! Dataset quality measures from Schweighofer et al., "A Dataset Perspective on Offline
//! Reinforcement Learning" (2022):
//!
//! - **TQ** (trajectory quality): the dataset's average episode return, normalised between a
//!   low reference (a random policy's return) and a high one (an expert's):
//!   `TQ = (mean_return − R_low) / (R_high − R_low)`.
//! - **SACo** (state-action coverage): unique state-action pairs in the dataset, normalised by a
//!   reference count: `SACo = |unique(s, a)| / reference`. The paper's environments are
//!   discrete; for continuous robot data each component is first z-scored with the dataset's
//!   statistics and binned to `bin_std` standard deviations. The reference defaults to the
//!   number of transitions (so 1.0 means every transition is distinct) or another dataset's
//!   unique count (as the paper normalises by an online-replay dataset).

use std::collections::HashSet;

use crate::reader::Dataset;

/// Quality measures of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Quality {
    /// Episodes.
    pub episodes: usize,
    /// Mean episode return (sum of `next.reward`).
    pub mean_return: f64,
    /// Fraction of episodes whose last frame has `next.success`.
    pub success_rate: f64,
    /// Trajectory quality, normalised return.
    pub tq: f64,
    /// Unique discretised state-action pairs.
    pub unique_pairs: usize,
    /// State-action coverage.
    pub saco: f64,
}

/// Episode returns (sum of rewards per episode).
pub fn episode_returns(ds: &Dataset) -> Vec<f64> {
    ds.episodes().iter().map(|e| (e.from_index..e.to_index).map(|i| f64::from(ds.reward(i as usize))).sum()).collect()
}

/// Unique state-action pairs after z-scoring and binning each component to `bin_std` standard
/// deviations.
pub fn unique_state_actions(ds: &Dataset, bin_std: f64) -> usize {
    let n = ds.len();
    let dims = ds.state_dim() + ds.env_state_dim() + ds.action_dim();
    let row = |i: usize| -> Vec<f32> {
        let mut v = ds.state(i).to_vec();
        v.extend_from_slice(ds.env_state(i));
        v.extend_from_slice(ds.action(i));
        v
    };
    let mut mean = vec![0.0f64; dims];
    let mut sq = vec![0.0f64; dims];
    for i in 0..n {
        for (k, x) in row(i).iter().enumerate() {
            mean[k] += f64::from(*x);
            sq[k] += f64::from(*x) * f64::from(*x);
        }
    }
    let nf = n.max(1) as f64;
    let std: Vec<f64> = (0..dims)
        .map(|k| {
            let m = mean[k] / nf;
            (sq[k] / nf - m * m).max(0.0).sqrt().max(1e-9)
        })
        .collect();
    let mean: Vec<f64> = mean.iter().map(|m| m / nf).collect();
    let mut seen = HashSet::with_capacity(n);
    for i in 0..n {
        let key: Vec<i64> = row(i)
            .iter()
            .enumerate()
            .map(|(k, x)| ((f64::from(*x) - mean[k]) / std[k] / bin_std).floor() as i64)
            .collect();
        seen.insert(key);
    }
    seen.len()
}

/// TQ and SACo of `ds`. `return_range` is `(R_low, R_high)`; `None` uses `(0, 1)`, the sparse
/// success reward's range in the sim scenes (a random policy scores ≈ 0, an expert 1).
/// `reference_pairs` normalises SACo; `None` uses the number of transitions.
pub fn quality(
    ds: &Dataset,
    return_range: Option<(f64, f64)>,
    bin_std: f64,
    reference_pairs: Option<usize>,
) -> Quality {
    let returns = episode_returns(ds);
    let mean_return = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
    let (lo, hi) = return_range.unwrap_or((0.0, 1.0));
    let tq = if hi > lo { (mean_return - lo) / (hi - lo) } else { f64::NAN };
    let successes =
        ds.episodes().iter().filter(|e| e.to_index > e.from_index && ds.success(e.to_index as usize - 1)).count();
    let unique_pairs = unique_state_actions(ds, bin_std);
    let reference = reference_pairs.unwrap_or(ds.len()).max(1);
    Quality {
        episodes: returns.len(),
        mean_return,
        success_rate: successes as f64 / returns.len().max(1) as f64,
        tq,
        unique_pairs,
        saco: unique_pairs as f64 / reference as f64,
    }
}
