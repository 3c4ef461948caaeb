//! Online fine-tuning jobs as the CLI runs them: load the pre-trained policy, open the offline
//! (or real) data, build the learner, run the loop, record what ran in `online.json`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use dataset::Dataset;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_module;
use crate::error::{PolicyError, Result};
use crate::eval::eval_env;
use crate::inference::MODEL_STEM;
use crate::model::{ChunkPolicy, FlowPolicy};
use crate::online::expo::{ExpoConfig, ExpoLearner};
use crate::online::h2o::{H2oConfig, H2oLearner};
use crate::online::sac::{SacConfig, SacLearner};
use crate::online::{run_online, OnlineReport, OnlineSettings};
use crate::spec::{write_atomic, PolicySpec};
use crate::train::backend_rng::seeded;
use crate::train::data::{batch_rng, TrainingData};
use crate::train::jobs::same_dir;

/// Which algorithm, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum OnlineAlgo {
    /// EXPO.
    Expo(ExpoConfig),
    /// Plain SAC-style actor-critic on the chunk head.
    Sac(SacConfig),
    /// H2O: the offline data is the real data.
    H2o(H2oConfig),
}

impl OnlineAlgo {
    /// Short name (`expo`, `sac`, `h2o`).
    pub fn name(&self) -> &'static str {
        match self {
            OnlineAlgo::Expo(_) => "expo",
            OnlineAlgo::Sac(_) => "sac",
            OnlineAlgo::H2o(_) => "h2o",
        }
    }

    fn gamma(&self) -> f64 {
        match self {
            OnlineAlgo::Expo(c) => c.gamma,
            OnlineAlgo::Sac(c) => c.gamma,
            OnlineAlgo::H2o(c) => c.sac.gamma,
        }
    }
}

/// `armstack train expo|sac|h2o`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OnlineJob {
    /// The pre-trained (BC) policy folder.
    pub init: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Scene to fine-tune in (default: the policy's).
    pub scene: Option<String>,
    /// Algorithm.
    pub algo: OnlineAlgo,
    /// Loop settings.
    pub settings: OnlineSettings,
    /// The offline (H2O: real) datasets, as given.
    pub datasets: Vec<PathBuf>,
}

/// Runs `job` with the opened `datasets` (the demonstrations, or H2O's real data).
pub fn run_online_job<B: AutodiffBackend>(
    job: &OnlineJob,
    datasets: Vec<Dataset>,
    stop: Arc<AtomicBool>,
    device: &B::Device,
) -> Result<OnlineReport> {
    if same_dir(&job.init, &job.out) {
        return Err(PolicyError::Config("--out must differ from --init".into()));
    }
    let s = &job.settings;
    if !(0.0..=1.0).contains(&s.offline_ratio) {
        return Err(PolicyError::Config(format!("--offline-ratio {} must lie in [0, 1]", s.offline_ratio)));
    }
    let h2o = matches!(job.algo, OnlineAlgo::H2o(_));
    if datasets.is_empty() && (s.offline_ratio > 0.0 || h2o) {
        return Err(PolicyError::Config(if h2o {
            "H2O needs the real data (--real DIR)".into()
        } else {
            "offline batches need the demonstrations (--dataset DIR), or pass --offline-ratio 0 (WSRL)".into()
        }));
    }
    let mut spec = PolicySpec::load(&job.init)?;
    let env = eval_env(&spec, job.scene.as_deref())?;
    if let Some(scene) = &job.scene {
        spec.scene = Some(scene.clone());
    }
    // Initial weights (and the flow head's pre-training dropout masks) from the seed; held until
    // the online loop starts, which seeds each update itself.
    let init_rng = seeded::<B>(device, s.seed);
    let policy =
        load_module(ChunkPolicy::<B>::new(&spec.config, device), &job.init.join(MODEL_STEM), "policy", device)?;
    let gamma = job.algo.gamma();
    let data =
        if datasets.is_empty() { None } else { Some(Arc::new(TrainingData::new(datasets, spec.clone(), gamma)?)) };
    std::fs::create_dir_all(&job.out).map_err(|e| PolicyError::io(&job.out, e))?;
    let text = serde_json::to_string_pretty(job).map_err(|e| PolicyError::Training(e.to_string()))?;
    write_atomic(&job.out.join("online.json"), text.as_bytes())?;
    tracing::info!(algo = job.algo.name(), env_steps = s.env_steps, "online fine-tuning from {}", job.init.display());
    match &job.algo {
        OnlineAlgo::Expo(rl) => {
            spec.critic = Some(rl.critic.clone());
            let base = FlowPolicy::new(policy, &spec.config, &rl.flow, device);
            let mut learner = ExpoLearner::new(base, &spec, rl, device);
            if let (Some(d), true) = (&data, rl.base_pretrain_steps > 0) {
                let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0xBA5E);
                let mut step = 0u64;
                let loss = learner.pretrain_base(
                    rl.base_pretrain_steps,
                    |_| {
                        step += 1;
                        d.sample(&mut batch_rng(s.seed ^ 0xF10, step), s.batch_size)
                    },
                    &mut rng,
                )?;
                tracing::info!(steps = rl.base_pretrain_steps, loss, "flow head pre-trained by imitation");
            }
            drop(init_rng);
            run_online("expo", &mut learner, data, &spec, &env, s, gamma, &job.out, stop)
        }
        OnlineAlgo::Sac(rl) => {
            spec.critic = Some(rl.critic.clone());
            let mut learner = SacLearner::new(policy, &spec, rl, device);
            drop(init_rng);
            run_online("sac", &mut learner, data, &spec, &env, s, gamma, &job.out, stop)
        }
        OnlineAlgo::H2o(cfg) => {
            spec.critic = Some(cfg.sac.critic.clone());
            let c = &spec.config;
            let state_width = c.state_dim + c.env_input_dim();
            let chunk = c.horizon * c.action_dim;
            let mut learner =
                H2oLearner::new(SacLearner::new(policy, &spec, &cfg.sac, device), state_width, chunk, cfg, device);
            let mut settings = s.clone();
            settings.offline_ratio = 0.5;
            drop(init_rng);
            run_online("h2o", &mut learner, data, &spec, &env, &settings, gamma, &job.out, stop)
        }
    }
}
