//! Whole training jobs as the CLI runs them: fit or load the spec, build the learner, attach a
//! sim evaluator, run the loop.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use dataset::Dataset;

use crate::checkpoint::load_module;
use crate::config::{PolicyConfig, Variant};
use crate::error::{PolicyError, Result};
use crate::eval::{eval_env, EvalConfig, SimEvaluator};
use crate::inference::MODEL_STEM;
use crate::model::ChunkPolicy;
use crate::pretrained::{adopt_encoder_shape, load_encoder};
use crate::spec::PolicySpec;
use crate::train::backend_rng::seeded;
use crate::train::bc::BcLearner;
use crate::train::co_rft::{CoRftConfig, CoRftLearner};
use crate::train::data::{SpecRequest, TrainingData};
use crate::train::{run, Evaluator, TrainReport, TrainSettings};

/// Periodic evaluation of a training job.
#[derive(Clone, Debug)]
pub struct EvalJob {
    /// Scene (default: the datasets' scene).
    pub scene: Option<String>,
    /// Rollout settings.
    pub config: EvalConfig,
}

/// `armstack train bc`.
#[derive(Clone, Debug)]
pub struct BcJob {
    /// Output folder.
    pub out: PathBuf,
    /// Observation variant of a new policy.
    pub variant: Variant,
    /// Chunk length H.
    pub horizon: usize,
    /// Model config to start from (`None`: the variant's default).
    pub config: Option<PolicyConfig>,
    /// Finger-tip features on or off (`None`: the default, on for state-only policies).
    pub tip_features: Option<bool>,
    /// Action rows as absolute finger-tip targets (`None`: the default, on for end-effector
    /// delta data with the arm's joints in the state).
    pub action_targets: Option<bool>,
    /// Loop settings.
    pub settings: TrainSettings,
    /// Evaluation (`None`: none; the last step is kept).
    pub eval: Option<EvalJob>,
    /// Continue from `out/resume`.
    pub resume: bool,
    /// A pre-trained image encoder folder to start from ([`crate::pretrained`]).
    pub encoder: Option<PathBuf>,
}

/// Starts `model`'s image encoder from the pre-trained one in `dir` and records it in `spec`.
fn start_from_encoder<B: AutodiffBackend>(
    model: ChunkPolicy<B>,
    spec: &mut PolicySpec,
    dir: &Path,
    device: &B::Device,
) -> Result<ChunkPolicy<B>> {
    let image = spec.config.image.as_ref().ok_or_else(|| {
        PolicyError::Config("--encoder needs a vision policy (--variant vision): this one has no cameras".into())
    })?;
    let encoder = load_encoder(dir, image, device)?;
    spec.pretrained_encoder = Some(dir.display().to_string());
    tracing::info!("image encoder starts from {}", dir.display());
    model.with_image_encoder(encoder)
}

fn training_data(
    datasets: Vec<Dataset>,
    spec: &PolicySpec,
    gamma: f64,
    settings: &TrainSettings,
) -> Result<TrainingData> {
    let data = TrainingData::new(datasets, spec.clone(), gamma)?;
    let data = if settings.skip_proxy_labels { data.without_proxy_labels()? } else { data };
    let data = if settings.successful_only { data.successful_only()? } else { data };
    Ok(data.hold_out(settings.held_out, crate::train::data::HELD_OUT_SEED))
}

fn evaluator(spec: &PolicySpec, eval: &Option<EvalJob>) -> Result<Option<SimEvaluator>> {
    if eval.as_ref().is_some_and(|e| e.scene.is_none()) && spec.scene.is_none() {
        tracing::info!(
            "the data was not recorded in the sim (no scene): no periodic evaluation; pass --scene to evaluate in one"
        );
        return Ok(None);
    }
    eval.as_ref()
        .map(|e| Ok(SimEvaluator { env: eval_env(spec, e.scene.as_deref())?, config: e.config.clone() }))
        .transpose()
}

/// Trains a new policy by behaviour cloning on `datasets`.
pub fn run_bc<B: AutodiffBackend>(
    job: &BcJob,
    datasets: Vec<Dataset>,
    stop: &AtomicBool,
    device: &B::Device,
) -> Result<TrainReport> {
    let request = SpecRequest {
        variant: job.variant,
        horizon: job.horizon,
        config: job.config.clone(),
        tip_features: job.tip_features,
        action_targets: job.action_targets,
        successful_only: job.settings.successful_only,
    };
    let fresh = !(job.resume && job.out.join(crate::spec::SPEC_FILE).exists());
    let fitted = TrainingData::fit_spec(&datasets, &request)?;
    let mut spec = if fresh {
        fitted
    } else {
        let stored = PolicySpec::load(&job.out)?;
        check_same_run(&stored, &fitted)?;
        stored
    };
    if let (Some(dir), Some(image), true) = (&job.encoder, spec.config.image.as_mut(), fresh) {
        adopt_encoder_shape(dir, image)?;
    }
    let mut model = {
        let _rng = seeded::<B>(device, job.settings.seed);
        ChunkPolicy::<B>::new(&spec.config, device)
    };
    if let (Some(dir), true) = (&job.encoder, fresh) {
        model = start_from_encoder(model, &mut spec, dir, device)?;
    }
    spec.num_params = model.num_params();
    tracing::info!(params = spec.num_params, variant = ?spec.config.variant, "behaviour cloning");
    let mut learner = BcLearner::new(model, &spec.config, job.settings.lr, job.settings.loss, device)
        .with_weight_average(job.settings.ema_decay);
    let data = Arc::new(training_data(datasets, &spec, 0.99, &job.settings)?);
    let mut ev = evaluator(&spec, &job.eval)?;
    let ev_ref = ev.as_mut().map(|e| e as &mut dyn Evaluator<B::InnerBackend>);
    run("bc", &mut learner, data, &spec, &job.settings, &job.out, ev_ref, job.resume, stop, device)
}

