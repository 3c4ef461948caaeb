//! `armstack bench sim`: per scene, the scripted expert drives the env (so contacts, grasps and
//! IK are all exercised) and only `Env::step` is timed. Reported with and without cameras, on
//! one core (one env, this thread) and on all cores (a `VecEnv`, two envs per core).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use sim::{Action, Env, EnvConfig, Expert, Observation, VecEnv};

use crate::outln;

/// Arguments of `armstack bench sim`.
#[derive(Args, Debug)]
pub struct SimBenchArgs {
    /// Scenes to measure (default: all built-in scenes).
    #[arg(long)]
    pub scene: Vec<String>,
    /// Control steps per measurement.
    #[arg(long, default_value_t = 400, value_parser = crate::cmd::arg_ranges::at_least(1u32))]
    pub steps: u32,
    /// Camera width and height, pixels.
    #[arg(long, default_value_t = 128, value_parser = crate::cmd::arg_ranges::int_range(1u32, 4096))]
    pub size: u32,
    /// Physics rate, Hz.
    #[arg(long, default_value_t = 500.0, value_parser = crate::cmd::arg_ranges::rate_hz())]
    pub physics_hz: f64,
    /// Solver iterations.
    #[arg(long, default_value_t = 4, value_parser = crate::cmd::arg_ranges::at_least(1usize))]
    pub solver_iterations: usize,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One measurement.
#[derive(Debug, Serialize)]
pub struct SimBenchRow {
    /// Scene.
    pub scene: String,
    /// Cameras rendered (front + wrist RGB-D) or physics only.
    pub cameras: bool,
    /// Worker threads.
    pub threads: usize,
    /// Envs stepped.
    pub envs: usize,
    /// Control steps per second (all envs together).
    pub control_steps_per_s: f64,
    /// Physics steps per second (all envs together).
    pub physics_steps_per_s: f64,
    /// Simulated seconds per wall second (all envs together).
    pub real_time_factor: f64,
    /// RGB-D frames per second (2 cameras per control step), 0 without cameras.
    pub frames_per_s: f64,
    /// Mean wall time of one physics step, µs (physics-only rows).
    pub us_per_physics_step: f64,
    /// Episodes that succeeded / finished during the run.
    pub successes: u32,
    /// Episodes finished.
    pub episodes: u32,
}

fn env_config(scene: &str, args: &SimBenchArgs, cameras: bool) -> Result<EnvConfig> {
    let mut cfg = EnvConfig::new(sim::load_scene(scene)?);
    cfg.physics.physics_hz = args.physics_hz;
    cfg.physics.solver_iterations = args.solver_iterations;
    if cameras {
        cfg = cfg.with_cameras(args.size, args.size);
    }
    cfg.substeps()?;
    Ok(cfg)
}

/// What one timed run did.
struct Run {
    threads: usize,
    envs: usize,
    /// Control steps over all envs.
    steps: u64,
    /// Wall time spent inside `step`, seconds.
    secs: f64,
    /// (successes, episodes finished).
    episodes: (u32, u32),
}

fn row(scene: &str, cfg: &EnvConfig, cameras: bool, run: Run) -> SimBenchRow {
    let Run { threads, envs, steps, secs, episodes: eps } = run;
    let substeps = cfg.substeps().unwrap_or(1) as f64;
    let control = steps as f64 / secs;
    let physics = control * substeps;
    SimBenchRow {
        scene: scene.to_string(),
        cameras,
        threads,
        envs,
        control_steps_per_s: control,
        physics_steps_per_s: physics,
        real_time_factor: control / cfg.control_hz,
        frames_per_s: if cameras { control * cfg.cameras.len() as f64 } else { 0.0 },
        us_per_physics_step: if cameras { 0.0 } else { 1e6 / physics * threads as f64 },
        successes: eps.0,
        episodes: eps.1,
    }
}

fn single(scene: &str, args: &SimBenchArgs, cameras: bool) -> Result<SimBenchRow> {
    let cfg = env_config(scene, args, cameras)?;
    let mut env = Env::new(cfg.clone())?;
    let mut seed = 0;
    let mut expert = Expert::new(&cfg.scene, 0.0, seed);
    let mut obs = env.reset(seed)?;
    let (mut secs, mut eps) = (0.0, (0, 0));
    for _ in 0..args.steps {
        let action = expert.act(&obs);
        let t = Instant::now();
        let step = env.step(&action)?;
        secs += t.elapsed().as_secs_f64();
        obs = step.obs;
        if step.done {
            eps.0 += u32::from(step.success);
            eps.1 += 1;
            seed += 1;
            expert.reset(seed);
            obs = env.reset(seed)?;
        }
    }
    Ok(row(scene, &cfg, cameras, Run { threads: 1, envs: 1, steps: args.steps as u64, secs, episodes: eps }))
}

fn parallel(scene: &str, args: &SimBenchArgs, cameras: bool, threads: usize) -> Result<SimBenchRow> {
    let cfg = env_config(scene, args, cameras)?;
    let n = threads * 2;
    let mut venv = VecEnv::new(&cfg, n, threads)?;
    let mut seeds: Vec<u64> = (0..n as u64).collect();
    let mut experts: Vec<Expert> = seeds.iter().map(|s| Expert::new(&cfg.scene, 0.0, *s)).collect();
    let mut obs: Vec<Observation> = venv.reset_all(&seeds)?;
    let mut next_seed = n as u64;
    let rounds = (args.steps as usize).div_ceil(n).max(1);
    let (mut secs, mut eps) = (0.0, (0, 0));
    for _ in 0..rounds {
        let actions: Vec<Action> = experts.iter_mut().zip(&obs).map(|(e, o)| e.act(o)).collect();
        let t = Instant::now();
        let steps = venv.step(&actions)?;
        secs += t.elapsed().as_secs_f64();
        let mut resets = Vec::new();
        obs = steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                if s.done {
                    eps.0 += u32::from(s.success);
                    eps.1 += 1;
                    seeds[i] = next_seed;
                    next_seed += 1;
                    experts[i].reset(seeds[i]);
                    resets.push((i, seeds[i]));
                }
                s.obs
            })
            .collect();
        for (i, o) in venv.reset_some(&resets)? {
            obs[i] = o;
        }
    }
    Ok(row(scene, &cfg, cameras, Run { threads, envs: n, steps: (rounds * n) as u64, secs, episodes: eps }))
}

