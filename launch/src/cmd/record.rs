//! `armstack record`: teleoperate (or let the scripted expert drive) and record a LeRobot v3.0
//! dataset through the recorder node.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dataset::session::SessionSettings;
use dataset::{CameraFeature, DatasetSpec, DatasetWriter};

use super::arg_ranges;
use super::teleop::{
    make_device, robot_node, supervise_robot, DeviceKind, Extra, RobotArgs, RobotNode, RobotReport, RunOutcome,
    FINISH_GRACE,
};
use crate::record::align::{env_state_names, ActionSource};
use crate::record::recorder::{run_recorder, RecorderConfig, RecorderReport};
use crate::teleop::node::TeleopReport;

/// Arguments of `armstack record`.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Dataset directory (created: it must not exist or be empty; with --resume, appended to).
    #[arg(long)]
    pub dataset: PathBuf,
    #[command(flatten)]
    pub robot: RobotArgs,
    /// Task text stored for every episode (default: the scene's instruction of each episode).
    #[arg(long)]
    pub task: Option<String>,
    /// Episodes to record.
    #[arg(long, default_value_t = 50, value_parser = arg_ranges::at_least(1u64))]
    pub episodes: u64,
    /// Frames per second (the robot's control rate).
    #[arg(long, default_value_t = 10.0, value_parser = arg_ranges::rate_hz())]
    pub fps: f64,
    /// Append to an existing dataset recorded with the same settings (robot, scene, fps,
    /// cameras …); the episodes continue after the seeds it holds.
    #[arg(long)]
    pub resume: bool,
    /// With --resume and --seed: record seeds the dataset already holds again (their episodes
    /// start from the same scenes).
    #[arg(long, requires = "seed")]
    pub reuse_seeds: bool,
    /// Record no cameras (state-only datasets).
    #[arg(long)]
    pub no_cameras: bool,
    /// x264 constant rate factor of the camera videos.
    #[arg(long, default_value_t = 15, value_parser = arg_ranges::int_range(0u8, 51))]
    pub crf: u8,
}

/// Dataset camera keys for the sim's cameras.
fn camera_features(cfg: &sim::EnvConfig) -> Vec<CameraFeature> {
    cfg.cameras
        .iter()
        .map(|c| CameraFeature { key: format!("observation.images.{}", c.name), width: c.width, height: c.height })
        .collect()
}

/// What one recording session did (see [`record_session`]).
pub struct RecordSession {
    /// The robot node's report.
    pub robot: RobotReport,
    /// The teleop node's report.
    pub teleop: TeleopReport,
    /// The recorder's report (default when the recorder failed).
    pub report: RecorderReport,
    /// Episodes the dataset held before this session.
    pub already: u64,
    /// The first failure, which stopped every node (the finished episodes are kept).
    pub failure: Option<anyhow::Error>,
}

/// Runs `armstack record`.
pub fn run(args: RecordArgs, bus_config: &bus::BusConfig) -> Result<()> {
    // Flags the chosen quality level does not use are refused before anything is written.
    args.robot.demo_quality()?;
    let stop = crate::shutdown::stop_flag()?;
    let started = std::time::Instant::now();
    let RecordSession { robot: sim, teleop, report, already, failure } = record_session(&args, bus_config, stop)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "recorded {} episodes ({} successful), {} frames in {:.1} s into {} ({} episodes in total)",
        report.episodes,
        report.successes,
        report.frames,
        secs,
        args.dataset.display(),
        already + report.episodes
    );
    println!(
        "discarded {} | bus messages dropped {} | stale observations {} | missing images {} | held steps {} | \
         robot steps {} | teleop commands {}",
        report.discarded,
        report.dropped_messages,
        report.align.stale,
        report.align.missing_images,
        report.align.held,
        sim.steps,
        teleop.commands
    );
    let intake = report.intake;
    println!(
        "messages not recorded: malformed {} | stamped in the future {} | over the recorder's bound {} | \
         episode steps out of order {} | steps without a frame {} | undecodable {} | newer schema {}",
        intake.malformed,
        intake.future,
        intake.overflow,
        intake.rejected_events,
        report.align.incomplete,
        report.decode_errors,
        report.newer_schema
    );
    let Some(failure) = failure else { return Ok(()) };
    // Counted on disk: a failed recorder reports nothing, yet its finished episodes are durable.
    let kept = dataset::DatasetInfo::load(&args.dataset).map_or(already, |i| i.total_episodes);
    Err(failure
        .context(format!("recording into {} stopped ({kept} episodes in total are kept)", args.dataset.display())))
}

