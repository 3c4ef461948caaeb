//! The scripted expert's demonstration-quality flags, shared by `record`/`teleop`
//! (`--quality`), `demo` (`--quality`) and `sim` (`--expert LEVEL`).

use clap::ValueEnum;
use sim::DemoQuality;

/// Which demonstrations the scripted expert gives.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QualityArg {
    /// Clean but varied, always-correct demonstrations (no per-step noise).
    Expert,
    /// Expert demonstrations, a share of which (`--mistake-rate`) contain one recorded mistake.
    Mixed,
    /// The fixed clean plan with per-step Gaussian noise (`--noise`).
    Noisy,
}

impl QualityArg {
    /// The flag value naming this level (`expert`, `mixed`, `noisy`).
    pub fn name(self) -> &'static str {
        match self {
            QualityArg::Expert => "expert",
            QualityArg::Mixed => "mixed",
            QualityArg::Noisy => "noisy",
        }
    }

    /// The level, with the mixed level's mistake rate and the noisy level's noise.
    pub fn level(self, mistake_rate: f64, noise: f64) -> DemoQuality {
        match self {
            QualityArg::Expert => DemoQuality::Expert,
            QualityArg::Mixed => DemoQuality::mixed(mistake_rate),
            QualityArg::Noisy => DemoQuality::noisy(noise),
        }
    }
}

/// `sim --expert`'s value: a level name or, as before, a noise in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExpertLevel {
    /// `expert`.
    Expert,
    /// `mixed` (with `--mistake-rate`).
    Mixed,
    /// A noise in [0, 1]: the noisy level.
    Noise(f64),
}

impl ExpertLevel {
    /// The level, with the mixed level's mistake rate.
    pub fn level(self, mistake_rate: f64) -> DemoQuality {
        match self {
            ExpertLevel::Expert => DemoQuality::Expert,
            ExpertLevel::Mixed => DemoQuality::mixed(mistake_rate),
            ExpertLevel::Noise(noise) => DemoQuality::noisy(noise),
        }
    }
}

/// Parses `expert`, `mixed` or a noise in [0, 1].
pub fn parse_expert_level(text: &str) -> Result<ExpertLevel, String> {
    match text.trim() {
        "expert" => Ok(ExpertLevel::Expert),
        "mixed" => Ok(ExpertLevel::Mixed),
        other => match other.parse::<f64>() {
            Ok(noise) if (0.0..=1.0).contains(&noise) => Ok(ExpertLevel::Noise(noise)),
            Ok(_) => Err(format!("a noise must be in [0, 1], got {other} (or give `expert` or `mixed`)")),
            Err(_) => Err(format!("must be `expert`, `mixed` or a noise in [0, 1], got {other}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expert_levels_parse_names_and_noise() {
        assert_eq!(parse_expert_level("expert"), Ok(ExpertLevel::Expert));
        assert_eq!(parse_expert_level("mixed"), Ok(ExpertLevel::Mixed));
        assert_eq!(parse_expert_level("0.3"), Ok(ExpertLevel::Noise(0.3)));
        assert!(parse_expert_level("1.5").is_err());
        assert!(parse_expert_level("NaN").is_err());
        assert!(parse_expert_level("medium").is_err());
    }
}