/// Rendering alone: each thread owns a world of `scene` (its arm posed by the expert mid-task)
/// and renders both cameras repeatedly; frames/s over all threads. No physics is stepped.
fn render_only(scene: &str, args: &SimBenchArgs, threads: usize) -> Result<RenderBenchRow> {
    let cfg = env_config(scene, args, true)?;
    let frames_per_thread = (args.steps as usize * 2).max(50);
    let start = Instant::now();
    let results: Vec<Result<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let cfg = cfg.clone();
                s.spawn(move || -> Result<usize> {
                    let mut env = Env::new(cfg.clone())?;
                    let mut expert = Expert::new(&cfg.scene, 0.0, t as u64);
                    let mut obs = env.reset(t as u64)?;
                    for _ in 0..15 {
                        obs = env.step(&expert.act(&obs))?.obs;
                    }
                    let world = env.world().ok_or_else(|| anyhow::anyhow!("env has no world"))?;
                    let mut images: Vec<sim::CameraImage> =
                        cfg.cameras.iter().map(|c| sim::camera::render(world, c)).collect();
                    let mut frames = 0;
                    while frames < frames_per_thread {
                        for (cam, img) in cfg.cameras.iter().zip(images.iter_mut()) {
                            sim::camera::render_into(world, cam, img);
                            frames += 1;
                        }
                    }
                    Ok(frames)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("render thread panicked"))))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let frames: usize = results.into_iter().sum::<Result<usize>>()?;
    Ok(RenderBenchRow {
        scene: scene.to_string(),
        size: args.size,
        threads,
        frames_per_s: frames as f64 / secs,
        us_per_frame: secs * 1e6 * threads as f64 / frames as f64,
    })
}

/// One rendering-only measurement.
#[derive(Debug, Serialize)]
pub struct RenderBenchRow {
    /// Scene.
    pub scene: String,
    /// Image width = height, pixels.
    pub size: u32,
    /// Rendering threads.
    pub threads: usize,
    /// RGB-D frames per second over all threads.
    pub frames_per_s: f64,
    /// Wall time of one frame on one thread, µs.
    pub us_per_frame: f64,
}

/// All results of `bench sim`.
#[derive(Debug, Serialize)]
pub struct SimBenchReport {
    /// Env stepping rows.
    pub env: Vec<SimBenchRow>,
    /// Rendering-only rows.
    pub render: Vec<RenderBenchRow>,
}

/// Runs the benchmark and prints the table and JSON.
pub fn run(args: SimBenchArgs) -> Result<()> {
    let scenes: Vec<String> = if args.scene.is_empty() {
        sim::scene::builtin_names().into_iter().map(String::from).collect()
    } else {
        args.scene.clone()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    let mut render_rows = Vec::new();
    for scene in &scenes {
        render_rows.push(render_only(scene, &args, 1)?);
        if cores > 1 {
            render_rows.push(render_only(scene, &args, cores)?);
        }
        for cameras in [false, true] {
            rows.push(single(scene, &args, cameras)?);
            if cores > 1 {
                rows.push(parallel(scene, &args, cameras, cores)?);
            }
        }
    }
    outln!(
        "{:<15} {:<8} {:>3} {:>4} {:>11} {:>12} {:>9} {:>9} {:>8} {:>7}",
        "scene",
        "cameras",
        "thr",
        "envs",
        "ctrl/s",
        "physics/s",
        "RTF",
        "frames/s",
        "µs/step",
        "success"
    )?;
    for r in &rows {
        outln!(
            "{:<15} {:<8} {:>3} {:>4} {:>11.1} {:>12.0} {:>9.1} {:>9.1} {:>8.1} {:>3}/{:<3}",
            r.scene,
            if r.cameras { format!("{}²", args.size) } else { "off".into() },
            r.threads,
            r.envs,
            r.control_steps_per_s,
            r.physics_steps_per_s,
            r.real_time_factor,
            r.frames_per_s,
            r.us_per_physics_step,
            r.successes,
            r.episodes
        )?;
    }
    outln!()?;
    outln!("{:<15} {:>6} {:>3} {:>10} {:>10}", "render only", "size", "thr", "frames/s", "µs/frame")?;
    for r in &render_rows {
        outln!("{:<15} {:>5}² {:>3} {:>10.1} {:>10.0}", r.scene, r.size, r.threads, r.frames_per_s, r.us_per_frame)?;
    }
    super::emit_json(&SimBenchReport { env: rows, render: render_rows }, args.json.as_ref())
}
