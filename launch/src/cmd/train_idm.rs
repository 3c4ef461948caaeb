//! `armstack train idm`: an inverse-dynamics model on episodes with actions (SS-ORL), for
//! `armstack dataset label`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dataset::Dataset;
use video_pretrain::idm::train::{train_idm, IdmTrainConfig};

use super::arg_ranges;
use super::policy_args::{check_device, DeviceKind};
use crate::outln;
use crate::with_train_backend;

/// `armstack train idm`.
#[derive(Args, Debug)]
pub struct IdmArgs {
    /// Dataset with actions (the labelled episodes).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output folder (idm.mpk, idm.json, metrics.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Use only this fraction of the dataset's episodes as the labelled set, drawn from the
    /// lower-return half as in SS-ORL (1: every episode). `dataset label` on the same dataset
    /// then keeps their recorded actions and labels the rest.
    #[arg(long, default_value_t = 1.0, value_parser = arg_ranges::fraction())]
    pub labelled_fraction: f64,
    /// Gradient steps.
    #[arg(long, default_value_t = 3000, value_parser = arg_ranges::at_least(1u64))]
    pub steps: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 1024, value_parser = arg_ranges::at_least(1usize))]
    pub batch_size: usize,
    /// Adam learning rate (0: the weights stay as they are).
    #[arg(long, default_value_t = 1e-4, value_parser = arg_ranges::non_negative(""))]
    pub lr: f64,
    /// Hidden width of the two-layer MLP.
    #[arg(long, default_value_t = 1024, value_parser = arg_ranges::at_least(1usize))]
    pub hidden: usize,
    /// Seed (episode choice, initialisation, batches).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Replace the previous run in `--out` (without it, a non-empty `--out` is refused).
    #[arg(long)]
    pub force: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

/// Runs `armstack train idm`.
pub fn run(a: IdmArgs) -> Result<()> {
    check_device(a.device)?;
    super::train::prepare_run_out(&a.out, a.force, None, &[&a.dataset])?;
    let ds = Dataset::open(&a.dataset).with_context(|| format!("opening {}", a.dataset.display()))?;
    let cfg = IdmTrainConfig {
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        labelled_fraction: a.labelled_fraction,
        seed: a.seed,
        hidden: a.hidden,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::new(a.steps);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t0 = std::time::Instant::now();
    let spec = with_train_backend!(a.device, B, {
        train_idm::<B>(&ds, &a.dataset, &cfg, &a.out, &Default::default(), |step, train, val| {
            bar.set_position(step);
            bar.set_message(format!("nll train {train:.3} val {val:.3}"));
        })?
    });
    bar.finish_and_clear();
    outln!(
        "idm: {} steps in {:.1} s on {} labelled episodes of {} ({} for validation)",
        a.steps,
        t0.elapsed().as_secs_f64(),
        spec.labelled_episodes.len(),
        ds.episodes().len(),
        spec.val_episodes.len()
    )?;
    outln!(
        "  kept step {}: validation NLL {:.3}, action RMS error {:.4} (normalised, [-1, 1] per component)",
        spec.best_step,
        spec.val_nll,
        spec.val_rmse
    )?;
    outln!("  model: {}", a.out.display())?;
    Ok(())
}
