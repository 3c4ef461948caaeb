//! The online replay buffer: whole sim episodes, sampled as chunk windows.
//!
//! Any H consecutive executed actions form a valid chunk, whichever decisions produced them, so a
//! window may start at every step of an episode (as the offline data does): an episode of T steps
//! gives T chunk transitions. Window t of an episode of T steps holds the chunk a_{t:t+H} (masked
//! past T), R = Σ_{i<H, t+i<T} γ^i r_{t+i}, and the bootstrap observation s_{t+H} with weight
//! γ^H. When the episode ends inside the chunk, a termination (the task succeeded) has weight 0
//! and a truncation (the step limit) bootstraps from the observation after the last step with
//! weight γ^(T−t): the time limit is not part of the task, and the value of that state is not
//! zero (Pardo et al. 2018, "Time Limits in Reinforcement Learning").

use std::collections::VecDeque;

use rand::Rng;

use crate::error::Result;
use crate::features::RawObs;
use crate::spec::PolicySpec;
use crate::train::data::HostBatch;

/// One control step of an online episode.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// Observation before the action.
    pub obs: RawObs,
    /// The executed action row, normalised (`D` values in [−1, 1]).
    pub action: Vec<f32>,
    /// Reward after the action (1 on success, else 0).
    pub reward: f32,
}

/// A finished episode.
#[derive(Clone, Debug)]
pub struct Episode {
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
    /// The observation after the last step.
    pub final_obs: RawObs,
    /// The task succeeded.
    pub success: bool,
    /// The step limit cut the episode (returns bootstrap from `final_obs`); otherwise it ended in
    /// a terminal state, success or failure (an object off the table), whose value is 0.
    pub truncated: bool,
}

/// Episodes kept up to a budget of steps (the oldest leave first).
#[derive(Default)]
pub struct OnlineReplay {
    episodes: VecDeque<Episode>,
    steps: usize,
    capacity_steps: usize,
    horizon: usize,
    gamma: f64,
}

impl OnlineReplay {
    /// An empty buffer keeping at most `capacity_steps` steps, for chunks of `horizon`.
    pub fn new(capacity_steps: usize, horizon: usize, gamma: f64) -> OnlineReplay {
        OnlineReplay { episodes: VecDeque::new(), steps: 0, capacity_steps: capacity_steps.max(1), horizon, gamma }
    }

    /// Steps held (= chunk windows that can be sampled).
    pub fn len(&self) -> usize {
        self.steps
    }

    /// True before the first episode.
    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// Adds a finished episode (empty episodes are ignored).
    pub fn push(&mut self, episode: Episode) {
        if episode.steps.is_empty() {
            return;
        }
        self.steps += episode.steps.len();
        self.episodes.push_back(episode);
        while self.steps > self.capacity_steps && self.episodes.len() > 1 {
            if let Some(old) = self.episodes.pop_front() {
                self.steps -= old.steps.len();
            }
        }
    }

    /// The chunk window starting at step `t` of `episode`, appended to `out`.
    fn push_window(&self, spec: &PolicySpec, episode: &Episode, t: usize, out: &mut HostBatch) -> Result<()> {
        let (h, d) = (self.horizon, spec.config.action_dim);
        let len = episode.steps.len();
        out.obs.push(spec, &episode.steps[t].obs)?;
        let mut reward = 0.0f64;
        let mut discount = 1.0f64;
        for i in 0..h {
            match episode.steps.get(t + i) {
                Some(step) => {
                    out.actions.extend_from_slice(&step.action[..d.min(step.action.len())]);
                    out.actions.extend(std::iter::repeat_n(0.0, d.saturating_sub(step.action.len())));
                    out.action_mask.push(1.0);
                    reward += discount * f64::from(step.reward);
                    discount *= self.gamma;
                }
                None => {
                    out.actions.extend(std::iter::repeat_n(0.0, d));
                    out.action_mask.push(0.0);
                }
            }
        }
        let end = t + h;
        let (bootstrap, next) = if end < len {
            (self.gamma.powi(h as i32), &episode.steps[end].obs)
        } else if episode.truncated {
            (self.gamma.powi((len - t) as i32), &episode.final_obs)
        } else {
            (0.0, &episode.final_obs)
        };
        out.reward.push(reward as f32);
        out.bootstrap.push(bootstrap as f32);
        out.next_obs.push(spec, next)?;
        // Monte-Carlo return to the episode end.
        let mc: f64 =
            episode.steps[t..].iter().enumerate().map(|(k, s)| self.gamma.powi(k as i32) * f64::from(s.reward)).sum();
        out.mc_return.push(mc as f32);
        Ok(())
    }

