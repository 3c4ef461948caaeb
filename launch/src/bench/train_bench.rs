//! `armstack bench train`: samples/s and ms of one optimiser update of every model the project
//! trains, on real batches of a small recorded dataset, after a warm-up; peak memory per row; a
//! ratio column against the PyTorch reference (`bench/pytorch/train_reference.py`).
//!
//! With `--reference`, the reference runs in the same run: for every row and every round, this
//! process times its updates and then the reference script times the same row
//! (`--rows NAME`, same threads, steps and warm-up) in a child process, so both sides of a
//! ratio are measured a few seconds apart. A 2-core machine's speed drifts by tens of percent
//! within an hour; interleaving keeps that drift out of the ratio, and the median of the
//! rounds' ratios (with their range) keeps a single disturbed round out of the table.
//!
//! Each row runs the update its training command's loop runs (`BcLearner::update`,
//! `CoRftLearner::update`, EXPO's critic + actor updates, `IcvfLearner::step`,
//! `IdmLearner::step`) at that command's default model sizes and the batch sizes below.
//!
//! Peak memory: on Linux the kernel keeps the process's resident-memory high-water mark
//! (`VmHWM` in `/proc/self/status`) and resets it to the current resident size when `5` is
//! written to `/proc/self/clear_refs`. Each row resets it before building its model and reads it
//! after its last update: `peak_rss_mib` is the process's peak while the row ran (the recorded
//! data included), `peak_rss_delta_mib` its rise over the resident size at the row's start
//! (model, optimiser state, autodiff graph, activations; memory the allocator kept from earlier
//! rows and reused is not counted again). Elsewhere both are absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use clap::builder::PossibleValuesParser;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::emit_json;
use super::train_bench_rows::{workload, BenchData, ROWS};
use crate::cmd::arg_ranges::at_least;
use crate::cmd::policy_args::{check_device, set_compute_threads, DeviceKind};
use crate::outln;
use crate::with_train_backend;

/// `armstack bench train`.
#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    /// Timed updates per row and round (after the round's warm-up).
    #[arg(long, default_value_t = 20, value_parser = at_least(1u64))]
    pub steps: u64,
    /// Untimed warm-up updates per row and round.
    #[arg(long, default_value_t = 3, value_parser = at_least(0u64))]
    pub warmup: u64,
    /// Compute threads of the CPU backend (LibTorch's intra-op pool and flex's rayon pool;
    /// default: the RAYON_NUM_THREADS environment variable, else every core).
    #[arg(long, value_parser = at_least(1usize))]
    pub threads: Option<usize>,
    /// Only check that every row runs: one recorded episode, batches of at most 4, 1 warm-up and
    /// 2 timed updates (the numbers mean nothing).
    #[arg(long)]
    pub quick: bool,
    /// Rows to run (comma separated; default: all).
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(ROWS))]
    pub rows: Vec<String>,
    /// Demonstrations recorded per camera side (64 px; 128 px for `bc_vision_128`).
    #[arg(long, default_value_t = 4, value_parser = at_least(1u64))]
    pub episodes: u64,
    /// The PyTorch reference's JSON (`bench/pytorch/train_reference.py --json FILE`): adds its
    /// samples/s and the ratio Armstack / PyTorch per row.
    #[arg(long, conflicts_with = "reference")]
    pub compare: Option<PathBuf>,
    /// Run the PyTorch reference in this run with this Python (default `python3`, which must
    /// import torch), interleaved with this process row by row and round by round; adds its
    /// samples/s and the median ratio Armstack / PyTorch per row.
    #[arg(long, num_args = 0..=1, default_missing_value = "python3", value_name = "PYTHON")]
    pub reference: Option<String>,
    /// The reference script `--reference` runs (default: `bench/pytorch/train_reference.py` of
    /// the source tree this binary was built from).
    #[arg(long, requires = "reference")]
    pub reference_script: Option<PathBuf>,
    /// Timing rounds per row: each round runs `--warmup` untimed and `--steps` timed updates
    /// (and then the reference does the same, with `--reference`); the table gives the median
    /// round and the ratios' range.
    #[arg(long, default_value_t = 1, value_parser = at_least(1u32))]
    pub rounds: u32,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One row of the table and the JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainRow {
    /// Row name (`bc_state`, `bc_vision_64`, …).
    pub name: String,
    /// Training samples per second (batch × updates / timed seconds), the median over the
    /// rounds (for an even count, the mean of the middle two).
    pub samples_per_s: f64,
    /// Milliseconds per update at `samples_per_s`.
    pub ms_per_step: f64,
    /// Samples per second of every round, in order.
    pub round_samples_per_s: Vec<f64>,
    /// burn backend.
    pub backend: String,
    /// Compute threads.
    pub threads: usize,
    /// Samples per update.
    pub batch: usize,
    /// Timed updates per round.
    pub steps: u64,
    /// Parameters the update trains.
    pub params: usize,
    /// Peak resident memory of the process while the row ran, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
    /// Rise of the peak over the resident memory at the row's start, MiB (Linux only).
    pub peak_rss_delta_mib: Option<f64>,
    /// What is trained, at which sizes.
    pub shape: String,
    /// PyTorch's samples/s for this row (with `--compare`; with `--reference` the median of its
    /// rounds).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pytorch_samples_per_s: Option<f64>,
    /// PyTorch's samples/s of every round, in order (with `--reference`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pytorch_round_samples_per_s: Vec<f64>,
    /// samples_per_s / PyTorch's (with `--compare`; with `--reference` the median of the
    /// rounds' ratios; ≥ 1: Armstack is as fast or faster).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratio_vs_pytorch: Option<f64>,
    /// Lowest and highest of the rounds' ratios (with `--reference`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratio_range: Option<[f64; 2]>,
}

