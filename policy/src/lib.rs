#![warn(missing_docs)]
//! Armstack policies: the chunked-action VLA and its state-only variant
//! ([`model`]), a critic ensemble over chunks, behaviour cloning and CO-RFT offline RL
//! ([`train`]), checkpoints that rebuild from their folder ([`checkpoint`], [`spec`]),
//! vectorised sim evaluation ([`eval`]), the chunk executor ([`executor`]) and the policy node
//! for deployment on the bus ([`node`]).
//!
//! Every model is generic over the burn backend: [`Cpu`] (burn-flex) in every build, `LibTorch`
//! with the `libtorch` feature (the `armstack` binary's default CPU backend: it measured faster
//! than flex on every training row of `armstack bench train`), `Cuda` with the `cuda` feature.
//! Training uses `Autodiff<backend>`; acting uses the backend itself. This crate's own tests
//! run on [`Cpu`]. On the LibTorch training backend the layer-norm MLPs (critic members, ICVF
//! heads) and the policy's transformer run each layer as one fused LibTorch operation
//! (`model::fused_libtorch`).

// Measured: in a binary linking both, LibTorch's matrix products ran in OpenBLAS's `sgemm_`
// instead of its own MKL (the dynamic linker binds the first `sgemm_` it finds), which made the
// LibTorch rows of `armstack bench train` up to 1.8× slower.
#[cfg(all(feature = "libtorch", feature = "ndarray-blas"))]
compile_error!(
    "the `libtorch` and `ndarray-blas` features cannot be combined (OpenBLAS would replace LibTorch's \
     matrix products); build the ndarray comparison with `--no-default-features --features video,ndarray-blas`"
);

pub mod action_targets;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod demos;
pub mod error;
pub mod eval;
pub mod executor;
pub mod features;
pub mod gaussian;
pub mod inference;
pub mod model;
pub mod node;
pub mod normalize;
pub mod online;
pub mod pretrained;
pub mod spec;
pub mod train;
pub mod vocab;

pub use config::{CriticConfig, ImageEncoderConfig, PolicyConfig, Variant};
pub use error::{PolicyError, Result};
pub use eval::{evaluate, EvalConfig, EvalReport};
pub use executor::{ChunkExecutor, ExecMode};
pub use inference::Policy;
pub use spec::PolicySpec;

/// The CPU backend (burn-flex: im2col + gemm convolutions, SIMD, rayon).
pub type Cpu = burn::backend::Flex;
/// The CPU training backend.
pub type CpuTrain = burn::backend::Autodiff<Cpu>;
/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda<f32>;
/// The CUDA training backend.
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<Cuda>;
/// LibTorch on the CPU through burn-tch (the `libtorch` feature).
#[cfg(feature = "libtorch")]
pub type LibTorch = burn::backend::LibTorch<f32>;
/// Its training backend.
#[cfg(feature = "libtorch")]
pub type LibTorchTrain = burn::backend::Autodiff<LibTorch>;
/// burn's ndarray backend on the system OpenBLAS (a backend comparison build: the
/// `ndarray-blas` feature).
#[cfg(feature = "ndarray-blas")]
pub type NdArrayBlas = burn_ndarray::NdArray<f32>;
/// Its training backend.
#[cfg(feature = "ndarray-blas")]
pub type NdArrayBlasTrain = burn::backend::Autodiff<NdArrayBlas>;