    /// `n` chunk windows drawn uniformly over every held step.
    pub fn sample(&self, spec: &PolicySpec, rng: &mut impl Rng, n: usize) -> Result<HostBatch> {
        let mut out = HostBatch::default();
        if self.steps == 0 {
            return Ok(out);
        }
        for _ in 0..n {
            let mut k = rng.random_range(0..self.steps);
            for ep in &self.episodes {
                if k < ep.steps.len() {
                    self.push_window(spec, ep, k, &mut out)?;
                    break;
                }
                k -= ep.steps.len();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;

    fn obs(x: f32) -> RawObs {
        RawObs { state: vec![x; 2], env_state: vec![], instruction: String::new(), images: vec![] }
    }

    fn episode(len: usize, success: bool) -> Episode {
        let steps = (0..len)
            .map(|t| StepRecord {
                obs: obs(t as f32),
                action: vec![t as f32 / 10.0],
                reward: if success && t + 1 == len { 1.0 } else { 0.0 },
            })
            .collect();
        Episode { steps, final_obs: obs(len as f32), success, truncated: !success }
    }

    #[test]
    fn windows_carry_chunk_returns_and_bootstraps() {
        let spec = PolicySpec::untrained(PolicyConfig::state_only(3, 2, 0, 1), None, 10.0, vec![]);
        let mut replay = OnlineReplay::new(100, 3, 0.5);
        replay.push(episode(4, true));
        let mut b = HostBatch::default();
        let ep = &replay.episodes[0];
        // t = 0: actions 0, .1, .2; no reward; bootstrap γ³ from step 3.
        replay.push_window(&spec, ep, 0, &mut b).unwrap();
        // t = 1: actions .1 .2 .3, reward γ²·1 at the success step; the episode ends at t+3 = 4 with
        // success: no bootstrap.
        replay.push_window(&spec, ep, 1, &mut b).unwrap();
        // t = 2: actions .2 .3 + padding; reward γ·1.
        replay.push_window(&spec, ep, 2, &mut b).unwrap();
        assert_eq!(b.actions, vec![0.0, 0.1, 0.2, 0.1, 0.2, 0.3, 0.2, 0.3, 0.0]);
        assert_eq!(b.action_mask, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(b.reward, vec![0.0, 0.25, 0.5]);
        assert_eq!(b.bootstrap, vec![0.125, 0.0, 0.0]);
        assert_eq!(b.next_obs.state, vec![3.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
        assert_eq!(b.mc_return, vec![0.125, 0.25, 0.5]);
        // A time-limit end bootstraps from the final observation: exactly at t + H with γ^H, and
        // inside the chunk with γ^(T − t), never with 0.
        let mut r2 = OnlineReplay::new(100, 2, 0.5);
        r2.push(episode(4, false));
        let mut b2 = HostBatch::default();
        r2.push_window(&spec, &r2.episodes[0], 2, &mut b2).unwrap();
        r2.push_window(&spec, &r2.episodes[0], 3, &mut b2).unwrap();
        assert_eq!(b2.bootstrap, vec![0.25, 0.5]);
        assert_eq!(b2.next_obs.state, vec![4.0, 4.0, 4.0, 4.0]);
        assert_eq!(b2.action_mask, vec![1.0, 1.0, 1.0, 0.0]);
        // A failure end (an object off the table) is terminal: no bootstrap.
        let mut r3 = OnlineReplay::new(100, 2, 0.5);
        r3.push(Episode { truncated: false, ..episode(4, false) });
        let mut b3 = HostBatch::default();
        r3.push_window(&spec, &r3.episodes[0], 2, &mut b3).unwrap();
        r3.push_window(&spec, &r3.episodes[0], 3, &mut b3).unwrap();
        assert_eq!(b3.bootstrap, vec![0.0, 0.0]);
        assert_eq!(b3.reward, vec![0.0, 0.0]);
    }

    #[test]
    fn capacity_drops_the_oldest_episodes() {
        let mut replay = OnlineReplay::new(10, 2, 0.99);
        for _ in 0..4 {
            replay.push(episode(4, false));
        }
        assert_eq!(replay.len(), 8);
        assert_eq!(replay.episodes.len(), 2);
    }
}
