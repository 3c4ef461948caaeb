//! The workloads of `armstack bench train`: a small dataset recorded by the scripted expert on
//! pick_cube (cameras at 64 and 128 px), and per row the model at the sizes its training command
//! uses by default, with the update function that command's loop calls.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use dataset::writer::DatasetWriter;
use dataset::Dataset;
use policy::model::{ChunkPolicy, FlowPolicy};
use policy::online::expo::{ExpoConfig, ExpoLearner};
use policy::online::OnlineLearner;
use policy::train::backend_rng::{seeded, step_seed};
use policy::train::bc::BcLearner;
use policy::train::co_rft::{CoRftConfig, CoRftLearner};
use policy::train::data::{batch_rng, HostBatch, SpecRequest, TrainingData};
use policy::train::Learner;
use policy::{PolicySpec, Variant};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use video_pretrain::icvf::model::IcvfConfig;
use video_pretrain::icvf::sampling::IcvfIndices;
use video_pretrain::icvf::train::{store_sampler, IcvfLearner, IcvfTrainConfig};
use video_pretrain::idm::data::{fit_normalizer, inputs, targets};
use video_pretrain::idm::model::IdmConfig;
use video_pretrain::idm::train::{sample_batch, IdmLearner, IdmTrainConfig};
use video_pretrain::store::{FrameStore, FrameStoreWriter};

/// Row names, in table order.
pub const ROWS: [&str; 7] =
    ["bc_state", "bc_vision_64", "bc_vision_128", "co_rft_critic", "expo_update", "icvf", "idm"];

/// Chunk length H of the policies (`armstack train bc --horizon`).
const HORIZON: usize = 10;
/// Distinct batches each row cycles through.
const BATCHES: usize = 4;
/// Seed of initialisation and batches.
const SEED: u64 = 0;
/// Expert action noise of the recording (some episodes fail, as in `armstack demo`).
const NOISE: f64 = 0.3;

/// Samples per update of a row (the sizes issue 17 names; quick mode caps them at 4).
fn batch_size(row: &str, quick: bool) -> usize {
    let full = match row {
        "bc_state" => 128,
        "bc_vision_64" | "bc_vision_128" => 16,
        "co_rft_critic" | "expo_update" => 256,
        "icvf" => 64,
        _ => 1024,
    };
    if quick {
        full.min(4)
    } else {
        full
    }
}

/// Camera side a row's data needs, px.
fn camera_px(row: &str) -> u32 {
    if row == "bc_vision_128" {
        128
    } else {
        64
    }
}

/// One row's model and update, ready to time.
pub struct Workload {
    /// What is trained, at which sizes.
    pub shape: String,
    /// Samples per update.
    pub batch: usize,
    /// Parameters the update trains.
    pub params: usize,
    /// Runs update `k` (on the row's batches in turn).
    pub step: Box<dyn FnMut(u64) -> Result<()>>,
}

/// A row's batches, prepared before the row's memory is measured.
pub enum RowInput {
    /// Policy rows: the spec fitted to the data and chunk batches.
    Chunks { spec: PolicySpec, batches: Vec<HostBatch> },
    /// ICVF: the frame store and its (s, s′, g, z) index batches.
    Frames { store: FrameStore, batches: Vec<IcvfIndices> },
    /// IDM: the network sizes and (input, target) batches.
    Transitions { config: IdmConfig, batches: Vec<(Vec<f32>, Vec<f32>)> },
}

/// The recorded datasets (one per camera side, recorded when a row first needs it) in `root`.
pub struct BenchData {
    root: PathBuf,
    episodes: u64,
    quick: bool,
}

impl BenchData {
    /// Data under `root` (an empty scratch folder); `episodes` demonstrations per camera side.
    pub fn new(root: &Path, episodes: u64, quick: bool) -> BenchData {
        BenchData { root: root.to_path_buf(), episodes, quick }
    }

    /// The dataset with cameras of side `px`, recorded on first use.
    fn dataset_dir(&self, px: u32) -> Result<PathBuf> {
        let dir = self.root.join(format!("pick_cube_{px}px"));
        if dir.join("meta/info.json").exists() {
            return Ok(dir);
        }
        let env = sim::EnvConfig::new(sim::load_scene("pick_cube")?).with_cameras(px, px);
        let spec = policy::demos::dataset_spec(&env, policy::demos::camera_features(&env));
        let mut writer = DatasetWriter::create(&dir, &spec)?;
        policy::demos::collect(&env, &mut writer, self.episodes, sim::DemoQuality::noisy(NOISE), SEED, 2)
            .with_context(|| format!("recording the {px} px bench dataset"))?;
        writer.finish()?;
        Ok(dir)
    }

