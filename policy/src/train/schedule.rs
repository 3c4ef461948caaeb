//! Learning-rate schedules: the factor multiplying an optimiser's base learning rate at step t
//! of a run of T steps.
//!
//! - **Constant**: 1.
//! - **Warm-up then cosine decay** (Loshchilov & Hutter, SGDR, ICLR 2017, eq. 5 without
//!   restarts; linear warm-up as in Goyal et al., 2017, and diffusion policy's and LeRobot's
//!   trainers): with W warm-up steps and final fraction f,
//!
//! ```text
//! t < W:  (t + 1) / W
//! t ≥ W:  f + (1 − f) · ½ (1 + cos(π · (t − W) / max(T − W, 1)))
//! ```

use serde::{Deserialize, Serialize};

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base learning rate at every step.
    Constant,
    /// Linear warm-up over `warmup_steps`, then cosine decay to `final_fraction` of the base
    /// rate at the last step.
    WarmupCosine {
        /// Steps of linear warm-up W.
        warmup_steps: u64,
        /// Factor f reached at the last step (0…1).
        final_fraction: f64,
    },
}

impl Default for LrSchedule {
    /// Warm-up over 100 steps, cosine decay to 10% of the base rate.
    fn default() -> LrSchedule {
        LrSchedule::WarmupCosine { warmup_steps: 100, final_fraction: 0.1 }
    }
}

impl LrSchedule {
    /// The factor at step `step` (0-based) of a run of `total_steps` steps.
    pub fn factor(&self, step: u64, total_steps: u64) -> f64 {
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::WarmupCosine { warmup_steps, final_fraction } => {
                if step < warmup_steps {
                    return (step + 1) as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// Parses `constant` or `cosine` (warm-up over `warmup_steps`, decay to 10%).
    pub fn parse(name: &str, warmup_steps: u64) -> Option<LrSchedule> {
        match name {
            "constant" => Some(LrSchedule::Constant),
            "cosine" => Some(LrSchedule::WarmupCosine { warmup_steps, final_fraction: 0.1 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_matches_hand_computed_factors() {
        let s = LrSchedule::WarmupCosine { warmup_steps: 4, final_fraction: 0.1 };
        assert_eq!(s.factor(0, 104), 0.25);
        assert_eq!(s.factor(3, 104), 1.0);
        assert!((s.factor(4, 104) - 1.0).abs() < 1e-12);
        // Half-way through the decay: f + (1 − f)/2.
        assert!((s.factor(54, 104) - 0.55).abs() < 1e-12);
        assert!((s.factor(104, 104) - 0.1).abs() < 1e-12);
        assert!((s.factor(500, 104) - 0.1).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.factor(7, 10), 1.0);
    }
}
