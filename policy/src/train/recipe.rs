//! The recipe a resumed run must share with the run it continues.
//!
//! A run stores its recipe in `resume/state.json`; `--resume` with another recipe (a different
//! learning rate, schedule, batch size, seed, weight average, held-out fraction, frame filter or loss)
//! would silently train a mixture of two runs, so it is refused, naming what differs.

use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};
use crate::train::bc::ChunkLoss;
use crate::train::schedule::LrSchedule;
use crate::train::TrainSettings;

/// The parts of [`TrainSettings`] that decide which frames a run trains on, which batches it
/// draws and its learning-rate curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Total steps, when the schedule depends on them (`None` for a constant rate: a run may
    /// then be extended with more steps).
    pub steps: Option<u64>,
    /// Samples per batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Weight-average decay.
    pub ema_decay: f64,
    /// Held-out fraction of the episodes.
    pub held_out: f64,
    /// Seed of the initialisation and the batch sampler.
    pub seed: u64,
    /// Proxy-labelled frames left out.
    pub skip_proxy_labels: bool,
    /// Episodes without success left out.
    pub successful_only: bool,
    /// The chunk regression loss (L2 in runs saved before the choice existed).
    #[serde(default)]
    pub loss: ChunkLoss,
}

impl Recipe {
    /// The recipe of `settings`.
    pub fn of(settings: &TrainSettings) -> Recipe {
        Recipe {
            steps: (settings.lr_schedule != LrSchedule::Constant).then_some(settings.steps),
            batch_size: settings.batch_size,
            lr: settings.lr,
            lr_schedule: settings.lr_schedule,
            ema_decay: settings.ema_decay,
            held_out: settings.held_out,
            seed: settings.seed,
            skip_proxy_labels: settings.skip_proxy_labels,
            successful_only: settings.successful_only,
            loss: settings.loss,
        }
    }

    /// Checks that a run resumed with recipe `self` continues one stored with `stored`
    /// (`None`: a run saved before recipes were stored, accepted with a warning).
    pub fn check_resume(&self, stored: Option<&Recipe>) -> Result<()> {
        let Some(stored) = stored else {
            tracing::warn!("this run was saved without its recipe: resuming without checking it");
            return Ok(());
        };
        if stored == self {
            return Ok(());
        }
        let (before, now) = (to_map(stored), to_map(self));
        let differences: Vec<String> = before
            .iter()
            .filter(|(k, v)| now.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} in the run, {} now", now.get(k).map_or("absent".into(), |n| n.to_string())))
            .collect();
        Err(PolicyError::Config(format!(
            "--resume continues a run with another recipe ({}); give the run's own settings again, or start a new \
             run (--force)",
            differences.join("; ")
        )))
    }
}

fn to_map(r: &Recipe) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_recipe_is_refused_naming_what_changed() {
        let settings = TrainSettings { lr: 1e-3, ..TrainSettings::default() };
        let stored = Recipe::of(&settings);
        assert!(stored.check_resume(Some(&stored.clone())).is_ok());
        assert!(stored.check_resume(None).is_ok());
        let now = Recipe::of(&TrainSettings { lr: 3e-4, successful_only: true, ..settings.clone() });
        let err = now.check_resume(Some(&stored)).unwrap_err().to_string();
        assert!(err.contains("lr: 0.001 in the run, 0.0003 now"), "{err}");
        assert!(err.contains("successful_only: false in the run, true now"), "{err}");
        assert!(!err.contains("batch_size"), "{err}");
        // More steps: refused under the cosine schedule, which they would stretch; accepted
        // under a constant rate.
        let longer = Recipe::of(&TrainSettings { steps: 4000, ..settings.clone() });
        assert!(longer
            .check_resume(Some(&stored))
            .unwrap_err()
            .to_string()
            .contains("steps: 2000 in the run, 4000 now"));
        let constant = TrainSettings { lr_schedule: LrSchedule::Constant, ..settings };
        let longer = Recipe::of(&TrainSettings { steps: 4000, ..constant.clone() });
        assert!(longer.check_resume(Some(&Recipe::of(&constant))).is_ok());
    }

    #[test]
    fn a_run_saved_before_the_loss_choice_trained_with_l2() {
        let settings = TrainSettings::default();
        assert_eq!(settings.loss, ChunkLoss::L1, "the default");
        let mut old = serde_json::to_value(Recipe::of(&settings)).expect("json");
        old.as_object_mut().expect("object").remove("loss");
        let old: Recipe = serde_json::from_value(old).expect("a recipe without `loss` reads");
        assert_eq!(old.loss, ChunkLoss::L2);
        let err = Recipe::of(&settings).check_resume(Some(&old)).unwrap_err().to_string();
        assert!(err.contains("loss: \"l2\" in the run, \"l1\" now"), "{err}");
        let l2 = TrainSettings { loss: ChunkLoss::L2, ..settings };
        assert!(Recipe::of(&l2).check_resume(Some(&old)).is_ok());
    }
}
