//! Latency summaries shared by the nodes' reports and the benchmarks.

use serde::{Deserialize, Serialize};

/// Percentiles of a sample, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of `values_ms` (nearest rank).
    pub fn of(values_ms: &[f64]) -> Percentiles {
        if values_ms.is_empty() {
            return Percentiles::default();
        }
        let mut v = values_ms.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Percentiles { n: v.len(), p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.n, p.p50_ms, p.p99_ms, p.max_ms), (100, 51.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
