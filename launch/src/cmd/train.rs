//! `armstack train bc|co-rft|…`: behaviour cloning and CO-RFT offline RL from LeRobot datasets; the
//! other training verbs live in their own modules.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use policy::train::bc::ChunkLoss;
use policy::train::co_rft::CoRftConfig;
use policy::train::jobs::{BcJob, CoRftJob, EvalJob};
use policy::train::schedule::LrSchedule;
use policy::train::{TrainReport, TrainSettings};
use policy::{PolicySpec, Variant};

use super::arg_ranges;
use super::policy_args::{check_device, open_datasets, DeviceKind, RolloutArgs, VALIDATION_SEED};
use crate::outln;
use crate::output_path::{prepare_output_dir, ExistingDir};
use crate::shutdown::stop_flag;
use crate::with_train_backend;

/// `armstack train …`.
#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Multi-task behaviour cloning of the chunk head.
    Bc(BcArgs),
    /// CO-RFT stage 2: offline RL over chunks from a BC policy.
    CoRft(CoRftArgs),
    /// ICVF value pre-training on action-free video frames (V-PTR stage 1).
    Icvf(super::train_icvf::IcvfArgs),
    /// Inverse-dynamics model (s_{t-1}, s_t, s_{t+1}) → a_t for proxy action labels (SS-ORL).
    Idm(super::train_idm::IdmArgs),
    /// EXPO online fine-tuning in the sim: a flow base policy, Gaussian edits, max-Q selection.
    Expo(super::train_online::ExpoArgs),
    /// A plain SAC-style online actor-critic on the chunk head (EXPO's baseline).
    Sac(super::train_online::SacArgs),
    /// H2O: scarce real transitions mixed with sim rollouts, weighted by a dynamics ratio.
    H2o(super::train_online::H2oArgs),
}

/// Observation variant flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VariantArg {
    /// Proprioception + object state (fast on a CPU).
    State,
    /// Cameras + proprioception (the VLA).
    Vision,
}

/// Learning-rate schedule flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LrScheduleArg {
    /// Linear warm-up, then cosine decay to 10% of the base rate.
    Cosine,
    /// The base rate throughout.
    Constant,
}

/// Chunk regression loss flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Mean absolute error (ACT's).
    L1,
    /// Mean squared error.
    L2,
}