/// Records one session as `armstack record` does (the robot, the device and the recorder into
/// `args.dataset`) until the episodes are recorded, a node fails or `stop` is set; a failure
/// is returned in the session, with what the nodes finished.
pub fn record_session(
    args: &RecordArgs,
    bus_config: &bus::BusConfig,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<RecordSession> {
    if args.fps <= 0.0 || !args.fps.is_finite() {
        bail!("--fps must be positive");
    }
    let mut robot = robot_node(&args.robot, args.fps, !args.no_cameras, None, args.task.as_deref())?;
    let mut settings = SessionSettings::new();
    let (spec, camera_names) = match &robot {
        RobotNode::Sim(cfg) => {
            settings.insert("robot".into(), "sim".into());
            settings.insert("physics_hz".into(), cfg.env.physics.physics_hz.to_string());
            let object_names: Vec<String> = cfg.env.scene.objects.iter().map(|o| o.name.clone()).collect();
            let spec = DatasetSpec {
                scene: Some(cfg.env.scene.name.clone()),
                fps: args.fps,
                robot_type: "widowx250".into(),
                state_names: sim::node::joint_state_names(),
                action_names: ActionSource::EeDelta.names(),
                env_state_names: env_state_names(&object_names),
                cameras: camera_features(&cfg.env),
            };
            (spec, cfg.env.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
        }
        RobotNode::Widowx { conn, .. } => {
            settings.insert("robot".into(), "widowx".into());
            let spec = DatasetSpec {
                scene: None,
                fps: args.fps,
                robot_type: "widowx250".into(),
                state_names: conn.arm.map().state_names(),
                action_names: ActionSource::EeDelta.names(),
                env_state_names: Vec::new(),
                cameras: Vec::new(),
            };
            (spec, Vec::new())
        }
    };
    #[cfg(not(feature = "video"))]
    if !spec.cameras.is_empty() {
        return Err(super::video_support::missing("recording cameras (--no-cameras records a state-only dataset)"));
    }
    let cameras = spec.cameras.clone();
    let device = make_device(&args.robot, &robot)?;
    let mut writer = open_dataset(&args, &spec, &settings)?;
    let stored: BTreeSet<u64> = writer.episode_meta().iter().filter_map(|e| e.seed).collect();
    if let RobotNode::Sim(cfg) = &mut robot {
        cfg.seed = first_seed(&args, &stored)?;
    }
    let scripted = args.robot.device == DeviceKind::Scripted;
    let quality = args.robot.demo_quality()?;
    writer.set_expert_noise(scripted.then_some(quality.noise()));
    writer.set_demo_quality(scripted.then_some(quality.name()));
    let scripted = match &robot {
        RobotNode::Sim(cfg) if scripted => Some((cfg.env.scene.clone(), quality)),
        _ => None,
    };
    #[cfg(feature = "video")]
    writer.set_video_settings(dataset::video::VideoSettings { crf: args.crf, ..Default::default() });
    let already = writer.episodes();
    let rec_cfg = RecorderConfig {
        cameras: camera_names,
        image_bytes: cameras.iter().map(|c| (c.width * c.height * 3) as usize).collect(),
        action: ActionSource::EeDelta,
        state_dim: spec.state_names.len(),
        env_state_dim: spec.env_state_names.len(),
        episodes: Some(args.episodes),
        task: args.task.clone(),
        grace: Duration::from_millis(500),
        queue: 4096,
        // A real arm's episodes have no seed (the driver numbers them from 0 in every session).
        seeds: matches!(robot, RobotNode::Sim(_)),
        scripted,
    };
    let recorder = Box::new(move |bus: &bus::Bus, stop: &std::sync::Arc<_>, ready: &crate::shutdown::StartBarrier| {
        run_recorder(writer, &rec_cfg, bus, stop, Some(ready))
    });
    let recorder = Extra { name: "recorder", run: recorder, grace: FINISH_GRACE };
    let run = supervise_robot::<RecorderReport>(bus_config, robot, Some(device), stop, Some(recorder))
        .with_context(|| format!("recording into {}", args.dataset.display()))?;
    let RunOutcome { robot, teleop, extra: report, failure } = run;
    Ok(RecordSession { robot, teleop, report: report.unwrap_or_default(), already, failure })
}

/// Opens the dataset: a new one in a new or empty folder, or with `--resume` the existing one,
/// refused unless this session records frames that mean the same (robot, scene, fps, cameras,
/// features; every differing setting is named with both values).
fn open_dataset(args: &RecordArgs, spec: &DatasetSpec, settings: &SessionSettings) -> Result<DatasetWriter> {
    let root = &args.dataset;
    let has_dataset = root.join("meta/info.json").exists();
    if args.resume {
        if !has_dataset {
            bail!(
                "--resume: {} holds no dataset (no meta/info.json) to append to; record without --resume to create one",
                root.display()
            );
        }
        return Ok(DatasetWriter::resume_session(root, spec, settings)?);
    }
    if has_dataset {
        bail!("{} already holds a dataset: pass --resume to append to it, or choose another folder", root.display());
    }
    let occupied = std::fs::read_dir(root).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied {
        bail!("{} exists and is not empty (and holds no dataset): choose a new or empty folder", root.display());
    }
    Ok(DatasetWriter::create_session(root, spec, settings)?)
}

/// The seed of the session's first episode: `--seed`, else (resuming) one past the largest seed
/// the dataset holds, else 0. An explicit `--seed` whose episodes would repeat seeds the dataset
/// holds (kept episodes use consecutive seeds) is refused unless `--reuse-seeds`.
fn first_seed(args: &RecordArgs, stored: &BTreeSet<u64>) -> Result<u64> {
    let Some(seed) = args.robot.seed else {
        return Ok(stored.last().map_or(0, |s| s.saturating_add(1)));
    };
    let session = seed..seed.saturating_add(args.episodes);
    let repeated: Vec<u64> = stored.range(session.clone()).copied().collect();
    if !repeated.is_empty() && !args.reuse_seeds {
        bail!(
            "--seed {seed}: this session's {} episodes would use seeds {}..={}, and the dataset already holds episodes \
             with seeds {}; omit --seed to continue after seed {}, or pass --reuse-seeds to record those seeds again",
            args.episodes,
            session.start,
            session.end.saturating_sub(1),
            list(&repeated),
            stored.last().copied().unwrap_or_default()
        );
    }
    Ok(seed)
}

/// `a, b, c` (at most 8 values, then `…`).
fn list(values: &[u64]) -> String {
    let shown: Vec<String> = values.iter().take(8).map(u64::to_string).collect();
    if values.len() > 8 {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
