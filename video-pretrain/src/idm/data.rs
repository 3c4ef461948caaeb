//! IDM examples from LeRobot datasets: the state s = [proprioception, object state]; the input
//! holds the three states (s_{t−1}, s_t, s_{t+1}) presented as s_t and its two differences
//! (s_{t+1} − s_t, s_t − s_{t−1}), each z-scored (the first and last frames repeat themselves
//! at the episode edges). The same information as the three states, but an action shows in
//! a state's change, which is small next to the state itself: its own scale lets a model
//! trained on a few labelled episodes see it. Targets a_t are mapped to [−1, 1] by their
//! min/max. Also the SS-ORL choice of labelled episodes.

use dataset::Dataset;
use policy::normalize::{FeatureAccumulator, MinMax, ZScore};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How states and actions are normalised (saved in `idm.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdmNormalizer {
    /// z-score of one state [proprioception, object state].
    pub obs: ZScore,
    /// z-score of a one-step state change s_{t+1} − s_t.
    pub delta: ZScore,
    /// Actions → [−1, 1].
    pub action: MinMax,
}

/// The recorded action range maps to ±this: the tanh-Gaussian's mean stays off the
/// asymptotes (atanh(±1) = ±∞), which matter most on the extreme actions a scripted or human
/// operator often commands.
pub const ACTION_SCALE: f32 = 0.9;

impl IdmNormalizer {
    /// Raw actions (rows) → the model's units (the recorded range → [−0.9, 0.9]).
    pub fn normalize_action(&self, v: &mut [f32]) {
        self.action.apply(v);
        v.iter_mut().for_each(|x| *x *= ACTION_SCALE);
    }

    /// The model's units → raw actions (rows), clipped to the recorded range (SS-ORL's
    /// clipped mean).
    pub fn denormalize_action(&self, v: &mut [f32]) {
        v.iter_mut().for_each(|x| *x = (*x / ACTION_SCALE).clamp(-1.0, 1.0));
        self.action.invert(v);
    }

    /// Width of the recorded range of action component `k` (raw units).
    pub fn action_range(&self, k: usize) -> f32 {
        self.action.max[k] - self.action.min[k]
    }
}

/// State s of frame `i`: proprioception then object state.
pub fn obs_of(ds: &Dataset, i: usize) -> Vec<f32> {
    let mut v = ds.state(i).to_vec();
    v.extend_from_slice(ds.env_state(i));
    v
}

/// (s_{t−1}, s_t, s_{t+1}) of every frame of episode `e` (edges repeat).
fn neighbours(ds: &Dataset, e: usize) -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let m = &ds.episodes()[e];
    let (from, to) = (m.from_index as usize, m.to_index as usize);
    let states: Vec<Vec<f32>> = (from..to).map(|i| obs_of(ds, i)).collect();
    (0..states.len())
        .map(|k| {
            let prev = states[k.saturating_sub(1)].clone();
            let next = states[(k + 1).min(states.len() - 1)].clone();
            (prev, states[k].clone(), next)
        })
        .collect()
}

fn diff(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// Fits the normaliser to the frames of `episodes` (positions in `ds.episodes()`).
pub fn fit_normalizer(ds: &Dataset, episodes: &[usize]) -> IdmNormalizer {
    let (mut obs, mut delta, mut act) =
        (FeatureAccumulator::default(), FeatureAccumulator::default(), FeatureAccumulator::default());
    for &e in episodes {
        let m = &ds.episodes()[e];
        for (k, (_, s, next)) in neighbours(ds, e).into_iter().enumerate() {
            obs.push(&s);
            if k + 1 < (m.to_index - m.from_index) as usize {
                delta.push(&diff(&next, &s));
            }
            act.push(ds.action(m.from_index as usize + k));
        }
    }
    let obs_dim = ds.state_dim() + ds.env_state_dim();
    IdmNormalizer { obs: obs.z_score(obs_dim), delta: delta.z_score(obs_dim), action: act.min_max(ds.action_dim()) }
}

/// Normalised IDM inputs `[frames × 3·obs_dim]` for every frame of `episodes`, and the frames'
/// global indices.
pub fn inputs(ds: &Dataset, episodes: &[usize], norm: &IdmNormalizer) -> (Vec<f32>, Vec<usize>) {
    let mut x = Vec::new();
    let mut frames = Vec::new();
    for &e in episodes {
        let from = ds.episodes()[e].from_index as usize;
        for (k, (prev, s, next)) in neighbours(ds, e).into_iter().enumerate() {
            let (mut fwd, mut back) = (diff(&next, &s), diff(&s, &prev));
            let mut s = s;
            norm.obs.apply(&mut s);
            norm.delta.apply(&mut fwd);
            norm.delta.apply(&mut back);
            x.extend_from_slice(&s);
            x.extend_from_slice(&fwd);
            x.extend_from_slice(&back);
            frames.push(from + k);
        }
    }
    (x, frames)
}

/// Normalised actions `[frames × action_dim]` of `frames`.
pub fn targets(ds: &Dataset, frames: &[usize], norm: &IdmNormalizer) -> Vec<f32> {
    let mut y = Vec::with_capacity(frames.len() * ds.action_dim());
    for &i in frames {
        let start = y.len();
        y.extend_from_slice(ds.action(i));
        norm.normalize_action(&mut y[start..]);
    }
    y
}

/// Sum of `next.reward` over each episode.
pub fn episode_returns(ds: &Dataset) -> Vec<f64> {
    ds.episodes()
        .iter()
        .map(|m| (m.from_index as usize..m.to_index as usize).map(|i| f64::from(ds.reward(i))).sum())
        .collect()
}

/// SS-ORL's labelled set: `fraction` of the episodes (at least one), drawn at random (seeded)
/// from the lower-return half; `fraction` ≥ 1 takes every episode. Sorted positions.
pub fn choose_labelled(returns: &[f64], fraction: f64, seed: u64) -> Vec<usize> {
    let n = returns.len();
    if fraction >= 1.0 {
        return (0..n).collect();
    }
    let want = ((fraction * n as f64).round() as usize).clamp(1, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Shuffle first so equal returns are split at random, then a stable sort by return.
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order.sort_by(|a, b| returns[*a].total_cmp(&returns[*b]));
    let mut pool: Vec<usize> = order[..n.div_ceil(2).max(want)].to_vec();
    pool.shuffle(&mut rng);
    let mut chosen: Vec<usize> = pool[..want].to_vec();
    chosen.sort_unstable();
    chosen
}

/// Splits `episodes` into (train, validation) with `val_fraction` of them (at least one when
/// there are two or more) held out, seeded.
pub fn split_validation(episodes: &[usize], val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n = episodes.len();
    let n_val = if n < 2 { 0 } else { ((val_fraction * n as f64).round() as usize).clamp(1, n - 1) };
    let mut shuffled = episodes.to_vec();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    let mut val = shuffled[..n_val].to_vec();
    let mut train = shuffled[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_episodes_come_from_the_lower_return_half() {
        let returns: Vec<f64> = (0..40).map(f64::from).collect();
        let chosen = choose_labelled(&returns, 0.1, 3);
        assert_eq!(chosen.len(), 4);
        assert!(chosen.iter().all(|&e| e < 20), "{chosen:?}");
        assert_eq!(chosen, choose_labelled(&returns, 0.1, 3));
        assert_eq!(choose_labelled(&returns, 1.0, 3).len(), 40);
        let (train, val) = split_validation(&(0..20).collect::<Vec<_>>(), 0.1, 0);
        assert_eq!((train.len(), val.len()), (18, 2));
        assert!(val.iter().all(|v| !train.contains(v)));
    }
}