/// Flags every training verb shares.
#[derive(Args, Clone, Debug)]
pub struct CommonTrainArgs {
    /// Dataset folders (repeat for multi-task training).
    #[arg(long = "dataset", required = true)]
    pub datasets: Vec<PathBuf>,
    /// Output folder (runs/NAME).
    #[arg(long)]
    pub out: PathBuf,
    /// Gradient steps. Default: bc, enough for each frame of the datasets to be drawn about
    /// [`BC_DRAWS_PER_FRAME`] times, at least 2000 (pick_cube's 50 demonstrations: 2000; sort's:
    /// 8200); co-rft, 2000.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub steps: Option<u64>,
    /// Batch size.
    #[arg(long, default_value_t = 256, value_parser = arg_ranges::at_least(1usize))]
    pub batch_size: usize,
    /// Learning rate (0: the weights stay as they are). Default: bc, 1e-3 (the policy's; 3e-4
    /// measured 72% against 92% on pick_cube); co-rft, 3e-4 (the critic's; the actor's is
    /// --actor-lr).
    #[arg(long, value_parser = arg_ranges::non_negative(""))]
    pub lr: Option<f64>,
    /// Learning-rate schedule: `cosine` (linear warm-up over --warmup-steps, then cosine decay
    /// to 10% of --lr at the last step) or `constant`.
    #[arg(long, value_enum, default_value_t = LrScheduleArg::Cosine)]
    pub lr_schedule: LrScheduleArg,
    /// Warm-up steps of the cosine schedule.
    #[arg(long, default_value_t = 100, value_parser = arg_ranges::at_least(0u64))]
    pub warmup_steps: u64,
    /// Decay of the exponential moving average of the policy weights that is evaluated and
    /// saved (0: the last weights).
    #[arg(long, default_value_t = 0.999, value_parser = arg_ranges::unit_interval())]
    pub ema_decay: f64,
    /// Fraction of each dataset's episodes held out of training; their BC loss is logged as
    /// `bc_held_out` at every evaluation and at the end (0: none).
    #[arg(long, default_value_t = 0.1, value_parser = arg_ranges::unit_interval())]
    pub held_out: f64,
    /// The chunk regression loss of bc and of co-rft's actor, in the normalised action space:
    /// `l1` (ACT's) or `l2`.
    #[arg(long, value_enum, default_value_t = LossArg::L1)]
    pub loss: LossArg,
    /// Seed (initialisation and batches).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Evaluate in the sim every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500, value_parser = arg_ranges::at_least(0u64))]
    pub eval_every: u64,
    /// Episodes per periodic evaluation (0: no evaluation; the last step is kept).
    #[arg(long, default_value_t = 20, value_parser = arg_ranges::at_least(0usize))]
    pub eval_episodes: usize,
    /// Scene seed of the first periodic-evaluation episode (episode k: seed + k). These
    /// validation scenes pick the checkpoint the run keeps, so by default they are neither the
    /// recording seeds (0, 1, …) nor `armstack eval`'s (1,000,000, …).
    #[arg(long, default_value_t = VALIDATION_SEED, value_parser = arg_ranges::int_range(0u64, i64::MAX as u64))]
    pub eval_seed: u64,
    /// Continue from OUT/resume.
    #[arg(long)]
    pub resume: bool,
    /// Replace the previous training run in `--out` (without it, a non-empty `--out` is refused).
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Leave out frames whose actions are proxy labels (`dataset label`): recorded actions only.
    #[arg(long)]
    pub skip_proxy_labels: bool,
    /// Start the image encoder from a pre-trained one (a `train icvf` run folder): V-PTR.
    /// bc: a new vision policy takes its channels and grid; co-rft: replaces the encoder of
    /// --init (the critic's image features come from it too).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Rollout settings of the periodic evaluation.
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// How often BC's default step count draws each frame of its datasets (batch size × steps /
/// frames). Chosen on validation scenes (seeds 2,000,000…, not `eval`'s): BC on sort's 49
/// successful demonstrations (3,355 frames in all 50, as recorded then) at batch 256 succeeded
/// in 47/100 after 2000 steps (150 draws), 60/100 after 4000, 65/100 after 8000 (610 draws).
pub const BC_DRAWS_PER_FRAME: usize = 600;

/// BC's default step count for `frames` training frames at `batch_size` (see
/// [`CommonTrainArgs::steps`]): [`BC_DRAWS_PER_FRAME`] draws per frame, rounded up to a
/// hundred, at least 2000.
pub fn bc_default_steps(frames: usize, batch_size: usize) -> u64 {
    let steps = (frames * BC_DRAWS_PER_FRAME).div_ceil(batch_size.max(1));
    (steps.div_ceil(100) * 100).max(2000) as u64
}

/// The default learning rate of `train co-rft`'s critic.
const CO_RFT_CRITIC_LR: f64 = 3e-4;
/// The default learning rate of `train bc`.
pub const BC_LR: f64 = 1e-3;

impl CommonTrainArgs {
    /// The loop settings, with `steps` and `lr` the verb's defaults for flags not given.
    fn settings(&self, steps: u64, lr: f64) -> TrainSettings {
        TrainSettings {
            steps: self.steps.unwrap_or(steps),
            batch_size: self.batch_size,
            lr: self.lr.unwrap_or(lr),
            lr_schedule: match self.lr_schedule {
                LrScheduleArg::Cosine => {
                    LrSchedule::WarmupCosine { warmup_steps: self.warmup_steps, final_fraction: 0.1 }
                }
                LrScheduleArg::Constant => LrSchedule::Constant,
            },
            ema_decay: self.ema_decay,
            held_out: self.held_out,
            seed: self.seed,
            eval_every: self.eval_every,
            checkpoint_every: self.eval_every.max(100),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            skip_proxy_labels: self.skip_proxy_labels,
            loss: match self.loss {
                LossArg::L1 => ChunkLoss::L1,
                LossArg::L2 => ChunkLoss::L2,
            },
            ..TrainSettings::default()
        }
    }

