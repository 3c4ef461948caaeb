//! A policy's description beside its weights (`policy.json`): the model config, normalisation,
//! vocabulary and what its actions mean. Everything needed to rebuild and run the model.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{CriticConfig, PolicyConfig};
use crate::error::{PolicyError, Result};
use crate::normalize::Normalizer;
use crate::vocab::Vocabulary;

/// What a saved policy is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Model architecture.
    pub config: PolicyConfig,
    /// Critic architecture (CO-RFT checkpoints).
    #[serde(default)]
    pub critic: Option<CriticConfig>,
    /// Input and output normalisation.
    pub normalizer: Normalizer,
    /// Instruction vocabulary.
    pub vocab: Vocabulary,
    /// Meaning of an action row (`EeDelta` or `JointTarget`).
    pub action_kind: bus::ActionKind,
    /// Control rate the chunks were recorded at, Hz.
    pub fps: f64,
    /// Scene of the training data (the default for evaluation).
    pub scene: Option<String>,
    /// Instructions seen in training (the first is the default).
    pub tasks: Vec<String>,
    /// Number of model parameters (checked when weights are loaded).
    pub num_params: usize,
    /// The pre-trained image encoder the policy started from (`--encoder`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained_encoder: Option<String>,
}

/// File name of the spec inside a policy folder.
pub const SPEC_FILE: &str = "policy.json";

impl PolicySpec {
    /// Reads `dir/policy.json`.
    pub fn load(dir: &Path) -> Result<PolicySpec> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            PolicyError::checkpoint(dir, format!("cannot read {SPEC_FILE} ({e}); is this a policy folder (runs/NAME)?"))
        })?;
        let spec: PolicySpec =
            serde_json::from_str(&text).map_err(|e| PolicyError::checkpoint(&path, format!("malformed: {e}")))?;
        spec.config.validate().map_err(|e| PolicyError::checkpoint(&path, e.to_string()))?;
        Ok(spec)
    }

    /// Writes `dir/policy.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| PolicyError::Training(e.to_string()))?;
        write_atomic(&dir.join(SPEC_FILE), text.as_bytes())
    }
}

/// Writes `bytes` to `path` durably: a temp file, fsynced, renamed over `path`, the folder
/// fsynced ([`dataset::durable::replace_file`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(dataset::durable::replace_file(path, bytes)?)
}

impl PolicySpec {
    /// A spec with identity normalisation for an untrained model (benchmarks, tests): object
    /// state and actions are taken as already normalised.
    pub fn untrained(config: PolicyConfig, scene: Option<String>, fps: f64, tasks: Vec<String>) -> PolicySpec {
        use crate::normalize::{MinMax, ZScore};
        let z = |n: usize| ZScore { mean: vec![0.0; n], std: vec![1.0; n] };
        let vocab = Vocabulary::build(tasks.iter().map(String::as_str));
        let mut config = config;
        config.vocab_size = vocab.size();
        PolicySpec {
            normalizer: Normalizer {
                state: z(config.state_dim),
                env_state: z(config.env_input_dim()),
                action: MinMax { min: vec![-1.0; config.action_dim], max: vec![1.0; config.action_dim] },
            },
            config,
            critic: None,
            vocab,
            action_kind: bus::ActionKind::EeDelta,
            fps,
            scene,
            tasks,
            num_params: 0,
            pretrained_encoder: None,
        }
    }
}