/// The median of `v` (the mean of the middle two for an even count); `None` for none.
fn median(v: &[f64]) -> Option<f64> {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| dataset::stats::quantile_sorted(&sorted, 0.5))
}

/// How `--reference` runs the PyTorch reference.
struct ReferenceRun {
    python: String,
    script: PathBuf,
    threads: usize,
    warmup: u64,
    steps: u64,
    quick: bool,
    out_dir: PathBuf,
}

impl ReferenceRun {
    /// The reference's samples/s of `row`, from one run of the script for that row alone.
    fn samples_per_s(&self, row: &str, round: u32) -> Result<f64> {
        let json = self.out_dir.join(format!("pytorch-{row}-{round}.json"));
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .args(["--rows", row, "--threads", &self.threads.to_string(), "--json"])
            .arg(&json)
            .args(["--steps", &self.steps.to_string(), "--warmup", &self.warmup.to_string()]);
        if self.quick {
            cmd.arg("--quick");
        }
        let out =
            cmd.output().with_context(|| format!("--reference: starting {} {}", self.python, self.script.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "--reference: {} {} --rows {row} failed ({}): {}",
            self.python,
            self.script.display(),
            out.status,
            {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let lines: Vec<&str> = stderr.lines().collect();
                lines[lines.len().saturating_sub(5)..].join(" / ")
            }
        );
        let rows = read_reference(&json)?;
        rows.get(row)
            .map(|(rate, _)| *rate)
            .with_context(|| format!("--reference: {} has no row {row}", json.display()))
    }
}

/// A scratch folder for the recorded data, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("armstack-bench-train-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The process's resident-memory figures of Linux, MiB.
mod resident_memory {
    /// A `kB` field of `/proc/self/status`, in MiB.
    fn status_mib(field: &str) -> Option<f64> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
        let kib: f64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Resets the high-water mark to the current resident size; returns that size, or `None`
    /// where the kernel offers neither.
    pub fn reset_peak() -> Option<f64> {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        status_mib("VmRSS")
    }

    /// The high-water mark since the last reset.
    pub fn peak() -> Option<f64> {
        status_mib("VmHWM")
    }
}

/// Sets the CPU backends' thread count (before their pools start: nothing has computed a tensor
/// yet when `bench train` starts) and returns it: `requested`, else `RAYON_NUM_THREADS`, else
/// every core.
fn compute_threads(requested: Option<usize>) -> usize {
    let threads = requested
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    set_compute_threads(threads);
    threads
}

/// PyTorch's rows from the reference script's JSON: name → (samples/s, threads).
fn read_reference(path: &Path) -> Result<BTreeMap<String, (f64, Option<u64>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the reference {}", path.display()))?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("the reference {}: not a JSON array of rows", path.display()))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let name = row["name"]
            .as_str()
            .with_context(|| format!("the reference {}: a row without \"name\"", path.display()))?;
        let rate = row["samples_per_s"].as_f64().with_context(|| {
            format!("the reference {}: row {name} has no numeric \"samples_per_s\"", path.display())
        })?;
        out.insert(name.to_string(), (rate, row["threads"].as_u64()));
    }
    Ok(out)
}

