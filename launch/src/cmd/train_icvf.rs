//! `armstack train icvf`: intention-conditioned value pre-training on a frame store (V-PTR stage 1).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use video_pretrain::icvf::model::IcvfConfig;
use video_pretrain::icvf::train::{train_icvf, IcvfTrainConfig};
use video_pretrain::store::FrameStore;

use super::arg_ranges;
use super::policy_args::{check_device, DeviceKind};
use crate::outln;
use crate::with_train_backend;

/// `armstack train icvf`.
#[derive(Args, Debug)]
pub struct IcvfArgs {
    /// Frame store from `armstack video ingest`.
    #[arg(long)]
    pub frames: PathBuf,
    /// Output folder (icvf.mpk, encoder.mpk, icvf.json, metrics.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Gradient steps.
    #[arg(long, default_value_t = 2000, value_parser = arg_ranges::at_least(1u64))]
    pub steps: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 64, value_parser = arg_ranges::at_least(1usize))]
    pub batch_size: usize,
    /// Adam learning rate (0: the weights stay as they are).
    #[arg(long, default_value_t = 5e-5, value_parser = arg_ranges::non_negative(""))]
    pub lr: f64,
    /// Width of the multilinear heads.
    #[arg(long, default_value_t = 256, value_parser = arg_ranges::at_least(1usize))]
    pub hidden: usize,
    /// Seed.
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Replace the previous run in `--out` (without it, a non-empty `--out` is refused).
    #[arg(long)]
    pub force: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

/// Runs `armstack train icvf`.
pub fn run(a: IcvfArgs) -> Result<()> {
    check_device(a.device)?;
    super::train::prepare_run_out(&a.out, a.force, None, &[&a.frames])?;
    let store =
        FrameStore::open(&a.frames).with_context(|| format!("opening the frame store {}", a.frames.display()))?;
    let model = IcvfConfig { hidden: a.hidden, ..IcvfConfig::new(store.manifest.size) };
    let cfg =
        IcvfTrainConfig { steps: a.steps, batch_size: a.batch_size, lr: a.lr, seed: a.seed, ..Default::default() };
    let bar = indicatif::ProgressBar::new(a.steps);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t0 = std::time::Instant::now();
    let spec = with_train_backend!(a.device, B, {
        train_icvf::<B>(&store, &a.frames, &model, &cfg, &a.out, &Default::default(), &mut |step, s| {
            bar.set_position(step);
            bar.set_message(format!("loss {:.4}", s.loss));
        })?
    });
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    outln!(
        "icvf: {} steps on {} frames ({} episodes) in {secs:.1} s ({:.2} s/step), final loss {:.4}",
        a.steps,
        store.len(),
        store.manifest.episodes.len(),
        secs / a.steps as f64,
        spec.final_loss
    )?;
    outln!("  encoder: {}", a.out.join("encoder.mpk").display())?;
    Ok(())
}
