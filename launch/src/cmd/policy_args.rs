//! Arguments and helpers shared by the policy verbs (train, eval, deploy, demo): the compute
//! device, evaluation flags, opening datasets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dataset::Dataset;
use policy::eval::EvalConfig;
use policy::ExecMode;

use super::arg_ranges;

/// Where models run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The build's CPU backend: LibTorch through burn-tch in the default build (the `libtorch`
    /// cargo feature), burn-flex in a build without it.
    Cpu,
    /// burn-flex, burn's own CPU backend (every build has it; no LibTorch needed).
    Flex,
    /// burn's CUDA backend (needs the `cuda` cargo feature).
    Cuda,
    /// LibTorch on the CPU through burn-tch (the `libtorch` cargo feature, on by default); the
    /// same backend as `cpu` in the default build.
    Libtorch,
    /// burn's ndarray backend on the system OpenBLAS (needs the `ndarray-blas` cargo feature; for
    /// backend comparisons).
    NdarrayBlas,
}

/// Fails for a device whose backend this build did not compile.
pub fn check_device(device: DeviceKind) -> Result<()> {
    if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        bail!(
            "this armstack was built without CUDA; rebuild with \
             `cargo build --release -p launch --no-default-features --features cuda --bin armstack`"
        );
    }
    if device == DeviceKind::Libtorch && !cfg!(feature = "libtorch") {
        bail!(
            "this armstack was built without LibTorch (the default `libtorch` feature); rebuild with \
             `cargo build -p launch --bin armstack` where `python3` imports torch 2.9.0 (README, Quick start)"
        );
    }
    if device == DeviceKind::NdarrayBlas && !cfg!(feature = "ndarray-blas") {
        bail!(
            "this armstack was built without the ndarray backend; rebuild with `cargo build -p launch \
             --no-default-features --features video,ndarray-blas --bin armstack` (needs libopenblas-dev)"
        );
    }
    Ok(())
}

/// Sets the compute threads of every CPU backend of this build to `threads`, before the first
/// tensor operation: burn-flex's rayon pool (through `RAYON_NUM_THREADS`, read when the pool
/// starts) and LibTorch's intra-op pool.
pub fn set_compute_threads(threads: usize) {
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    #[cfg(feature = "libtorch")]
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
}

/// Runs `$body` with `$B` bound to the training backend of `$device`.
#[macro_export]
macro_rules! with_train_backend {
    ($device:expr, $B:ident, $body:block) => {
        $crate::match_backend!($device, $B, $body, CudaTrain, LibTorchTrain, NdArrayBlasTrain, CpuTrain)
    };
}

/// Runs `$body` with `$B` bound to the inference backend of `$device`.
#[macro_export]
macro_rules! with_backend {
    ($device:expr, $B:ident, $body:block) => {
        $crate::match_backend!($device, $B, $body, Cuda, LibTorch, NdArrayBlas, Cpu)
    };
}

/// The match behind [`with_train_backend`] and [`with_backend`]: binds `$B` to the `policy`
/// backend type named for `$device` (flex for `flex`, and for a device this build did not compile,
/// which [`check_device`] refuses first).
#[macro_export]
#[doc(hidden)]
macro_rules! match_backend {
    ($device:expr, $B:ident, $body:block, $cuda:ident, $libtorch:ident, $ndarray:ident, $flex:ident) => {{
        match $device {
            #[cfg(feature = "cuda")]
            $crate::cmd::policy_args::DeviceKind::Cuda => {
                type $B = policy::$cuda;
                $body
            }
            #[cfg(feature = "libtorch")]
            $crate::cmd::policy_args::DeviceKind::Cpu | $crate::cmd::policy_args::DeviceKind::Libtorch => {
                type $B = policy::$libtorch;
                $body
            }
            #[cfg(feature = "ndarray-blas")]
            $crate::cmd::policy_args::DeviceKind::NdarrayBlas => {
                type $B = policy::$ndarray;
                $body
            }
            _ => {
                type $B = policy::$flex;
                $body
            }
        }
    }};
}

