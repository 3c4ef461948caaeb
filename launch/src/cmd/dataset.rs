//! `armstack dataset …`: inspect, replay, export and rate datasets.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dataset::reader::{disk_usage, Dataset};

use super::arg_ranges;
use super::teleop::{robot_node, run_with_robot, DeviceKind, RobotArgs, RobotKind, RobotNode};
use crate::outln;
use crate::output_path::{prepare_output_dir, ExistingDir};
use crate::record::align::ActionSource;
use crate::record::replay::{run_replay, ReplayReport};

/// `armstack dataset` verbs.
#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// fps, features, episodes, frames, tasks, size on disk.
    Info(DirArgs),
    /// Per-feature statistics from meta/stats.json.
    Stats(DirArgs),
    /// Re-send an episode's recorded actions to the robot over the bus.
    Replay(ReplayArgs),
    /// Write an episode's cameras side by side (with the instruction as a caption) to an mp4.
    ExportVideo(ExportArgs),
    /// Decode every camera video once into the dataset's frame cache file (`cache/frames.bin`):
    /// vision training reads its images from there, in any build (the GPU build has no FFmpeg).
    Cache(DirArgs),
    /// Dataset quality: TQ (normalised return) and SACo (state-action coverage).
    Quality(QualityArgs),
    /// Proxy actions from an inverse-dynamics model (`train idm`) into a new dataset, each
    /// frame marked recorded or proxy (`action.is_proxy`): SS-ORL.
    Label(LabelArgs),
}

