//! `armstack record`: teleoperate (or let the scripted expert drive) and record a LeRobot v3.0
//! dataset through the recorder node.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use dataset::{CameraFeature, DatasetSpec, DatasetWriter};

use super::arg_ranges;
use super::teleop::{make_device, robot_node, run_with_robot, RobotArgs, RobotNode};
use crate::record::align::{env_state_names, ActionSource};
use crate::record::recorder::{run_recorder, RecorderConfig, RecorderReport};

/// Arguments of `armstack record`.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Dataset directory (created; with --resume, appended to).
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
    /// Append to an existing dataset.
    #[arg(long)]
    pub resume: bool,
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

/// Runs `armstack record`.
pub fn run(args: RecordArgs, bus_config: &bus::BusConfig) -> Result<()> {
    if args.fps <= 0.0 || !args.fps.is_finite() {
        bail!("--fps must be positive");
    }
    let robot = robot_node(&args.robot, args.fps, !args.no_cameras, None, args.task.as_deref())?;
    let (spec, camera_names) = match &robot {
        RobotNode::Sim(cfg) => {
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
    let cameras = spec.cameras.clone();
    let mut writer = if args.resume && args.dataset.join("meta/info.json").exists() {
        let w = DatasetWriter::resume(&args.dataset)?;
        let info = w.info();
        if (info.fps - args.fps).abs() > 1e-9
            || info.video_keys() != cameras.iter().map(|c| c.key.clone()).collect::<Vec<_>>()
        {
            bail!(
                "{}: the dataset has fps {} and cameras {:?}; this recording would have fps {} and cameras {:?}",
                args.dataset.display(),
                info.fps,
                info.video_keys(),
                args.fps,
                cameras.iter().map(|c| &c.key).collect::<Vec<_>>()
            );
        }
        w
    } else {
        DatasetWriter::create(&args.dataset, &spec)?
    };
    writer.set_video_settings(dataset::video::VideoSettings { crf: args.crf, ..Default::default() });
    let already = writer.episodes();
    let device = make_device(&args.robot, &robot)?;
    let env_state = !spec.env_state_names.is_empty();
    let rec_cfg = RecorderConfig {
        cameras: camera_names,
        image_bytes: cameras.iter().map(|c| (c.width * c.height * 3) as usize).collect(),
        action: ActionSource::EeDelta,
        env_state,
        episodes: Some(args.episodes),
        task: args.task.clone(),
        grace: Duration::from_millis(500),
        queue: 4096,
    };
    let stop = crate::shutdown::stop_flag()?;
    let started = std::time::Instant::now();
    let recorder = Box::new(move |bus: &bus::Bus, stop: &std::sync::Arc<_>, ready: &std::sync::Barrier| {
        run_recorder(writer, &rec_cfg, bus, stop, Some(ready))
    });
    let (sim, teleop, report) = run_with_robot::<RecorderReport>(bus_config, robot, Some(device), stop, Some(recorder))
        .with_context(|| format!("recording into {}", args.dataset.display()))?;
    let report = report.unwrap_or_default();
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
    Ok(())
}
