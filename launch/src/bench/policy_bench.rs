//! `armstack bench inference` and `armstack bench deploy`: one-chunk inference latency of the
//! state-only and vision models, and the control loop with a policy in it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use policy::features::RawObs;
use policy::node::Percentiles;
use policy::{ImageEncoderConfig, Policy, PolicyConfig, PolicySpec};
use serde::Serialize;

use super::emit_json;
use crate::cmd::deploy::{deploy, DeployArgs};
use crate::cmd::policy_args::{check_device, DeviceKind, ExecArg};
use crate::cmd::teleop::RobotKind;
use crate::outln;
use crate::with_backend;

/// `armstack bench inference`.
#[derive(Args, Debug)]
pub struct InferenceBenchArgs {
    /// Chunks timed per model (after 10 warm-up calls).
    #[arg(long, default_value_t = 200, value_parser = crate::cmd::arg_ranges::at_least(1usize))]
    pub iterations: usize,
    /// Camera side of the vision model, px.
    #[arg(long, default_value_t = 128, value_parser = crate::cmd::arg_ranges::int_range(1usize, 4096))]
    pub image_size: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Serialize)]
struct InferenceRow {
    model: String,
    device: String,
    params: usize,
    latency: Percentiles,
}

/// The two default models (random weights: latency does not depend on them).
pub fn default_specs(image_size: usize) -> Vec<(String, PolicySpec)> {
    let tasks = vec!["pick up the red cube".to_string()];
    // The reference script's input widths: no finger-tip features.
    let state = PolicyConfig { tip_features: false, ..PolicyConfig::state_only(10, 7, 5, 7) };
    let cams = vec!["observation.images.front".to_string(), "observation.images.wrist".to_string()];
    let vision = PolicyConfig::vision(10, 7, 7, ImageEncoderConfig::new(image_size, cams));
    vec![
        ("state-only".into(), PolicySpec::untrained(state, Some("pick_cube".into()), 10.0, tasks.clone())),
        (format!("vision {image_size}px x2"), PolicySpec::untrained(vision, Some("pick_cube".into()), 10.0, tasks)),
    ]
}

fn raw_for(spec: &PolicySpec) -> RawObs {
    RawObs {
        state: vec![0.1; spec.config.state_dim],
        env_state: vec![0.1; spec.config.env_state_dim],
        instruction: "pick up the red cube".into(),
        images: spec
            .config
            .image
            .as_ref()
            .map_or(Vec::new(), |i| vec![vec![128u8; i.size * i.size * 3]; i.cameras.len()]),
    }
}

/// Runs `armstack bench inference`.
pub fn run_inference(args: InferenceBenchArgs) -> Result<()> {
    check_device(args.device)?;
    let mut rows = Vec::new();
    for (name, spec) in default_specs(args.image_size) {
        let row = with_backend!(args.device, B, {
            let device = Default::default();
            let backend = <B as burn::tensor::backend::Backend>::name(&device);
            let model = policy::model::ChunkPolicy::<B>::new(&spec.config, &device);
            let params = model.num_params();
            let policy = Policy { spec: spec.clone(), model, device };
            let raw = vec![raw_for(&spec)];
            for _ in 0..10 {
                policy.act(&raw)?;
            }
            let mut ms = Vec::with_capacity(args.iterations);
            for _ in 0..args.iterations {
                let t = Instant::now();
                policy.act(&raw)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            InferenceRow {
                model: name.clone(),
                device: format!("{:?} ({backend})", args.device).to_lowercase(),
                params,
                latency: Percentiles::of(&ms),
            }
        });
        rows.push(row);
    }
    outln!("| model | device | params | p50 ms | p99 ms | max ms |")?;
    outln!("|---|---|---|---|---|---|")?;
    for r in &rows {
        outln!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            r.model,
            r.device,
            r.params,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms
        )?;
    }
    emit_json(&rows, args.json.as_ref())
}

/// `armstack bench deploy`.
#[derive(Args, Debug)]
pub struct DeployBenchArgs {
    /// Policy folder (default: an untrained state-only policy for pick_cube).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Control rates to run, Hz.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10.0, 50.0], value_parser = crate::cmd::arg_ranges::rate_hz())]
    pub rates: Vec<f64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10.0, value_parser = crate::cmd::arg_ranges::duration_s())]
    pub seconds: f64,
    /// Chunk execution.
    #[arg(long, value_enum, default_value_t = ExecArg::Ensemble)]
    pub exec: ExecArg,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Serialize)]
struct DeployRow {
    rate_hz: f64,
    report: policy::node::PolicyNodeReport,
}

/// Runs `armstack bench deploy`.
pub fn run_deploy(args: DeployBenchArgs) -> Result<()> {
    let mut tmp = None;
    let dir = match &args.policy {
        Some(p) => p.clone(),
        None => {
            let dir = tempfile_dir()?;
            tmp = Some(dir.clone());
            let (_, spec) = default_specs(128).remove(0);
            let device = Default::default();
            let model = policy::model::ChunkPolicy::<policy::Cpu>::new(&spec.config, &device);
            let mut spec = spec;
            spec.num_params = model.num_params();
            spec.save(&dir)?;
            policy::checkpoint::save_module(&model, &dir.join(policy::inference::MODEL_STEM))?;
            dir
        }
    };
    let mut bus_config = bus::BusConfig::from_env();
    bus_config.robot = format!("bench_deploy_{}", std::process::id());
    let mut rows = Vec::new();
    for &rate in &args.rates {
        let d = DeployArgs {
            policy: dir.clone(),
            robot: RobotKind::Sim,
            scene: None,
            rate: Some(rate),
            exec: args.exec,
            task: None,
            episodes: None,
            ticks: Some((args.seconds * rate).round() as u64),
            seed: 1_000_000,
            device: DeviceKind::Cpu,
            driver: Default::default(),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let result = deploy(&d, &bus_config, stop);
        if result.is_err() {
            if let Some(t) = &tmp {
                let _ = std::fs::remove_dir_all(t);
            }
        }
        let (report, _, _) = result?;
        rows.push(DeployRow { rate_hz: rate, report });
    }
    if let Some(t) = &tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    outln!("| rate Hz | ticks | commands | chunks | late | p50 period ms | p99 jitter ms | obs→cmd p50 ms | obs→cmd p99 ms | inference p99 ms |")?;
    outln!("|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let p = &r.report;
        outln!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.rate_hz,
            p.ticks,
            p.commands,
            p.executor.chunks,
            p.executor.late_chunks,
            p.period.p50_ms,
            p.jitter.p99_ms,
            p.obs_to_command.p50_ms,
            p.obs_to_command.p99_ms,
            p.inference.p99_ms
        )?;
    }
    emit_json(&rows, args.json.as_ref())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("armstack-bench-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
