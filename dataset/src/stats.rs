//! Feature statistics as LeRobot writes them in `meta/stats.json`: per feature `min`, `max`,
//! `mean`, `std` (population, ddof 0), `count`, and the quantiles `q01 q10 q50 q90 q99`
//! (linear interpolation between order statistics, NumPy's default).
//!
//! Vector features keep every value, so the statistics are exact. Image features keep a
//! 256-bin histogram per channel, which is exact for 8-bit pixels; their statistics are per
//! channel in 0…1 with shape `[3, 1, 1]`, as LeRobot stores them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The quantiles in `stats.json`: key and probability.
pub const QUANTILES: [(&str, f64); 5] = [("q01", 0.01), ("q10", 0.10), ("q50", 0.50), ("q90", 0.90), ("q99", 0.99)];

/// Statistics of one feature, one entry per component (vector element or image channel).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStats {
    /// Minimum per component.
    pub min: Vec<f64>,
    /// Maximum per component.
    pub max: Vec<f64>,
    /// Mean per component.
    pub mean: Vec<f64>,
    /// Population standard deviation per component.
    pub std: Vec<f64>,
    /// Number of frames.
    pub count: u64,
    /// Quantiles per component, keyed as in [`QUANTILES`] (missing in older datasets).
    pub quantiles: BTreeMap<String, Vec<f64>>,
    /// Whether this is an image feature (serialised with shape `[C, 1, 1]`).
    pub image: bool,
}

impl FeatureStats {
    /// No components yet, `count` frames, every quantile key present.
    fn empty(count: u64, image: bool) -> FeatureStats {
        FeatureStats {
            min: Vec::new(),
            max: Vec::new(),
            mean: Vec::new(),
            std: Vec::new(),
            count,
            quantiles: QUANTILES.iter().map(|(k, _)| (k.to_string(), Vec::new())).collect(),
            image,
        }
    }

    /// The JSON object of this feature in `stats.json`.
    pub fn to_json(&self) -> Value {
        let wrap = |v: &[f64]| -> Value {
            if self.image {
                Value::Array(v.iter().map(|x| json!([[x]])).collect())
            } else {
                json!(v)
            }
        };
        let mut obj = serde_json::Map::new();
        obj.insert("min".into(), wrap(&self.min));
        obj.insert("max".into(), wrap(&self.max));
        obj.insert("mean".into(), wrap(&self.mean));
        obj.insert("std".into(), wrap(&self.std));
        obj.insert("count".into(), json!([self.count]));
        for (k, v) in &self.quantiles {
            obj.insert(k.clone(), wrap(v));
        }
        Value::Object(obj)
    }

    /// Parses one feature's JSON object (nested arrays are flattened). `None` when `min`,
    /// `max`, `mean` or `std` is missing.
    pub fn from_json(v: &Value) -> Option<FeatureStats> {
        let flat = |key: &str| v.get(key).map(flatten);
        let min = flat("min")?;
        let image = v.get("min").and_then(|m| m.as_array()).and_then(|a| a.first()).is_some_and(|x| x.is_array());
        let count = flat("count").and_then(|c| c.first().copied()).unwrap_or(0.0) as u64;
        let quantiles =
            QUANTILES.iter().filter_map(|(k, _)| flat(k).map(|q| (k.to_string(), q))).collect::<BTreeMap<_, _>>();
        Some(FeatureStats { min, max: flat("max")?, mean: flat("mean")?, std: flat("std")?, count, quantiles, image })
    }
}

fn flatten(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flatten).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN)],
        _ => Vec::new(),
    }
}