/// How rollouts execute chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecArg {
    /// The policy's action space picks (`ExecMode::default_for`; the README's chunk execution table).
    Auto,
    /// Each chunk to its end, then the next (Q-chunking).
    OpenLoop,
    /// ACT temporal ensembling (a chunk every step).
    Ensemble,
    /// Asynchronous refresh at half the chunk, overlaps merged 0.3/0.7.
    Async,
}

impl ExecArg {
    /// The executor mode for chunks of `horizon` (`None`: the policy's action space picks).
    pub fn mode(self, horizon: usize) -> Option<ExecMode> {
        match self {
            ExecArg::Auto => None,
            ExecArg::OpenLoop => Some(ExecMode::OpenLoop),
            ExecArg::Ensemble => Some(ExecMode::ensemble()),
            ExecArg::Async => Some(ExecMode::asynchronous(horizon)),
        }
    }
}

/// Rollout flags.
#[derive(Args, Clone, Debug)]
pub struct RolloutArgs {
    /// Scene (default: the scene the training data was recorded in).
    #[arg(long)]
    pub scene: Option<String>,
    /// Envs stepped in parallel.
    #[arg(long, default_value_t = 25, value_parser = arg_ranges::at_least(1usize))]
    pub num_envs: usize,
    /// Chunk execution.
    #[arg(long, value_enum, default_value_t = ExecArg::Auto)]
    pub exec: ExecArg,
}

/// First scene seed of `armstack eval` (episode k: seed + k): away from the recording seeds
/// (0, 1, …), so evaluation scenes are unseen.
pub const EVAL_SEED: u64 = 1_000_000;

/// First scene seed of a training run's periodic evaluation, which picks the checkpoint a run
/// keeps: validation scenes, away from both the recording seeds and [`EVAL_SEED`]'s, so the
/// final evaluation is never made on the scenes a checkpoint was selected on.
pub const VALIDATION_SEED: u64 = 2_000_000;

impl RolloutArgs {
    /// Evaluation settings for `episodes` episodes from scene seed `seed` with chunks of `horizon`.
    pub fn eval_config(&self, episodes: usize, horizon: usize, seed: u64) -> EvalConfig {
        EvalConfig {
            episodes,
            num_envs: self.num_envs,
            threads: 0,
            seed,
            exec: self.exec.mode(horizon),
        }
    }
}

/// Opens datasets, decoding their videos into memory when `images` is set.
pub fn open_datasets(paths: &[PathBuf], images: bool) -> Result<Vec<Dataset>> {
    if paths.is_empty() {
        bail!("give at least one --dataset");
    }
    paths
        .iter()
        .map(|p| {
            let mut ds = Dataset::open(p).with_context(|| format!("opening dataset {}", p.display()))?;
            if images {
                load_images(&mut ds, p)?;
            }
            Ok(ds)
        })
        .collect()
}

/// Fills the frame cache of the dataset at `dir`: from its frame cache file
/// (`armstack dataset cache`) when there is a current one, else by decoding its videos, which
/// only a build with the `video` feature can do.
fn load_images(ds: &mut Dataset, dir: &Path) -> Result<()> {
    let cache = dataset::frame_cache::default_path(dir);
    if cache.exists() {
        match ds.load_frame_cache_file(&cache) {
            Ok(()) => {
                tracing::info!("images of {} from {}", dir.display(), cache.display());
                return Ok(());
            }
            Err(e) if cfg!(feature = "video") => tracing::warn!("{e}; decoding the videos instead"),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "this armstack build has no video support: write the frame cache again with \
                         `armstack dataset cache {}` in a build with the `video` feature",
                        dir.display()
                    )
                })
            }
        }
    }
    #[cfg(feature = "video")]
    {
        ds.load_frame_cache(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .with_context(|| format!("decoding the videos of {}", dir.display()))
    }
    #[cfg(not(feature = "video"))]
    {
        bail!(
            "this armstack build has no video support (no `video` feature), and {} has no frame cache {}: \
             write it with `armstack dataset cache {}` in a build with video, and copy the dataset folder \
             with its cache/ folder here",
            dir.display(),
            cache.display(),
            dir.display()
        )
    }
}