    /// The dataset of `px`, its videos decoded when `images`.
    fn open(&self, px: u32, images: bool) -> Result<Dataset> {
        let dir = self.dataset_dir(px)?;
        let mut ds = crate::cmd::policy_args::open_datasets(std::slice::from_ref(&dir), images)?;
        ds.pop().context("no dataset opened")
    }

    /// The batches of `row`.
    pub fn input(&self, row: &str) -> Result<RowInput> {
        let n = batch_size(row, self.quick);
        match row {
            "icvf" => self.frames(n),
            "idm" => self.transitions(n),
            _ => {
                let vision = row.starts_with("bc_vision");
                let ds = self.open(camera_px(row), vision)?;
                let variant = if vision { Variant::Vision } else { Variant::StateOnly };
                // The reference script's input widths: no finger-tip features.
                let request = SpecRequest { tip_features: Some(false), ..SpecRequest::new(variant, HORIZON) };
                let spec = TrainingData::fit_spec(std::slice::from_ref(&ds), &request)?;
                let data = TrainingData::new(vec![ds], spec.clone(), CoRftConfig::default().gamma)?;
                let batches =
                    (0..BATCHES as u64).map(|k| data.sample(&mut batch_rng(SEED, k), n)).collect::<Result<_, _>>()?;
                Ok(RowInput::Chunks { spec, batches })
            }
        }
    }

    /// ICVF's frame store: the front camera of every episode, and index batches.
    fn frames(&self, n: usize) -> Result<RowInput> {
        let ds = self.open(64, true)?;
        let key = ds.camera_keys().into_iter().next().context("the bench dataset has no camera")?;
        let dir = self.root.join("frames_64px");
        if !dir.join(video_pretrain::store::MANIFEST_FILE).exists() {
            let mut w = FrameStoreWriter::create(&dir, 64, ds.fps())?;
            for ep in ds.episodes() {
                let mut rgb = Vec::new();
                for i in ep.from_index as usize..ep.to_index as usize {
                    rgb.extend_from_slice(ds.image(i, &key)?);
                }
                w.add_episode(&format!("episode {}", ep.index), &rgb)?;
            }
            w.finish()?;
        }
        let store = FrameStore::open(&dir)?;
        let sampler = store_sampler(&store)?;
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let batches = (0..BATCHES).map(|_| sampler.sample(&mut rng, n)).collect();
        Ok(RowInput::Frames { store, batches })
    }

    /// IDM examples of every episode (states and their changes → actions), and batches.
    fn transitions(&self, n: usize) -> Result<RowInput> {
        let ds = self.open(64, false)?;
        let episodes: Vec<usize> = (0..ds.episodes().len()).collect();
        let norm = fit_normalizer(&ds, &episodes);
        let (x, frames) = inputs(&ds, &episodes, &norm);
        let y = targets(&ds, &frames, &norm);
        let config = IdmConfig {
            hidden: IdmTrainConfig::default().hidden,
            ..IdmConfig::new(ds.state_dim() + ds.env_state_dim(), ds.action_dim())
        };
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let batches = (0..BATCHES).map(|_| sample_batch(&mut rng, &x, &y, config.input_dim(), n)).collect();
        Ok(RowInput::Transitions { config, batches })
    }
}

/// Batch `k` of `batches`, cycling.
fn nth<T>(batches: &[T], k: u64) -> &T {
    &batches[k as usize % batches.len()]
}