/// Runs `armstack bench train`.
pub fn run(args: TrainBenchArgs) -> Result<()> {
    check_device(args.device)?;
    let threads = compute_threads(args.threads);
    let reference = args.compare.as_deref().map(read_reference).transpose()?;
    let (warmup, steps, episodes) = if args.quick { (1, 2, 1) } else { (args.warmup, args.steps, args.episodes) };
    let names: Vec<&str> =
        ROWS.iter().copied().filter(|r| args.rows.is_empty() || args.rows.iter().any(|a| a == r)).collect();
    let scratch = ScratchDir::create()?;
    let live_reference = match &args.reference {
        Some(python) => {
            let script = args
                .reference_script
                .clone()
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/pytorch/train_reference.py"));
            anyhow::ensure!(
                script.is_file(),
                "--reference: no reference script at {} (pass --reference-script)",
                script.display()
            );
            // A Python without PyTorch is refused before anything is recorded or timed.
            let probe = Command::new(python)
                .args(["-c", "import torch"])
                .output()
                .with_context(|| format!("--reference: starting {python}"))?;
            anyhow::ensure!(
                probe.status.success(),
                "--reference: {python} cannot import torch (install PyTorch 2.9.0 for it, or pass --reference PYTHON)"
            );
            Some(ReferenceRun {
                python: python.clone(),
                script,
                threads,
                warmup,
                steps,
                quick: args.quick,
                out_dir: scratch.0.clone(),
            })
        }
        None => None,
    };
    let data = BenchData::new(&scratch.0, episodes, args.quick);
    let mut rows = Vec::new();
    let mut reference_failures = 0u32;
    with_train_backend!(args.device, B, {
        let device = Default::default();
        for name in &names {
            eprintln!("{name}: recording / preparing batches");
            let input = data.input(name)?;
            let rss_at_start = resident_memory::reset_peak();
            let mut w = workload::<B>(name, input, &device)?;
            eprintln!("{name}: {} × ({warmup} warm-up and {steps} timed updates) of batch {}", args.rounds, w.batch);
            let (mut ours, mut theirs) = (Vec::new(), Vec::<f64>::new());
            let mut k = 0;
            for round in 0..args.rounds {
                // Every round warms up, as the reference's run for the round does.
                for _ in 0..warmup {
                    (w.step)(k).with_context(|| format!("{name}: warm-up update {k}"))?;
                    k += 1;
                }
                let t0 = Instant::now();
                for _ in 0..steps {
                    (w.step)(k).with_context(|| format!("{name}: update {k}"))?;
                    k += 1;
                }
                let seconds = t0.elapsed().as_secs_f64().max(1e-9);
                ours.push((w.batch as u64 * steps) as f64 / seconds);
                if let Some(r) = &live_reference {
                    // A failed reference round is reported and left out of the ratio; the
                    // rows measured so far are not lost.
                    match r.samples_per_s(name, round) {
                        Ok(rate) => theirs.push(rate),
                        Err(e) => {
                            tracing::error!("{name}, round {}: the PyTorch reference failed: {e:#}", round + 1);
                            reference_failures += 1;
                            theirs.push(f64::NAN);
                        }
                    }
                }
            }
            let peak = rss_at_start.and_then(|_| resident_memory::peak());
            let samples_per_s = median(&ours).unwrap_or(0.0);
            let ratios: Vec<f64> = ours.iter().zip(&theirs).filter(|(_, p)| **p > 0.0).map(|(o, p)| o / p).collect();
            let measured: Vec<f64> = theirs.iter().copied().filter(|p| p.is_finite()).collect();
            let (pytorch, ratio) = match &live_reference {
                Some(_) => (median(&measured), median(&ratios)),
                None => {
                    let p = reference.as_ref().and_then(|r| r.get(*name)).map(|(rate, _)| *rate);
                    (p, p.filter(|p| *p > 0.0).map(|p| samples_per_s / p))
                }
            };
            let range = |v: &[f64]| Some([v.iter().copied().reduce(f64::min)?, v.iter().copied().reduce(f64::max)?]);
            rows.push(TrainRow {
                name: name.to_string(),
                samples_per_s,
                ms_per_step: 1e3 * w.batch as f64 / samples_per_s.max(1e-12),
                round_samples_per_s: ours,
                backend: B::name(&device),
                threads,
                batch: w.batch,
                steps,
                params: w.params,
                peak_rss_mib: peak,
                peak_rss_delta_mib: peak.zip(rss_at_start).map(|(p, s)| (p - s).max(0.0)),
                shape: w.shape.clone(),
                pytorch_samples_per_s: pytorch,
                pytorch_round_samples_per_s: theirs,
                ratio_vs_pytorch: ratio,
                ratio_range: range(&ratios).filter(|_| live_reference.is_some()),
            });
        }
    });
    drop(scratch);
    let reference_threads = match (&live_reference, &reference) {
        (Some(_), _) => Some(BTreeMap::new()),
        (None, Some(r)) => Some(r.iter().map(|(k, (_, t))| (k.clone(), *t)).collect()),
        (None, None) => None,
    };
    print_table(&rows, reference_threads.as_ref(), threads, args.rounds, live_reference.is_some())?;
    if live_reference.is_some() && args.device == DeviceKind::Cuda {
        outln!(
            "note: the PyTorch reference runs on the CPU; this run used {:?}: the ratio compares devices",
            args.device
        )?;
    }
    if reference_failures > 0 {
        outln!("note: the PyTorch reference failed in {reference_failures} round(s) (see the log); those rounds have no ratio")?;
    }
    emit_json(&rows, args.json.as_ref())?;
    anyhow::ensure!(reference_failures == 0, "the PyTorch reference failed in {reference_failures} round(s)");
    Ok(())
}

