//! Demonstration quality levels and the mistakes a scripted demonstrator makes, named after the
//! dataset tiers offline learning uses (robomimic's proficient / multi-human sets, D4RL's
//! expert / medium / mixed).

use std::fmt;
use std::str::FromStr;

/// Share of `mixed` episodes that contain a mistake unless told otherwise.
pub const DEFAULT_MISTAKE_RATE: f64 = 0.5;

/// How a scripted demonstrator behaves over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DemoQuality {
    /// Proficient demonstrations (robomimic "proficient human", D4RL "expert"): every episode
    /// follows a correct plan that is varied per episode (approach height, speed, small
    /// lateral offsets; one consistent grasp-face rule and no pauses), with no per-step noise.
    Expert,
    /// Mixed proficiency (robomimic "multi-human", D4RL "mixed"): expert episodes, of which a
    /// seeded per-episode draw with probability `mistake_rate` ∈ [0, 1] contains one
    /// [`Mistake`].
    Mixed {
        /// Probability that an episode contains a mistake.
        mistake_rate: f64,
    },
    /// The fixed clean plan with Gaussian noise on every action (σ = 2 cm·noise per axis,
    /// 0.1 rad·noise per angle, gripper flips with probability 3 %·noise) and imprecise grasp
    /// heights and release points; `noise` ∈ [0, 1], 0 is the deterministic clean expert.
    Noisy {
        /// Noise scale in [0, 1].
        noise: f64,
    },
}

impl DemoQuality {
    /// The legacy noisy expert (`--noise`), `noise` clamped to [0, 1].
    pub fn noisy(noise: f64) -> DemoQuality {
        DemoQuality::Noisy { noise: noise.clamp(0.0, 1.0) }
    }

    /// The mixed level with `mistake_rate` clamped to [0, 1].
    pub fn mixed(mistake_rate: f64) -> DemoQuality {
        DemoQuality::Mixed { mistake_rate: mistake_rate.clamp(0.0, 1.0) }
    }

    /// The level's name: `expert`, `mixed` or `noisy` (stored per episode as
    /// `armstack/demo_quality`).
    pub fn name(&self) -> &'static str {
        match self {
            DemoQuality::Expert => "expert",
            DemoQuality::Mixed { .. } => "mixed",
            DemoQuality::Noisy { .. } => "noisy",
        }
    }

    /// The per-step noise scale (0 for the expert and mixed levels).
    pub fn noise(&self) -> f64 {
        match self {
            DemoQuality::Noisy { noise } => *noise,
            _ => 0.0,
        }
    }

    /// Builds a level from its name (`expert`, `mixed`, `noisy`) and the knobs the CLI takes.
    pub fn from_name(name: &str, mistake_rate: f64, noise: f64) -> Result<DemoQuality, QualityError> {
        match name {
            "expert" => Ok(DemoQuality::Expert),
            "mixed" => Ok(DemoQuality::mixed(mistake_rate)),
            "noisy" => Ok(DemoQuality::noisy(noise)),
            other => Err(QualityError::UnknownQuality(other.to_string())),
        }
    }
}

impl fmt::Display for DemoQuality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoQuality::Expert => f.write_str("expert"),
            DemoQuality::Mixed { mistake_rate } => write!(f, "mixed (mistake rate {mistake_rate})"),
            DemoQuality::Noisy { noise } => write!(f, "noisy (noise {noise})"),
        }
    }
}

/// A name that is not a quality level or mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QualityError {
    /// Not `expert`, `mixed` or `noisy`.
    #[error("unknown demonstration quality `{0}`; known: expert, mixed, noisy")]
    UnknownQuality(String),
    /// Not one of [`Mistake::NAMES`].
    #[error("unknown mistake `{name}`; known: {}", Mistake::NAMES.join(", "))]
    UnknownMistake {
        /// The name given.
        name: String,
    },
}

/// The one mistake an episode contains (drawn when the episode starts). Whether the episode
/// still succeeds is measured by the scene, as for any episode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mistake {
    /// No mistake: the expert plan.
    #[default]
    None,
    /// The fingers close beside or above the object; with `regrasp` the gripper opens and grasps
    /// again, without it the plan goes on empty-handed.
    MissedGrasp {
        /// The demonstrator notices and grasps again.
        regrasp: bool,
    },
    /// The gripper opens while carrying the object; with `regrasp` the demonstrator picks it up
    /// again where it fell.
    DroppedObject {
        /// The demonstrator picks the object up again.
        regrasp: bool,
    },
    /// The object goes to the wrong place: the other bin (sort), off the bin (place), beside the
    /// pad (push).
    WrongTarget,
    /// The demonstrator stops half-way to a waypoint for several steps, backs off, then goes on.
    Hesitation,
    /// The demonstrator moves past a waypoint, then comes back to it.
    Overshoot,
}

impl Mistake {
    /// Every mistake's name, as stored per episode in `armstack/mistake`.
    pub const NAMES: [&'static str; 8] = [
        "none",
        "missed_grasp",
        "missed_grasp_regrasped",
        "dropped_object",
        "dropped_object_regrasped",
        "wrong_target",
        "hesitation",
        "overshoot",
    ];

    /// The mistake's name (one of [`Mistake::NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Mistake::None => "none",
            Mistake::MissedGrasp { regrasp: false } => "missed_grasp",
            Mistake::MissedGrasp { regrasp: true } => "missed_grasp_regrasped",
            Mistake::DroppedObject { regrasp: false } => "dropped_object",
            Mistake::DroppedObject { regrasp: true } => "dropped_object_regrasped",
            Mistake::WrongTarget => "wrong_target",
            Mistake::Hesitation => "hesitation",
            Mistake::Overshoot => "overshoot",
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mistake {
    type Err = QualityError;

    fn from_str(s: &str) -> Result<Mistake, QualityError> {
        Ok(match s {
            "none" => Mistake::None,
            "missed_grasp" => Mistake::MissedGrasp { regrasp: false },
            "missed_grasp_regrasped" => Mistake::MissedGrasp { regrasp: true },
            "dropped_object" => Mistake::DroppedObject { regrasp: false },
            "dropped_object_regrasped" => Mistake::DroppedObject { regrasp: true },
            "wrong_target" => Mistake::WrongTarget,
            "hesitation" => Mistake::Hesitation,
            "overshoot" => Mistake::Overshoot,
            other => return Err(QualityError::UnknownMistake { name: other.to_string() }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistake_names_round_trip() {
        for name in Mistake::NAMES {
            let m: Mistake = name.parse().expect("known name");
            assert_eq!(m.name(), name);
        }
        assert!("slipped".parse::<Mistake>().is_err());
    }

    #[test]
    fn quality_names_parse() {
        assert_eq!(DemoQuality::from_name("expert", 0.5, 0.0), Ok(DemoQuality::Expert));
        assert_eq!(DemoQuality::from_name("mixed", 1.5, 0.0), Ok(DemoQuality::Mixed { mistake_rate: 1.0 }));
        assert_eq!(DemoQuality::from_name("noisy", 0.5, 0.3), Ok(DemoQuality::Noisy { noise: 0.3 }));
        assert!(DemoQuality::from_name("medium", 0.5, 0.0).is_err());
    }
}
