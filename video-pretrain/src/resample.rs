//! Frame-rate resampling of a decoded stream by timestamps, so variable-frame-rate files and any
//! source rate give evenly spaced samples at the target rate.

/// Chooses, for each slot `k / fps`, the first decoded frame at or after the slot time (within
/// half a source frame's worth of slack). A frame after a gap fills every slot it skipped, so the
/// output stays evenly spaced in time.
#[derive(Clone, Debug)]
pub struct FpsSampler {
    period_s: f64,
    next_slot: u64,
    start_s: Option<f64>,
}

/// Longest run of slots one frame may fill (a longer gap is a cut, not a pause).
const MAX_FILL: u64 = 10;

impl FpsSampler {
    /// A sampler for `fps` frames per second (must be positive).
    pub fn new(fps: f64) -> FpsSampler {
        FpsSampler { period_s: 1.0 / fps.max(1e-6), next_slot: 0, start_s: None }
    }

    /// How many output samples frame `pts_s` provides (0 = skip it). Frames must come in
    /// presentation order.
    pub fn take(&mut self, pts_s: f64) -> u64 {
        let start = *self.start_s.get_or_insert(pts_s);
        let t = pts_s - start;
        let mut n = 0;
        // A frame serves a slot when it is the first at or after it (1 µs slack for rounding).
        while self.next_slot as f64 * self.period_s <= t + 1e-6 {
            self.next_slot += 1;
            n += 1;
        }
        if n > MAX_FILL {
            self.next_slot = (t / self.period_s).floor() as u64 + 1;
            n = 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_to_five_fps_keeps_every_sixth_frame() {
        let mut s = FpsSampler::new(5.0);
        let kept: Vec<usize> = (0..30).filter(|&i| s.take(i as f64 / 30.0) > 0).collect();
        assert_eq!(kept, [0, 6, 12, 18, 24]);
    }

    #[test]
    fn variable_rate_and_gaps_stay_evenly_spaced() {
        let mut s = FpsSampler::new(10.0);
        // 0.0, 0.05, 0.1, then a 0.35 s gap, then 0.5.
        let counts: Vec<u64> = [0.0, 0.05, 0.1, 0.45, 0.5].iter().map(|&t| s.take(t)).collect();
        // Slots 0, 0.1 | 0.2, 0.3, 0.4 filled by the frame at 0.45 | 0.5.
        assert_eq!(counts, [1, 0, 1, 3, 1]);
        // Streams need not start at 0.
        let mut s = FpsSampler::new(2.0);
        assert_eq!([10.0, 10.2, 10.5, 10.9, 11.0].map(|t| s.take(t)), [1, 0, 1, 0, 1]);
    }
}