/// Arguments of `dataset label`.
#[derive(Args, Debug)]
pub struct LabelArgs {
    /// The IDM (a `train idm` output folder).
    #[arg(long)]
    pub idm: PathBuf,
    /// Dataset to label (action-free, or with actions: the IDM's own labelled episodes keep
    /// theirs, and the proxies of the others are compared with what was recorded).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output dataset folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A dataset directory.
#[derive(Args, Debug)]
pub struct DirArgs {
    /// Dataset directory.
    pub dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `dataset replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Dataset directory.
    pub dir: PathBuf,
    /// Episode index.
    #[arg(long, value_parser = arg_ranges::at_least(0usize))]
    pub episode: usize,
    /// Robot to replay on.
    #[arg(long, value_enum, default_value = "sim")]
    pub robot: RobotKind,
    /// Scene (sim) the episode was recorded in.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// Seed to reset the sim with (default: the episode's recorded seed).
    #[arg(long, value_parser = arg_ranges::at_least(0u64))]
    pub seed: Option<u64>,
    /// Replay in real time at the dataset's fps (default: lockstep, as fast as possible; a
    /// real arm always replays in real time).
    #[arg(long)]
    pub realtime: bool,
    /// The arm's connection (`--robot widowx`).
    #[command(flatten)]
    pub driver: crate::robots::widowx::DriverArgs,
}

/// Arguments of `dataset export-video`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Dataset directory.
    pub dir: PathBuf,
    /// Episode index.
    #[arg(long, value_parser = arg_ranges::at_least(0usize))]
    pub episode: usize,
    /// Output mp4.
    #[arg(long)]
    pub out: PathBuf,
    /// Leave out the instruction caption.
    #[arg(long)]
    pub no_caption: bool,
}

/// Arguments of `dataset quality`.
#[derive(Args, Debug)]
pub struct QualityArgs {
    /// Dataset directory.
    pub dir: PathBuf,
    /// Return of a random policy and of an expert, for TQ (default 0 and 1: the sim's sparse
    /// success reward).
    #[arg(long, num_args = 2, value_names = ["LOW", "HIGH"], value_parser = arg_ranges::finite())]
    pub return_range: Option<Vec<f64>>,
    /// Bin width for SACo, in standard deviations of each component.
    #[arg(long, default_value_t = 0.1, value_parser = arg_ranges::positive("std"))]
    pub bin_std: f64,
    /// Normalise SACo by this dataset's unique pairs (as the paper does with a replay dataset).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `dataset` verb.
pub fn run(cmd: DatasetCommand, bus_config: &bus::BusConfig) -> Result<()> {
    match cmd {
        DatasetCommand::Info(a) => info(&a),
        DatasetCommand::Stats(a) => stats(&a),
        DatasetCommand::Replay(a) => replay(&a, bus_config),
        DatasetCommand::ExportVideo(a) => export(&a),
        DatasetCommand::Cache(a) => cache(&a),
        DatasetCommand::Quality(a) => quality(&a),
        DatasetCommand::Label(a) => label(&a),
    }
}

fn label(a: &LabelArgs) -> Result<()> {
    use video_pretrain::idm::{label::label_dataset, train::load_idm};
    prepare_output_dir(
        &a.out,
        "--out",
        ExistingDir::Refuse { hint: "a labelled dataset is written into a new folder" },
    )?;
    let device = Default::default();
    let (spec, model) =
        load_idm::<policy::Cpu>(&a.idm, &device).with_context(|| format!("loading the IDM in {}", a.idm.display()))?;
    let ds = Dataset::open(&a.dataset).with_context(|| format!("opening {}", a.dataset.display()))?;
    let r = label_dataset(&model, &spec, &a.idm, &ds, &a.dataset, &a.out, &device)
        .with_context(|| format!("labelling {} into {}", a.dataset.display(), a.out.display()))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(());
    }
    outln!(
        "labelled {}: {} episodes, {} frames; {} episodes kept their recorded actions, {} frames got proxy labels",
        a.out.display(),
        r.episodes,
        r.frames,
        r.kept_episodes,
        r.proxy_frames
    )?;
    if let (Some(n), Some(raw)) = (r.proxy_rmse, &r.proxy_rmse_raw) {
        let raw: Vec<String> = spec.action_names.iter().zip(raw).map(|(k, v)| format!("{k} {v:.4}")).collect();
        outln!("  proxy vs recorded actions: RMS error {n:.4} (normalised, [-1, 1] per component)")?;
        outln!("  per component: {}", raw.join(", "))?;
    }
    Ok(())
}

fn info(a: &DirArgs) -> Result<()> {
    let ds = Dataset::open(&a.dir)?;
    let info = ds.info();
    let bytes = disk_usage(&a.dir);
    if a.json {
        let v = serde_json::json!({
            "codebase_version": info.codebase_version, "fps": info.fps, "episodes": ds.episodes().len(),
            "frames": ds.len(), "tasks": ds.tasks(), "size_bytes": bytes,
            "features": info.features.iter().map(|(k, f)| (k.clone(), serde_json::json!({"dtype": f.dtype, "shape": f.shape}))).collect::<serde_json::Map<_, _>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    outln!("{} ({}, robot {})", a.dir.display(), info.codebase_version, info.robot_type.as_deref().unwrap_or("?"))?;
    outln!(
        "fps {} | episodes {} | frames {} | tasks {} | {:.2} MB on disk",
        info.fps,
        ds.episodes().len(),
        ds.len(),
        ds.tasks().len(),
        bytes as f64 / 1e6
    )?;
    let succ = ds.episodes().iter().filter_map(|e| e.success).filter(|s| *s).count();
    if ds.episodes().iter().any(|e| e.success.is_some()) {
        outln!("successful episodes {succ}/{}", ds.episodes().len())?;
    }
    outln!("{:<36} {:<8} {:<14} names", "feature", "dtype", "shape")?;
    for (k, f) in &info.features {
        let names = match &f.names {
            serde_json::Value::Array(a) if a.len() <= 8 => {
                a.iter().filter_map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            }
            serde_json::Value::Array(a) => format!("{} names", a.len()),
            _ => String::new(),
        };
        outln!("{k:<36} {:<8} {:<14} {names}", f.dtype, format!("{:?}", f.shape))?;
    }
    for (i, t) in ds.tasks().iter().enumerate() {
        outln!("task {i}: {t}")?;
    }
    Ok(())
}

fn stats(a: &DirArgs) -> Result<()> {
    let path = a.dir.join("meta/stats.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: malformed JSON", path.display()))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let obj = v.as_object().context("stats.json is not an object")?;
    let fmt = |x: &[f64]| {
        x.iter().take(7).map(|v| format!("{v:+.3}")).collect::<Vec<_>>().join(" ")
            + if x.len() > 7 { " …" } else { "" }
    };
    for (k, s) in obj {
        let Some(f) = dataset::FeatureStats::from_json(s) else { continue };
        outln!("{k} (count {})", f.count)?;
        outln!("  mean {}", fmt(&f.mean))?;
        outln!("  std  {}", fmt(&f.std))?;
        outln!("  min  {}", fmt(&f.min))?;
        outln!("  max  {}", fmt(&f.max))?;
        for q in ["q01", "q50", "q99"] {
            if let Some(v) = f.quantiles.get(q) {
                outln!("  {q}  {}", fmt(v))?;
            }
        }
    }
    Ok(())
}

fn replay(a: &ReplayArgs, bus_config: &bus::BusConfig) -> Result<()> {
    let ds = Dataset::open(&a.dir)?;
    let e = ds
        .episodes()
        .get(a.episode)
        .with_context(|| format!("{}: no episode {} ({} episodes)", a.dir.display(), a.episode, ds.episodes().len()))?
        .clone();
    let seed = match (a.seed, e.seed) {
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) if a.robot == RobotKind::Widowx => 0,
        (None, None) => bail!("episode {} has no recorded seed; pass --seed", a.episode),
    };
    let names = &ds.info().features.get(dataset::writer::ACTION).context("no action feature")?.names;
    let source = if names.as_array().and_then(|n| n.first()).and_then(|n| n.as_str()) == Some("delta_x_m") {
        ActionSource::EeDelta
    } else {
        ActionSource::Joint
    };
    let robot = RobotArgs {
        robot: a.robot,
        scene: a.scene.clone(),
        device: DeviceKind::Scripted,
        noise: 0.0,
        quality: None,
        mistake_rate: sim::expert::DEFAULT_MISTAKE_RATE,
        seed: Some(seed),
        image_size: 128,
        reset_s: Some(0.0),
        realtime: a.realtime,
        episode_s: (e.to_index - e.from_index) as f64 / ds.fps() + 1.0,
        driver: a.driver.clone(),
    };
    let mut robot_node = robot_node(&robot, ds.fps(), false, Some(1), None)?;
    if let RobotNode::Sim(cfg) = &mut robot_node {
        if a.realtime {
            cfg.lockstep = None;
        }
    }
    let (from, to) = (e.from_index as usize, e.to_index as usize);
    let actions: Vec<f32> = (from..to).flat_map(|i| ds.action(i).to_vec()).collect();
    let dim = ds.action_dim();
    let stop = crate::shutdown::stop_flag()?;
    let node = Box::new(move |bus: &bus::Bus, stop: &Arc<_>, ready: &crate::shutdown::StartBarrier| {
        run_replay(&actions, dim, source, bus, stop, Some(ready))
    });
    let (_, _, report) = run_with_robot::<ReplayReport>(bus_config, robot_node, None, stop, Some(node))?;
    let report = report.unwrap_or_default();
    let n = report.measured.len().min(to - from);
    let mut sq = 0.0;
    let mut count = 0usize;
    for k in 0..n {
        for (m, r) in report.measured[k].iter().zip(ds.state(from + k)).take(6) {
            sq += (m - f64::from(*r)).powi(2);
            count += 1;
        }
    }
    outln!(
        "replayed episode {} (seed {seed}): {} actions; success {} (recorded {}); joint RMS error vs recorded states {:.4} rad over {n} frames",
        a.episode,
        report.actions_sent,
        report.success,
        e.success.map_or("?".to_string(), |s| s.to_string()),
        (sq / count.max(1) as f64).sqrt()
    )?;
    Ok(())
}

#[cfg(feature = "video")]
fn export(a: &ExportArgs) -> Result<()> {
    crate::output_path::check_output_file(&a.out, "--out")?;
    let ds = Dataset::open(&a.dir)?;
    let frames = dataset::export::export_episode(&ds, a.episode, &a.out, !a.no_caption)?;
    outln!("wrote {} ({frames} frames, {} fps)", a.out.display(), ds.fps())?;
    Ok(())
}

#[cfg(not(feature = "video"))]
fn export(_: &ExportArgs) -> Result<()> {
    Err(super::video_support::missing("dataset export-video"))
}

#[cfg(feature = "video")]
fn cache(a: &DirArgs) -> Result<()> {
    let mut ds = Dataset::open(&a.dir)?;
    if ds.camera_keys().is_empty() {
        bail!("{} has no cameras: there are no frames to cache", a.dir.display());
    }
    let out = dataset::frame_cache::default_path(&a.dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = ds.write_frame_cache_file(&out, threads).with_context(|| format!("caching the frames of {}", a.dir.display()))?;
    if a.json {
        outln!(
            "{}",
            serde_json::json!({"path": s.path, "videos": s.videos, "frames": s.frames, "bytes": s.bytes})
        )?;
    } else {
        outln!(
            "wrote {}: {} frames of {} video files, {:.1} MB",
            s.path.display(),
            s.frames,
            s.videos,
            s.bytes as f64 / 1e6
        )?;
    }
    Ok(())
}

#[cfg(not(feature = "video"))]
fn cache(_: &DirArgs) -> Result<()> {
    Err(super::video_support::missing("dataset cache (it decodes the videos)"))
}

fn quality(a: &QualityArgs) -> Result<()> {
    let ds = Dataset::open(&a.dir)?;
    let reference = match &a.reference {
        Some(r) => Some(dataset::quality::unique_state_actions(&Dataset::open(r)?, a.bin_std)),
        None => None,
    };
    let range = a.return_range.as_ref().map(|r| (r[0], r[1]));
    let q = dataset::quality::quality(&ds, range, a.bin_std, reference);
    if a.json {
        outln!(
            "{}",
            serde_json::json!({"episodes": q.episodes, "mean_return": q.mean_return, "success_rate": q.success_rate,
                "tq": q.tq, "unique_pairs": q.unique_pairs, "saco": q.saco})
        )?;
        return Ok(());
    }
    outln!("{}: {} episodes, {} transitions", a.dir.display(), q.episodes, ds.len())?;
    outln!("mean return {:.3} | success rate {:.1}%", q.mean_return, 100.0 * q.success_rate)?;
    outln!("TQ   {:.3}  (normalised return; range {:?})", q.tq, range.unwrap_or((0.0, 1.0)))?;
    outln!(
        "SACo {:.3}  ({} unique state-action pairs at {} std bins / {})",
        q.saco,
        q.unique_pairs,
        a.bin_std,
        if a.reference.is_some() { "reference dataset's unique pairs" } else { "transitions" }
    )?;
    Ok(())
}