/// Quantile `q` of sorted `values` with linear interpolation (NumPy's default).
pub fn quantile_sorted(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// Exact statistics of a vector feature, accumulated frame by frame.
#[derive(Clone, Debug, Default)]
pub struct VectorStats {
    columns: Vec<Vec<f64>>,
}

impl VectorStats {
    /// Empty accumulator for vectors of `dim` components.
    pub fn new(dim: usize) -> VectorStats {
        VectorStats { columns: vec![Vec::new(); dim] }
    }

    /// Adds one frame's vector (extra components are ignored, missing ones skipped).
    pub fn push(&mut self, v: &[f32]) {
        for (c, x) in self.columns.iter_mut().zip(v) {
            c.push(f64::from(*x));
        }
    }

    /// Adds one scalar frame value (for 1-component features).
    pub fn push_scalar(&mut self, x: f64) {
        if let Some(c) = self.columns.first_mut() {
            c.push(x);
        }
    }

    /// Frames accumulated.
    pub fn count(&self) -> u64 {
        self.columns.first().map_or(0, |c| c.len() as u64)
    }

    /// The statistics so far.
    pub fn finish(&self) -> FeatureStats {
        let mut s = FeatureStats::empty(self.count(), false);
        for col in &self.columns {
            let mut sorted = col.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let n = sorted.len().max(1) as f64;
            let mean = sorted.iter().sum::<f64>() / n;
            let var = sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            s.min.push(sorted.first().copied().unwrap_or(f64::NAN));
            s.max.push(sorted.last().copied().unwrap_or(f64::NAN));
            s.mean.push(mean);
            s.std.push(var.sqrt());
            for (k, q) in QUANTILES {
                if let Some(v) = s.quantiles.get_mut(k) {
                    v.push(quantile_sorted(&sorted, q));
                }
            }
        }
        s
    }
}

/// Exact per-channel statistics of 8-bit RGB images (values reported in 0…1).
#[derive(Clone, Debug)]
pub struct ImageStats {
    hist: Vec<[u64; 256]>,
    frames: u64,
}

impl Default for ImageStats {
    fn default() -> Self {
        ImageStats { hist: vec![[0; 256]; 3], frames: 0 }
    }
}

impl ImageStats {
    /// Adds one interleaved RGB8 image.
    pub fn push_rgb8(&mut self, rgb: &[u8]) {
        for px in rgb.chunks_exact(3) {
            for (h, v) in self.hist.iter_mut().zip(px) {
                h[*v as usize] += 1;
            }
        }
        self.frames += 1;
    }

    /// Frames accumulated.
    pub fn count(&self) -> u64 {
        self.frames
    }

    /// Adds another accumulator's pixels and frames.
    pub fn merge(&mut self, other: &ImageStats) {
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.frames += other.frames;
    }

    /// The statistics so far.
    pub fn finish(&self) -> FeatureStats {
        let mut s = FeatureStats::empty(self.frames, true);
        for h in &self.hist {
            let n: u64 = h.iter().sum();
            let nf = n.max(1) as f64;
            let mean = h.iter().enumerate().map(|(v, c)| v as f64 * *c as f64).sum::<f64>() / nf;
            let var = h.iter().enumerate().map(|(v, c)| (v as f64 - mean).powi(2) * *c as f64).sum::<f64>() / nf;
            let min = h.iter().position(|c| *c > 0).unwrap_or(0) as f64;
            let max = h.iter().rposition(|c| *c > 0).unwrap_or(0) as f64;
            s.min.push(min / 255.0);
            s.max.push(max / 255.0);
            s.mean.push(mean / 255.0);
            s.std.push(var.sqrt() / 255.0);
            for (k, q) in QUANTILES {
                if let Some(v) = s.quantiles.get_mut(k) {
                    v.push(histogram_quantile(h, n, q) / 255.0);
                }
            }
        }
        s
    }
}

/// The value at sorted position `k` of the multiset a histogram describes.
fn histogram_order_statistic(h: &[u64; 256], k: u64) -> f64 {
    let mut seen = 0;
    for (v, c) in h.iter().enumerate() {
        seen += c;
        if seen > k {
            return v as f64;
        }
    }
    255.0
}

fn histogram_quantile(h: &[u64; 256], n: u64, q: f64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let hi = pos.ceil() as u64;
    let a = histogram_order_statistic(h, lo);
    let b = histogram_order_statistic(h, hi);
    a + (b - a) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_stats_match_numpy() {
        // numpy: x = [1, 2, 3, 4, 10]; mean 4.0, std 3.1622776601683795, quantile(.1) = 1.4,
        // quantile(.5) = 3.0, quantile(.99) = 9.76
        let mut s = VectorStats::new(1);
        for x in [4.0f32, 1.0, 10.0, 3.0, 2.0] {
            s.push(&[x]);
        }
        let f = s.finish();
        assert_eq!(f.count, 5);
        assert_eq!((f.min[0], f.max[0], f.mean[0]), (1.0, 10.0, 4.0));
        assert!((f.std[0] - 3.1622776601683795).abs() < 1e-12);
        assert!((f.quantiles["q10"][0] - 1.4).abs() < 1e-12);
        assert!((f.quantiles["q50"][0] - 3.0).abs() < 1e-12);
        assert!((f.quantiles["q99"][0] - 9.76).abs() < 1e-12);
    }

    #[test]
    fn image_histogram_matches_direct_computation() {
        let mut s = ImageStats::default();
        let img: Vec<u8> = (0..300u32).map(|i| ((i * 37) % 256) as u8).collect();
        s.push_rgb8(&img);
        let f = s.finish();
        let mut red: Vec<f64> = img.chunks_exact(3).map(|p| p[0] as f64 / 255.0).collect();
        red.sort_by(|a, b| a.total_cmp(b));
        let mut v = VectorStats::new(1);
        for r in &red {
            v.push_scalar(*r);
        }
        let direct = v.finish();
        assert!((f.mean[0] - direct.mean[0]).abs() < 1e-12);
        assert!((f.std[0] - direct.std[0]).abs() < 1e-12);
        for (k, _) in QUANTILES {
            assert!((f.quantiles[k][0] - direct.quantiles[k][0]).abs() < 1e-12, "{k}");
        }
        let back = FeatureStats::from_json(&f.to_json()).expect("parses");
        assert_eq!(back.mean, f.mean);
        assert!(back.image);
    }
}