/// The table; `reference`: the thread counts of a `--compare` file's rows (empty with
/// `--reference`, which runs with this run's threads), `None` without a reference.
fn print_table(
    rows: &[TrainRow],
    reference: Option<&BTreeMap<String, Option<u64>>>,
    threads: usize,
    rounds: u32,
    live_reference: bool,
) -> Result<()> {
    let mib = |v: Option<f64>| v.map_or("n/a".to_string(), |m| format!("{m:.0}"));
    let compare = reference.is_some();
    let extra = if compare { " PyTorch samples/s | ratio |" } else { "" };
    outln!("| row | batch | samples/s | ms/step | peak RSS MiB | peak rise MiB | params |{extra} model |")?;
    outln!("|---|---|---|---|---|---|---|{}---|", if compare { "---|---|" } else { "" })?;
    for r in rows {
        let cmp = match (compare, r.pytorch_samples_per_s, r.ratio_vs_pytorch, r.ratio_range) {
            (false, ..) => String::new(),
            (true, Some(p), Some(x), Some([lo, hi])) => format!(" {p:.1} | {x:.2}× ({lo:.2}–{hi:.2}) |"),
            (true, Some(p), Some(x), None) => format!(" {p:.1} | {x:.2}× |"),
            (true, ..) => " – | – |".to_string(),
        };
        outln!(
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} |{cmp} {} |",
            r.name,
            r.batch,
            r.samples_per_s,
            r.ms_per_step,
            mib(r.peak_rss_mib),
            mib(r.peak_rss_delta_mib),
            r.params,
            r.shape
        )?;
    }
    let backend = rows.first().map_or("–", |r| r.backend.as_str());
    outln!("backend {backend}, {threads} threads")?;
    if rounds > 1 {
        outln!("{rounds} rounds per row: samples/s of the median round")?;
    }
    if live_reference {
        outln!("PyTorch ran after each round of each row; the ratio is the median of the rounds' ratios (lowest–highest), not the quotient of the two medians")?;
    }
    if let Some(reference) = reference {
        let other: Vec<u64> = reference.values().filter_map(|t| *t).filter(|t| *t as usize != threads).collect();
        if let Some(t) = other.first() {
            outln!("note: the PyTorch reference ran with {t} threads, this run with {threads}: the ratio compares unlike set-ups")?;
        }
    }
    Ok(())
}