/// Refuses to resume the run of `stored` with data or model flags that give `fitted` instead:
/// other datasets (other statistics, tasks or scene) or another chunk length, variant or input
/// and output choices would train weights that `policy.json` does not describe.
fn check_same_run(stored: &PolicySpec, fitted: &PolicySpec) -> Result<()> {
    let (a, b) = (&stored.config, &fitted.config);
    let mut differences = Vec::new();
    let mut differ = |what: &str, run: String, now: String| {
        if run != now {
            differences.push(format!("{what}: {run} in the run, {now} now"));
        }
    };
    differ("horizon", a.horizon.to_string(), b.horizon.to_string());
    differ("variant", format!("{:?}", a.variant), format!("{:?}", b.variant));
    differ("tip features", a.tip_features.to_string(), b.tip_features.to_string());
    differ("action targets", a.action_targets.to_string(), b.action_targets.to_string());
    differ(
        "state/action/object-state widths",
        format!("{}/{}/{}", a.state_dim, a.action_dim, a.env_state_dim),
        format!("{}/{}/{}", b.state_dim, b.action_dim, b.env_state_dim),
    );
    differ("scene", format!("{:?}", stored.scene), format!("{:?}", fitted.scene));
    differ("tasks", stored.tasks.len().to_string(), fitted.tasks.len().to_string());
    if stored.tasks.len() == fitted.tasks.len() && stored.tasks != fitted.tasks {
        differences.push("the tasks differ".into());
    }
    if stored.normalizer != fitted.normalizer && differences.is_empty() {
        differences.push("the datasets' statistics differ (other data)".into());
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(PolicyError::Config(format!(
        "--resume continues a run with other data or model flags ({}); give the run's own datasets and flags \
         again, or start a new run (--force)",
        differences.join("; ")
    )))
}

/// `armstack train co-rft`.
#[derive(Clone, Debug)]
pub struct CoRftJob {
    /// The BC policy folder to start from.
    pub init: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// RL settings.
    pub rl: CoRftConfig,
    /// Loop settings.
    pub settings: TrainSettings,
    /// Evaluation.
    pub eval: Option<EvalJob>,
    /// Continue from `out/resume`.
    pub resume: bool,
    /// Replace the initial policy's image encoder by this pre-trained one ([`crate::pretrained`]).
    pub encoder: Option<PathBuf>,
}

/// Fine-tunes the policy in `job.init` with CO-RFT on `datasets`.
pub fn run_co_rft<B: AutodiffBackend>(
    job: &CoRftJob,
    datasets: Vec<Dataset>,
    stop: &AtomicBool,
    device: &B::Device,
) -> Result<TrainReport> {
    let mut spec = PolicySpec::load(&job.init)?;
    if same_dir(&job.init, &job.out) {
        return Err(PolicyError::Config("--out must differ from --init".into()));
    }
    if job.settings.steps <= job.rl.critic_warmup {
        return Err(PolicyError::Config(format!(
            "--steps {} is within the critic warm-up (--critic-warmup {}): the actor would never be updated and \
             the saved policy would be the BC policy; give more steps or a shorter warm-up",
            job.settings.steps, job.rl.critic_warmup
        )));
    }
    let mut policy =
        load_module(ChunkPolicy::<B>::new(&spec.config, device), &job.init.join(MODEL_STEM), "policy", device)?;
    if let Some(dir) = &job.encoder {
        policy = start_from_encoder(policy, &mut spec, dir, device)?;
    }
    spec.critic = Some(job.rl.critic.clone());
    let mut learner = {
        let _rng = seeded::<B>(device, job.settings.seed);
        CoRftLearner::new(policy, &spec.config, &job.rl, job.settings.seed, device)
            .with_weight_average(job.settings.ema_decay)
            .with_loss(job.settings.loss)
    };
    tracing::info!(critics = job.rl.critic.ensemble, "CO-RFT from {}", job.init.display());
    let data = Arc::new(training_data(datasets, &spec, job.rl.gamma, &job.settings)?);
    let mut ev = evaluator(&spec, &job.eval)?;
    let ev_ref = ev.as_mut().map(|e| e as &mut dyn Evaluator<B::InnerBackend>);
    run("co-rft", &mut learner, data, &spec, &job.settings, &job.out, ev_ref, job.resume, stop, device)
}

/// True when `a` and `b` name the same existing folder.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
