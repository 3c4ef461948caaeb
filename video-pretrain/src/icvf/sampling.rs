//! ICVF batches from a frame store: transitions (s, s′) inside an episode, goals and intents drawn
//! 30% uniformly from the whole store, 50% from the same episode between now and its end, 20% the
//! current frame; g = z with probability 0.5 (the sampling of the ICVF reference code: Ghosh, Bhateja, Levine, 2023).

use rand::Rng;

/// Frame indices of one batch (global indices into the store).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IcvfIndices {
    /// s.
    pub s: Vec<usize>,
    /// s′ = the next frame.
    pub next: Vec<usize>,
    /// Goals g.
    pub g: Vec<usize>,
    /// Intents z.
    pub z: Vec<usize>,
}

/// Goal/intent proportions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoalMix {
    /// Uniform over the store.
    pub random: f64,
    /// Same episode, from now to the end.
    pub trajectory: f64,
    /// Probability that g is replaced by z.
    pub g_is_z: f64,
}

impl Default for GoalMix {
    fn default() -> Self {
        GoalMix { random: 0.3, trajectory: 0.5, g_is_z: 0.5 }
    }
}

/// Samples batches; `episodes` are (first frame, length) in the store.
#[derive(Clone, Debug)]
pub struct IcvfSampler {
    episodes: Vec<(usize, usize)>,
    /// Cumulative count of usable s (frames with a successor) per episode.
    cumulative: Vec<usize>,
    total_frames: usize,
    mix: GoalMix,
}

impl IcvfSampler {
    /// A sampler over `episodes`; `None` when no episode has two frames.
    pub fn new(episodes: Vec<(usize, usize)>, mix: GoalMix) -> Option<IcvfSampler> {
        let episodes: Vec<(usize, usize)> = episodes.into_iter().filter(|e| e.1 >= 2).collect();
        let mut cumulative = Vec::with_capacity(episodes.len());
        let mut n = 0;
        for e in &episodes {
            n += e.1 - 1;
            cumulative.push(n);
        }
        let total_frames = episodes.iter().map(|e| e.0 + e.1).max().unwrap_or(0);
        (n > 0).then_some(IcvfSampler { episodes, cumulative, total_frames, mix })
    }

    fn goal(&self, rng: &mut impl Rng, t: usize, end: usize) -> usize {
        let u: f64 = rng.random();
        if u < self.mix.random {
            rng.random_range(0..self.total_frames)
        } else if u < self.mix.random + self.mix.trajectory {
            rng.random_range(t..end)
        } else {
            t
        }
    }

    /// One batch of `n` samples.
    pub fn sample(&self, rng: &mut impl Rng, n: usize) -> IcvfIndices {
        let mut out = IcvfIndices::default();
        let last = *self.cumulative.last().unwrap_or(&0);
        for _ in 0..n {
            let k = rng.random_range(0..last);
            let e = self.cumulative.partition_point(|&c| c <= k);
            let (start, len) = self.episodes[e];
            let before = if e == 0 { 0 } else { self.cumulative[e - 1] };
            let t = start + (k - before);
            let end = start + len;
            let z = self.goal(rng, t, end);
            let g = if rng.random::<f64>() < self.mix.g_is_z { z } else { self.goal(rng, t, end) };
            out.s.push(t);
            out.next.push(t + 1);
            out.g.push(g);
            out.z.push(z);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn transitions_stay_inside_episodes_and_goals_follow_the_mix() {
        let s = IcvfSampler::new(vec![(0, 10), (10, 1), (11, 30)], GoalMix::default()).expect("sampler");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let b = s.sample(&mut rng, 20_000);
        let episode_end = |t: usize| if t < 10 { 10 } else { 41 };
        let (mut current, mut same_later, mut equal_gz) = (0, 0, 0);
        for i in 0..b.s.len() {
            let t = b.s[i];
            assert!(t != 9 && t != 10 && t != 40, "{t} has no successor in its episode");
            assert_eq!(b.next[i], t + 1);
            current += usize::from(b.z[i] == t);
            same_later += usize::from(b.z[i] >= t && b.z[i] < episode_end(t));
            equal_gz += usize::from(b.g[i] == b.z[i]);
        }
        let n = b.s.len() as f64;
        // z = s: 20% directly + the trajectory draws that land on t + random draws that do.
        let p_current = current as f64 / n;
        assert!((0.22..0.32).contains(&p_current), "{p_current}");
        assert!(same_later as f64 / n > 0.7, "{}", same_later as f64 / n);
        // g = z half the time, plus coincidences.
        let p = equal_gz as f64 / n;
        assert!((0.5..0.62).contains(&p), "{p}");
        assert!(IcvfSampler::new(vec![(0, 1)], GoalMix::default()).is_none());
    }
}
