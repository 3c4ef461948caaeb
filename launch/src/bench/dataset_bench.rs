//! `armstack bench dataset`: write throughput of a sim-recorded dataset (H.264 encode, remux,
//! parquet, metadata: everything `end_episode` does) and random-access read throughput of
//! training samples (state, action, a 10-step chunk target and both cameras' decoded images),
//! from a whole-dataset frame cache and by keyframe seeks.
//!
//! It encodes and decodes video: a build without the `video` feature keeps only the arguments
//! (the verb answers that it needs video).
#![cfg_attr(not(feature = "video"), allow(dead_code, unused_imports))]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use dataset::reader::{disk_usage, Dataset};
use dataset::{CameraFeature, DatasetSpec, DatasetWriter, FrameRecord};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sim::{Env, EnvConfig, Expert};

use crate::outln;
use crate::output_path::{prepare_output_dir, ExistingDir};

/// Arguments of `armstack bench dataset`.
#[derive(Args, Debug)]
pub struct DatasetBenchArgs {
    /// Episodes to record (pick_cube, scripted expert with noise 0.3).
    #[arg(long, default_value_t = 50, value_parser = crate::cmd::arg_ranges::at_least(1u64))]
    pub episodes: u64,
    /// Camera width and height, pixels.
    #[arg(long, default_value_t = 128, value_parser = crate::cmd::arg_ranges::int_range(2u32, 4096))]
    pub size: u32,
    /// Random samples per read measurement (keyframe seeks use a tenth).
    #[arg(long, default_value_t = 20_000, value_parser = crate::cmd::arg_ranges::at_least(10usize))]
    pub samples: usize,
    /// Reader threads for the multi-threaded rows (default: all cores).
    #[arg(long, value_parser = crate::cmd::arg_ranges::at_least(1usize))]
    pub threads: Option<usize>,
    /// Keep the dataset here, a new or empty folder (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One measurement.
#[derive(Debug, Serialize)]
pub struct DatasetBenchRow {
    /// What was measured.
    pub what: String,
    /// Threads.
    pub threads: usize,
    /// Items (frames or samples).
    pub items: u64,
    /// Wall time, s.
    pub seconds: f64,
    /// Items per second.
    pub per_s: f64,
}

fn row(what: &str, threads: usize, items: u64, seconds: f64) -> DatasetBenchRow {
    DatasetBenchRow { what: what.into(), threads, items, seconds, per_s: items as f64 / seconds.max(1e-9) }
}

/// Reads one training sample as a data loader would (state, action, chunk target and both
/// images copied into a sample buffer); returns a checksum so the work cannot be optimised away.
fn sample_from_cache(ds: &Dataset, i: usize, keys: &[String], buf: &mut Vec<u8>) -> Result<u64> {
    let mut sum = ds.state(i).len() as u64 + ds.action(i).len() as u64;
    sum += ds.action_window(i, 10).mask.iter().filter(|m| **m).count() as u64;
    buf.clear();
    for k in keys {
        buf.extend_from_slice(ds.image(i, k)?);
    }
    sum += u64::from(buf[buf.len() / 2]);
    Ok(sum)
}

/// Runs the benchmark.
#[cfg(feature = "video")]
pub fn run(args: DatasetBenchArgs) -> Result<()> {
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.join("bench-dataset")
        }
    };
    if args.dir.is_some() {
        prepare_output_dir(&root, "--dir", ExistingDir::Refuse { hint: "remove it or choose another --dir" })?;
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // 1. Roll out the episodes in memory (not timed).
    let scene = sim::load_scene("pick_cube")?;
    let cfg = EnvConfig::new(scene.clone()).with_cameras(args.size, args.size);
    let mut env = Env::new(cfg.clone())?;
    let mut episodes: Vec<Vec<FrameRecord>> = Vec::new();
    eprintln!("rolling out {} episodes of pick_cube with cameras…", args.episodes);
    for ep in 0..args.episodes {
        let mut obs = env.reset(ep)?;
        let mut expert = Expert::new(&scene, 0.3, ep);
        let mut frames = Vec::new();
        loop {
            let action = expert.act(&obs);
            let a: Vec<f32> = match action {
                sim::Action::EeDelta { xyz_m, rpy_rad, gripper } => {
                    xyz_m.iter().chain(&rpy_rad).chain([&gripper]).map(|x| *x as f32).collect()
                }
                sim::Action::Joint { q_rad, gripper } => q_rad.iter().chain([&gripper]).map(|x| *x as f32).collect(),
            };
            let images = obs.images.iter().map(|i| i.rgb.clone()).collect();
            let state = obs.arm.q_rad.iter().map(|q| *q as f32).chain([obs.arm.gripper_opening as f32]).collect();
            let step = env.step(&action)?;
            frames.push(FrameRecord {
                state,
                action: a,
                env_state: Vec::new(),
                reward: step.reward as f32,
                done: step.done,
                truncated: step.truncated,
                success: step.success,
                images,
            });
            obs = step.obs;
            if step.done {
                break;
            }
        }
        episodes.push(frames);
    }
    let total_frames: u64 = episodes.iter().map(|e| e.len() as u64).sum();
    // 2. Write.
    let spec = DatasetSpec {
        scene: None,
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: sim::node::joint_state_names(),
        action_names: (0..7).map(|i| format!("a{i}")).collect(),
        env_state_names: Vec::new(),
        cameras: cfg
            .cameras
            .iter()
            .map(|c| CameraFeature { key: format!("observation.images.{}", c.name), width: c.width, height: c.height })
            .collect(),
    };
    let mut rows = Vec::new();
    let t = Instant::now();
    let mut writer = DatasetWriter::create(&root, &spec)?;
    for ep in &episodes {
        writer.begin_episode("pick up the cube")?;
        for f in ep {
            writer.add_frame(f)?;
        }
        writer.end_episode(None, None)?;
    }
    writer.finish()?;
    rows.push(row("write (encode + remux + parquet + meta)", 1, total_frames, t.elapsed().as_secs_f64()));
    // 3. Read.
    let t = Instant::now();
    let mut ds = Dataset::open(&root)?;
    rows.push(row("open (tables into memory)", 1, ds.len() as u64, t.elapsed().as_secs_f64()));
    let keys = ds.camera_keys();
    let t = Instant::now();
    ds.load_frame_cache(threads)?;
    rows.push(row(
        "frame cache: decode every video once (frames)",
        threads,
        ds.len() as u64 * keys.len() as u64,
        t.elapsed().as_secs_f64(),
    ));
    // Fidelity: every decoded frame against the frame the sim rendered.
    let (mut worst_psnr, mut sum_psnr, mut count) = (f64::INFINITY, 0.0, 0usize);
    let mut i = 0;
    for ep in &episodes {
        for f in ep {
            for (k, img) in keys.iter().zip(&f.images) {
                let p = dataset::video::psnr_db(ds.image(i, k)?, img).min(99.0);
                worst_psnr = worst_psnr.min(p);
                sum_psnr += p;
                count += 1;
            }
            i += 1;
        }
    }
    let n = ds.len();
    let t = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut check = 0u64;
    let mut buf = Vec::new();
    for _ in 0..args.samples {
        check = check.wrapping_add(sample_from_cache(&ds, rng.random_range(0..n), &keys, &mut buf)?);
    }
    rows.push(row("random samples from the frame cache", 1, args.samples as u64, t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let per = args.samples / threads.max(1);
    let sums: Vec<Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let (ds, keys) = (&ds, &keys);
                s.spawn(move || {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(w as u64 + 7);
                    let mut sum = 0u64;
                    let mut buf = Vec::new();
                    for _ in 0..per {
                        sum = sum.wrapping_add(sample_from_cache(ds, rng.random_range(0..n), keys, &mut buf)?);
                    }
                    Ok(sum)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reader panicked")))).collect()
    });
    for s in sums {
        check = check.wrapping_add(s?);
    }
    rows.push(row("random samples from the frame cache", threads, (per * threads) as u64, t.elapsed().as_secs_f64()));
    let seeks = (args.samples / 10).max(1);
    let mut seeker = ds.seeker();
    let t = Instant::now();
    for _ in 0..seeks {
        let i = rng.random_range(0..n);
        check = check.wrapping_add(ds.action_window(i, 10).values.len() as u64);
        for k in &keys {
            check = check.wrapping_add(u64::from(seeker.image(&ds, i, k)?[0]));
        }
    }
    rows.push(row("random samples by keyframe seek", 1, seeks as u64, t.elapsed().as_secs_f64()));
    let bytes = disk_usage(&root);
    outln!(
        "fidelity: PSNR of decoded vs rendered frames: worst {worst_psnr:.1} dB, mean {:.1} dB over {count} images",
        sum_psnr / count.max(1) as f64
    )?;
    outln!(
        "dataset: {} episodes, {total_frames} frames, 2 cameras {}x{}, {:.2} MB on disk (checksum {check})",
        args.episodes,
        args.size,
        args.size,
        bytes as f64 / 1e6
    )?;
    outln!("{:<50} {:>7} {:>9} {:>9} {:>12}", "measurement", "threads", "items", "seconds", "per second")?;
    for r in &rows {
        outln!("{:<50} {:>7} {:>9} {:>9.3} {:>12.0}", r.what, r.threads, r.items, r.seconds, r.per_s)?;
    }
    super::emit_json(&rows, args.json.as_ref())?;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("armstack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
