//! Model configuration: plain data, saved as `config.json` beside every checkpoint so a policy
//! folder alone rebuilds its model.

use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};

/// Which observations the policy sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Proprioception + object state (privileged sim state) + instruction; no images. For fast
    /// CPU work and for checking algorithms.
    StateOnly,
    /// Front and wrist cameras + proprioception + instruction (a VLA): what a real arm can see.
    Vision,
}

/// The image encoder: a small ResNet per camera (weights shared across cameras, plus a learned
/// per-camera embedding), ending in a `grid × grid` map of tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageEncoderConfig {
    /// Input side, pixels (images are square; datasets and cameras must match).
    pub size: usize,
    /// Camera keys in input order (dataset feature names, e.g. `observation.images.front`).
    pub cameras: Vec<String>,
    /// Channels of the three stages (each halves the resolution).
    pub channels: [usize; 3],
    /// Side of the output token grid (tokens per camera = grid²).
    pub grid: usize,
}

impl ImageEncoderConfig {
    /// Defaults for `cameras` at `size`×`size`: channels 16/32/64 (CPU inference cost: see
    /// `armstack bench inference`), a 4×4 token grid.
    pub fn new(size: usize, cameras: Vec<String>) -> ImageEncoderConfig {
        ImageEncoderConfig { size, cameras, channels: [16, 32, 64], grid: 4 }
    }
}

/// The chunked-action policy: observation tokens + H learned action queries through a
/// transformer encoder; each query's output is one normalised action row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Observation variant.
    pub variant: Variant,
    /// Chunk length H (actions predicted per inference).
    pub horizon: usize,
    /// Proprioception width (6 joints + gripper).
    pub state_dim: usize,
    /// Object-state width read from the observation (state-only variant; 0 for vision).
    pub env_state_dim: usize,
    /// Whether the object-state input also carries the finger-tip features of
    /// [`crate::features::push_tip_features`] (tip pose from forward kinematics of the joints,
    /// each object's position relative to the tip). Absent in older checkpoints: off.
    #[serde(default)]
    pub tip_features: bool,
    /// Whether action rows are absolute finger-tip targets ([`crate::action_targets`]) rather
    /// than the dataset's end-effector deltas; the executor turns them back into deltas. Only for
    /// `EeDelta` data with the arm's joints in the state. Absent in older checkpoints: off.
    #[serde(default)]
    pub action_targets: bool,
    /// Whether an observation may hold fewer objects than `env_state_dim` describes: a policy
    /// trained on scenes with different object counts (one multi-task policy) sees each missing
    /// object as zeros (position, sine and cosine of yaw all 0, which no real object has) and its
    /// tip-relative vector as zeros ([`crate::batch::push_env_input`]). Off: an observation with
    /// fewer object values is refused (another scene). Absent in older checkpoints: off.
    #[serde(default)]
    pub pad_objects: bool,
    /// Action width D.
    pub action_dim: usize,
    /// Instruction vocabulary size (incl. padding and unknown).
    pub vocab_size: usize,
    /// Instruction tokens kept (longer instructions are cut).
    pub max_words: usize,
    /// Transformer width.
    pub d_model: usize,
    /// Transformer feed-forward width.
    pub d_ff: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Transformer layers.
    pub n_layers: usize,
    /// Dropout during training.
    pub dropout: f64,
    /// Image encoder (vision variant only).
    pub image: Option<ImageEncoderConfig>,
}

impl PolicyConfig {
    /// The fast state-only default: width 64, 2 layers (≈ 0.1 M parameters), with finger-tip
    /// features when the state holds the arm's joints and there is at least one object.
    pub fn state_only(horizon: usize, state_dim: usize, env_state_dim: usize, action_dim: usize) -> PolicyConfig {
        PolicyConfig {
            variant: Variant::StateOnly,
            horizon,
            state_dim,
            env_state_dim,
            tip_features: state_dim >= sim::arm::spec::NUM_ARM_JOINTS
                && env_state_dim >= crate::features::ENV_VALUES_PER_OBJECT,
            action_targets: false,
            pad_objects: false,
            action_dim,
            vocab_size: 2,
            max_words: 8,
            d_model: 64,
            d_ff: 128,
            n_heads: 2,
            n_layers: 2,
            dropout: 0.0,
            image: None,
        }
    }

    /// The default VLA: width 256, 4 layers, a ResNet over each camera (a few million parameters).
    pub fn vision(horizon: usize, state_dim: usize, action_dim: usize, image: ImageEncoderConfig) -> PolicyConfig {
        PolicyConfig {
            variant: Variant::Vision,
            horizon,
            state_dim,
            env_state_dim: 0,
            tip_features: false,
            action_targets: false,
            pad_objects: false,
            action_dim,
            vocab_size: 2,
            max_words: 12,
            d_model: 256,
            d_ff: 1024,
            n_heads: 8,
            n_layers: 4,
            dropout: 0.1,
            image: Some(image),
        }
    }

    /// Width of the model's object-state input: the object state, then the finger-tip features
    /// when [`Self::tip_features`] is on (0 when neither).
    pub fn env_input_dim(&self) -> usize {
        self.env_state_dim + if self.tip_features { crate::features::tip_feature_dim(self.env_state_dim) } else { 0 }
    }

    /// Number of observation tokens before the action queries.
    pub fn obs_tokens(&self) -> usize {
        let images = self.image.as_ref().map_or(0, |i| i.cameras.len() * i.grid * i.grid);
        1 + usize::from(self.env_input_dim() > 0) + self.max_words + images
    }

    /// Checks the sizes make a model.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PolicyError::Config(m));
        if self.horizon == 0 || self.action_dim == 0 || self.state_dim == 0 {
            return bad(format!(
                "horizon ({}), action_dim ({}) and state_dim ({}) must be positive",
                self.horizon, self.action_dim, self.state_dim
            ));
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!("d_model {} must be a multiple of n_heads {}", self.d_model, self.n_heads));
        }
        if self.vocab_size < 2 {
            return bad("vocab_size must count padding and unknown (≥ 2)".into());
        }
        match (&self.variant, &self.image) {
            (Variant::Vision, None) => return bad("the vision variant needs an image encoder".into()),
            (Variant::StateOnly, Some(_)) => return bad("the state-only variant takes no images".into()),
            (Variant::Vision, Some(img))
                if img.cameras.is_empty() || img.size < 16 || !img.size.is_multiple_of(8) || img.grid == 0 =>
            {
                return bad(format!(
                    "image encoder needs ≥ 1 camera, a side ≥ 16 divisible by 8 and a grid ≥ 1 (got {} cameras, side \
                     {}, grid {})",
                    img.cameras.len(),
                    img.size,
                    img.grid
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The critic ensemble over chunks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriticConfig {
    /// Ensemble members K.
    pub ensemble: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers (each Linear → LayerNorm → ReLU).
    pub layers: usize,
    /// Instruction embedding width (bag of words).
    pub word_dim: usize,
}

impl Default for CriticConfig {
    /// 10 members of 3×256 with LayerNorm (the critics of Cal-QL's and EXPO's published code).
    fn default() -> CriticConfig {
        CriticConfig { ensemble: 10, hidden: 256, layers: 3, word_dim: 16 }
    }
}
