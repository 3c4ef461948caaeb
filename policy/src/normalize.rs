//! Feature normalisation, computed once from the training data and saved with the checkpoint.
//!
//! States use z-scores (mean 0, std 1, std floored at 1e-3 · range so constant features stay 0).
//! Actions are mapped to [−1, 1] by their min/max: the box Cal-QL draws uniform actions from.

use serde::{Deserialize, Serialize};

/// Per-component z-score normaliser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    /// Means.
    pub mean: Vec<f32>,
    /// Standard deviations (floored).
    pub std: Vec<f32>,
}

/// Per-component min/max → [−1, 1] normaliser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// Minima.
    pub min: Vec<f32>,
    /// Maxima.
    pub max: Vec<f32>,
}

/// Running sums for one vector feature.
#[derive(Clone, Debug, Default)]
pub struct FeatureAccumulator {
    n: f64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    min: Vec<f32>,
    max: Vec<f32>,
}

impl FeatureAccumulator {
    /// Adds one vector.
    pub fn push(&mut self, v: &[f32]) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; v.len()];
            self.sum_sq = vec![0.0; v.len()];
            self.min = vec![f32::INFINITY; v.len()];
            self.max = vec![f32::NEG_INFINITY; v.len()];
        }
        self.n += 1.0;
        for (k, x) in v.iter().enumerate().take(self.sum.len()) {
            self.sum[k] += f64::from(*x);
            self.sum_sq[k] += f64::from(*x) * f64::from(*x);
            self.min[k] = self.min[k].min(*x);
            self.max[k] = self.max[k].max(*x);
        }
    }

    /// The z-score normaliser of what was pushed (width `dim` when nothing was).
    pub fn z_score(&self, dim: usize) -> ZScore {
        if self.n == 0.0 {
            return ZScore { mean: vec![0.0; dim], std: vec![1.0; dim] };
        }
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for k in 0..self.sum.len() {
            let m = self.sum[k] / self.n;
            let var = (self.sum_sq[k] / self.n - m * m).max(0.0);
            let floor = (1e-3 * f64::from(self.max[k] - self.min[k])).max(1e-6);
            mean.push(m as f32);
            std.push(var.sqrt().max(floor) as f32);
        }
        ZScore { mean, std }
    }

    /// The min/max normaliser of what was pushed.
    pub fn min_max(&self, dim: usize) -> MinMax {
        if self.n == 0.0 {
            return MinMax { min: vec![-1.0; dim], max: vec![1.0; dim] };
        }
        MinMax { min: self.min.clone(), max: self.max.clone() }
    }
}

impl ZScore {
    /// Normalises `v` in place.
    pub fn apply(&self, v: &mut [f32]) {
        for (k, x) in v.iter_mut().enumerate() {
            *x = (*x - self.mean[k % self.mean.len()]) / self.std[k % self.std.len()];
        }
    }
}

impl MinMax {
    fn half_range(&self, k: usize) -> f32 {
        ((self.max[k] - self.min[k]) * 0.5).max(1e-6)
    }

    /// Maps raw values (rows of width `min.len()`) to [−1, 1] in place.
    pub fn apply(&self, v: &mut [f32]) {
        let d = self.min.len();
        for (k, x) in v.iter_mut().enumerate() {
            let c = k % d;
            *x = (*x - self.min[c]) / self.half_range(c) - 1.0;
        }
    }

    /// Maps normalised values back to raw units in place, clamping to [−1, 1] first.
    pub fn invert(&self, v: &mut [f32]) {
        let d = self.min.len();
        for (k, x) in v.iter_mut().enumerate() {
            let c = k % d;
            *x = (x.clamp(-1.0, 1.0) + 1.0) * self.half_range(c) + self.min[c];
        }
    }
}

/// Everything that maps raw observations and actions to the model's inputs and outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Proprioception.
    pub state: ZScore,
    /// Object state (empty for vision policies).
    pub env_state: ZScore,
    /// Actions.
    pub action: MinMax,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_round_trip_and_z_score() {
        let mut acc = FeatureAccumulator::default();
        acc.push(&[0.0, 10.0]);
        acc.push(&[2.0, 10.0]);
        let mm = acc.min_max(2);
        let mut v = vec![1.0, 10.0, 2.0, 10.0];
        mm.apply(&mut v);
        assert_eq!(v, vec![0.0, -1.0, 1.0, -1.0]);
        mm.invert(&mut v);
        assert_eq!(v, vec![1.0, 10.0, 2.0, 10.0]);
        let z = acc.z_score(2);
        assert_eq!(z.mean, vec![1.0, 10.0]);
        assert_eq!(z.std[0], 1.0);
        assert!(z.std[1] > 0.0 && z.std[1] <= 1e-5);
    }
}