/// The model of `row` on `input` and its update (the training loop's own, as `armstack train`
/// runs it: dropout masks seeded per step, like the loop does).
pub fn workload<B: AutodiffBackend>(row: &str, input: RowInput, device: &B::Device) -> Result<Workload> {
    let device = device.clone();
    let init = seeded::<B>(&device, SEED);
    match input {
        RowInput::Chunks { spec, batches } => {
            let c = spec.config.clone();
            let batch = batches[0].len();
            let model = ChunkPolicy::<B>::new(&c, &device);
            let policy_params = model.num_params();
            let trunk = format!(
                "d {} × {} layers, {} heads, H {HORIZON}, dropout {}",
                c.d_model, c.n_layers, c.n_heads, c.dropout
            );
            match row {
                "co_rft_critic" => {
                    let rl = CoRftConfig::default();
                    let mut learner = CoRftLearner::new(model, &c, &rl, SEED, &device);
                    drop(init);
                    let k = rl.critic.ensemble;
                    let shape = format!(
                        "{k} critics {}×{} LayerNorm, {} chunks/state (data + Cal-QL {}×3); targets from the state-only policy",
                        rl.critic.layers,
                        rl.critic.hidden,
                        1 + 3 * rl.cql_samples,
                        rl.cql_samples
                    );
                    let params = learner.critic.num_params();
                    // Step 0 is inside the critic warm-up: a critic-only update, every time.
                    let step = move |k: u64| -> Result<()> {
                        let _rng = seeded::<B>(&device, step_seed(SEED, k));
                        learner.update(nth(&batches, k), 0).map(|_| ()).map_err(Into::into)
                    };
                    Ok(Workload { shape, batch, params, step: Box::new(step) })
                }
                "expo_update" => {
                    let rl = ExpoConfig::default();
                    let base = FlowPolicy::new(model, &c, &rl.flow, &device);
                    let mut learner = ExpoLearner::new(base, &spec, &rl, &device);
                    drop(init);
                    let shape = format!(
                        "critic update ({} critics {}×{}, π_otf target: {} flow samples × {} Euler steps + edits) then \
                         base (flow {}×{}) + edit ({}×{}) + α update; state-only trunk {trunk}",
                        rl.critic.ensemble,
                        rl.critic.layers,
                        rl.critic.hidden,
                        rl.samples,
                        rl.flow.steps,
                        rl.flow.layers,
                        rl.flow.hidden,
                        rl.edit.layers,
                        rl.edit.hidden
                    );
                    let params = learner.num_params();
                    let step = move |k: u64| -> Result<()> {
                        let _rng = seeded::<B>(&device, step_seed(SEED, k));
                        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(SEED ^ 0xE4, k));
                        let b = nth(&batches, k);
                        learner.critic_update(b, b.len(), &mut rng)?;
                        learner.actor_update(b, b.len(), &mut rng)?;
                        Ok(())
                    };
                    Ok(Workload { shape, batch, params, step: Box::new(step) })
                }
                _ => {
                    let settings = policy::train::TrainSettings::default();
                    let mut learner = BcLearner::new(model, &c, settings.lr, settings.loss, &device);
                    drop(init);
                    let shape = match &c.image {
                        Some(img) => format!(
                            "vision chunk policy, {} cameras {} px (ResNet {:?}, {}×{} tokens each), trunk {trunk}",
                            img.cameras.len(),
                            img.size,
                            img.channels,
                            img.grid,
                            img.grid
                        ),
                        None => {
                            format!("state-only chunk policy, {} tokens, trunk {trunk}", c.obs_tokens() + c.horizon)
                        }
                    };
                    let step = move |k: u64| -> Result<()> {
                        let _rng = seeded::<B>(&device, step_seed(SEED, k));
                        learner.update(nth(&batches, k), k).map(|_| ()).map_err(Into::into)
                    };
                    Ok(Workload { shape, batch, params: policy_params, step: Box::new(step) })
                }
            }
        }
        RowInput::Frames { store, batches } => {
            let cfg = IcvfTrainConfig::default();
            let model_cfg = IcvfConfig::new(store.manifest.size);
            let mut learner = IcvfLearner::<B>::new(&model_cfg, &cfg, &device);
            drop(init);
            let shape = format!(
                "ResNet encoder {} px {:?} + {} multilinear heads of {}, 3 frames/sample (s, g, z) through the online network, 4 (s, s′, g, z) through the EMA target",
                model_cfg.encoder.size, model_cfg.encoder.channels, model_cfg.ensemble, model_cfg.hidden
            );
            let (batch, params) = (batches[0].s.len(), learner.model.num_params());
            let step = move |k: u64| -> Result<()> {
                let _rng = seeded::<B>(&device, step_seed(SEED, k));
                let stats = learner.step(&store, nth(&batches, k));
                anyhow::ensure!(stats.loss.is_finite(), "ICVF loss {} at bench step {k}", stats.loss);
                Ok(())
            };
            Ok(Workload { shape, batch, params, step: Box::new(step) })
        }
        RowInput::Transitions { config, batches } => {
            let mut learner = IdmLearner::<B>::new(&config, IdmTrainConfig::default().lr, &device);
            drop(init);
            let shape = format!(
                "MLP {} → {} × {} (ReLU, dropout {}) → tanh-Gaussian over {} actions",
                config.input_dim(),
                config.layers,
                config.hidden,
                config.dropout,
                config.action_dim
            );
            let (batch, params) = (batches[0].1.len() / config.action_dim.max(1), learner.model.num_params());
            let step = move |k: u64| -> Result<()> {
                let _rng = seeded::<B>(&device, step_seed(SEED, k));
                let (x, y) = nth(&batches, k).clone();
                let nll = learner.step(x, y);
                anyhow::ensure!(nll.is_finite(), "IDM NLL {nll} at bench step {k}");
                Ok(())
            };
            Ok(Workload { shape, batch, params, step: Box::new(step) })
        }
    }
}