    fn eval(&self, horizon: usize) -> Option<EvalJob> {
        (self.eval_episodes > 0).then(|| EvalJob {
            scene: self.rollout.scene.clone(),
            config: self.rollout.eval_config(self.eval_episodes, horizon, self.eval_seed),
        })
    }
}

/// `armstack train bc`.
#[derive(Args, Debug)]
pub struct BcArgs {
    #[command(flatten)]
    pub common: CommonTrainArgs,
    /// Observation variant.
    #[arg(long, value_enum, default_value_t = VariantArg::State)]
    pub variant: VariantArg,
    /// Chunk length H.
    #[arg(long, default_value_t = 10, value_parser = arg_ranges::at_least(1usize))]
    pub horizon: usize,
    /// Finger-tip features (tip pose by forward kinematics of the joints, each object's
    /// position relative to the tip) in the policy's input: true or false. Default: true for
    /// state-only policies, false for vision.
    #[arg(long)]
    pub tip_features: Option<bool>,
    /// Predict absolute finger-tip targets (position and orientation in the base frame) instead
    /// of the dataset's end-effector deltas: true or false. Default: true for end-effector delta
    /// data with the arm's joints in the state (each prediction then corrects the drift of the
    /// ones before; the executor sends the delta from the measured tip to the target).
    #[arg(long)]
    pub action_targets: Option<bool>,
    /// Train on the successful episodes only (filtered behaviour cloning): episodes without a
    /// success frame are left out.
    #[arg(long)]
    pub successful_only: bool,
}

/// `armstack train co-rft`.
#[derive(Args, Debug)]
pub struct CoRftArgs {
    #[command(flatten)]
    pub common: CommonTrainArgs,
    /// The BC policy to start from (runs/NAME).
    #[arg(long)]
    pub init: PathBuf,
    /// Critic ensemble size K.
    #[arg(long, default_value_t = 10, value_parser = arg_ranges::at_least(1usize))]
    pub critics: usize,
    /// Critic hidden layers.
    #[arg(long, default_value_t = 3, value_parser = arg_ranges::at_least(1usize))]
    pub critic_layers: usize,
    /// Cal-QL samples per source (uniform, π(s), π(s')).
    #[arg(long, default_value_t = 10, value_parser = arg_ranges::at_least(1usize))]
    pub cql_samples: usize,
    /// Weight α of the conservative term (Q values here lie in [0, 1]: sparse success reward).
    #[arg(long, default_value_t = 0.2, value_parser = arg_ranges::non_negative(""))]
    pub cql_alpha: f64,
    /// η of the actor's TD3+BC Q term (0: none).
    #[arg(long, default_value_t = 0.0, value_parser = arg_ranges::non_negative(""))]
    pub actor_eta: f64,
    /// Temperature β of the advantage weights on the actor's BC term (0: plain BC).
    #[arg(long, default_value_t = 0.05, value_parser = arg_ranges::non_negative(""))]
    pub awr_beta: f64,
    /// Critic-only steps before the actor moves.
    #[arg(long, default_value_t = 200, value_parser = arg_ranges::at_least(0u64))]
    pub critic_warmup: u64,
    /// Actor learning rate (0: the weights stay as they are).
    #[arg(long, default_value_t = 1e-4, value_parser = arg_ranges::non_negative(""))]
    pub actor_lr: f64,
}

impl CoRftArgs {
    /// The RL settings these flags describe.
    pub fn rl(&self) -> CoRftConfig {
        let mut rl = CoRftConfig::default();
        rl.critic.ensemble = self.critics;
        rl.critic.layers = self.critic_layers;
        rl.cql_samples = self.cql_samples;
        rl.cql_alpha = self.cql_alpha;
        rl.actor_eta = self.actor_eta;
        rl.awr_beta = self.awr_beta;
        rl.critic_warmup = self.critic_warmup;
        rl.actor_lr = self.actor_lr;
        rl.critic_lr = self.common.lr.unwrap_or(CO_RFT_CRITIC_LR);
        rl
    }
}

/// Files one of which every training run folder holds: `--force` replaces only such a folder.
const RUN_MARKERS: &[&str] = &["policy.json", "metrics.jsonl", "icvf.json", "idm.json", "resume"];

/// Makes `out` the folder of a new training run before any work: created if absent; an existing
/// non-empty one is continued with `--resume` (`resume: Some(true)`; `None`: the verb has no
/// `--resume`), replaced with `--force` if it is a previous run, refused otherwise. `out` must
/// not hold any of `inputs` (the data or policy the run starts from).
pub(super) fn prepare_run_out(out: &Path, force: bool, resume: Option<bool>, inputs: &[&Path]) -> Result<()> {
    if let Ok(out_abs) = out.canonicalize() {
        for input in inputs {
            if input.canonicalize().is_ok_and(|i| i.starts_with(&out_abs)) {
                bail!("--out {} holds the input {}; write the run to another folder", out.display(), input.display());
            }
        }
    }
    let existing = match (resume, force) {
        (Some(true), _) => ExistingDir::WriteInto,
        (_, true) => ExistingDir::ReplacePrevious { what: "training run", markers: RUN_MARKERS },
        (Some(false), false) => {
            ExistingDir::Refuse { hint: "pass --force to replace the previous run, or --resume to continue it" }
        }
        (None, false) => ExistingDir::Refuse { hint: "pass --force to replace the previous run" },
    };
    prepare_output_dir(out, "--out", existing)
}

fn print_report(name: &str, out: &Path, r: &TrainReport) -> Result<()> {
    let losses: Vec<String> = r.final_losses.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    outln!("{name}: {} steps, {:.0} samples/s, final {}", r.steps, r.samples_per_s, losses.join(", "))?;
    for (step, s) in &r.evaluations {
        outln!("  step {step:>6}: success {:.0}%", 100.0 * s)?;
    }
    if let Some((s, step)) = r.best {
        outln!("  kept the best: success {:.0}% at step {step}", 100.0 * s)?;
    }
    outln!("  policy: {}", out.display())?;
    Ok(())
}

/// Runs `armstack train`.
pub fn run(cmd: TrainCommand) -> Result<()> {
    let stop = stop_flag()?;
    match cmd {
        TrainCommand::Icvf(a) => super::train_icvf::run(a)?,
        TrainCommand::Idm(a) => super::train_idm::run(a)?,
        TrainCommand::Expo(a) => super::train_online::run(super::train_online::OnlineVerb::Expo(a), &stop)?,
        TrainCommand::Sac(a) => super::train_online::run(super::train_online::OnlineVerb::Sac(a), &stop)?,
        TrainCommand::H2o(a) => super::train_online::run(super::train_online::OnlineVerb::H2o(a), &stop)?,
        TrainCommand::Bc(a) => {
            let c = &a.common;
            check_device(c.device)?;
            let inputs: Vec<&Path> = c.datasets.iter().chain(&c.encoder).map(PathBuf::as_path).collect();
            prepare_run_out(&c.out, c.force, Some(c.resume), &inputs)?;
            let variant = match a.variant {
                VariantArg::State => Variant::StateOnly,
                VariantArg::Vision => Variant::Vision,
            };
            let datasets = open_datasets(&c.datasets, variant == Variant::Vision)?;
            let frames = datasets.iter().map(dataset::Dataset::len).sum();
            let steps = bc_default_steps(frames, c.batch_size);
            if c.steps.is_none() {
                tracing::info!(
                    frames,
                    steps,
                    "steps: {BC_DRAWS_PER_FRAME} draws per frame, at least 2000 (--steps sets them)"
                );
            }
            let job = BcJob {
                out: c.out.clone(),
                variant,
                horizon: a.horizon,
                config: None,
                tip_features: a.tip_features,
                action_targets: a.action_targets,
                settings: TrainSettings { successful_only: a.successful_only, ..c.settings(steps, BC_LR) },
                eval: c.eval(a.horizon),
                resume: c.resume,
                encoder: c.encoder.clone(),
            };
            let report = with_train_backend!(c.device, B, {
                policy::train::jobs::run_bc::<B>(&job, datasets, &stop, &Default::default())
            })
            .context("behaviour cloning")?;
            print_report("bc", &c.out, &report)?;
        }
        TrainCommand::CoRft(a) => {
            let c = &a.common;
            check_device(c.device)?;
            let inputs: Vec<&Path> =
                c.datasets.iter().chain(&c.encoder).chain(std::iter::once(&a.init)).map(PathBuf::as_path).collect();
            prepare_run_out(&c.out, c.force, Some(c.resume), &inputs)?;
            let spec = PolicySpec::load(&a.init)?;
            let datasets = open_datasets(&c.datasets, spec.config.image.is_some())?;
            let job = CoRftJob {
                init: a.init.clone(),
                out: c.out.clone(),
                rl: a.rl(),
                settings: c.settings(2000, CO_RFT_CRITIC_LR),
                eval: c.eval(spec.config.horizon),
                resume: c.resume,
                encoder: c.encoder.clone(),
            };
            let report = with_train_backend!(c.device, B, {
                policy::train::jobs::run_co_rft::<B>(&job, datasets, &stop, &Default::default())
            })
            .context("CO-RFT")?;
            print_report("co-rft", &c.out, &report)?;
        }
    }
    Ok(())
}
