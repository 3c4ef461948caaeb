//! The chunked-action policy (a small VLA).
//!
//! Tokens, in order: proprioception (one token), object state (one token, state-only variant),
//! the instruction's words (`max_words` tokens, padding masked), image tokens (`grid²` per
//! camera, vision variant), then H learned action queries. A learned position embedding is added
//! to every slot, a pre-norm transformer encoder mixes them, and each query's output goes through
//! LayerNorm and a linear head to one action row in normalised units ([−1, 1] per component).

use burn::module::Param;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::config::PolicyConfig;
use crate::model::image::ImageEncoder;
use crate::model::mlp::LAYER_NORM_EPSILON;

/// A batch of model inputs on the device.
#[derive(Clone, Debug)]
pub struct ObsBatch<B: Backend> {
    /// Normalised proprioception `[B, state_dim]`.
    pub state: Tensor<B, 2>,
    /// Normalised object-state input `[B, env_input_dim]` (object state, then finger-tip features).
    pub env_state: Option<Tensor<B, 2>>,
    /// Instruction token ids `[B, max_words]`.
    pub words: Tensor<B, 2, Int>,
    /// Images `[B · cameras, 3, side, side]`, normalised (vision variant).
    pub images: Option<Tensor<B, 4>>,
    /// `[B, tokens]`: true for padded slots (unused instruction words).
    pub pad_mask: Tensor<B, 2, Bool>,
}

impl<B: Backend> ObsBatch<B> {
    /// Batch size.
    pub fn len(&self) -> usize {
        self.state.dims()[0]
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn param<B: Backend>(rows: usize, cols: usize, device: &B::Device) -> Param<Tensor<B, 2>> {
    Initializer::Normal { mean: 0.0, std: 0.02 }.init([rows, cols], device)
}

/// The policy network.
#[derive(Module, Debug)]
pub struct ChunkPolicy<B: Backend> {
    state_proj: Linear<B>,
    env_proj: Option<Linear<B>>,
    words: Embedding<B>,
    image: Option<ImageEncoder<B>>,
    image_proj: Option<Linear<B>>,
    camera_embed: Option<Param<Tensor<B, 2>>>,
    positions: Param<Tensor<B, 2>>,
    queries: Param<Tensor<B, 2>>,
    trunk: TransformerEncoder<B>,
    norm: LayerNorm<B>,
    head: Linear<B>,
    horizon: usize,
    obs_tokens: usize,
}

impl<B: Backend> ChunkPolicy<B> {
    /// Builds a freshly initialised policy. `config` must be valid ([`PolicyConfig::validate`]).
    pub fn new(config: &PolicyConfig, device: &B::Device) -> ChunkPolicy<B> {
        let d = config.d_model;
        let image = config.image.as_ref().map(|c| ImageEncoder::new(c, device));
        let image_proj = image.as_ref().map(|e| LinearConfig::new(e.channels, d).init(device));
        let camera_embed = config.image.as_ref().map(|c| param(c.cameras.len(), d, device));
        let obs_tokens = config.obs_tokens();
        crate::train::backend_rng::initialised(ChunkPolicy {
            state_proj: LinearConfig::new(config.state_dim, d).init(device),
            env_proj: (config.env_input_dim() > 0).then(|| LinearConfig::new(config.env_input_dim(), d).init(device)),
            words: EmbeddingConfig::new(config.vocab_size, d).init(device),
            image,
            image_proj,
            camera_embed,
            positions: param(obs_tokens + config.horizon, d, device),
            queries: param(config.horizon, d, device),
            trunk: TransformerEncoderConfig::new(d, config.d_ff, config.n_heads, config.n_layers)
                .with_dropout(config.dropout)
                .with_norm_first(true)
                .with_layer_norm_eps(LAYER_NORM_EPSILON)
                .init(device),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, config.action_dim).init(device),
            horizon: config.horizon,
            obs_tokens,
        })
    }

    /// The image encoder (`None` for the state-only variant).
    pub fn image_encoder(&self) -> Option<&ImageEncoder<B>> {
        self.image.as_ref()
    }

    /// Replaces the image encoder (a pre-trained one, [`crate::pretrained`]). Fails for a policy
    /// without cameras.
    pub fn with_image_encoder(mut self, encoder: ImageEncoder<B>) -> crate::Result<ChunkPolicy<B>> {
        if self.image.is_none() {
            return Err(crate::PolicyError::Config(
                "a pre-trained image encoder needs a vision policy (--variant vision)".into(),
            ));
        }
        self.image = Some(encoder);
        Ok(self)
    }

    /// Image tokens `[B, cameras · grid², d_model]` of `images` (`[B · cameras, 3, s, s]`).
    fn image_tokens(&self, images: Tensor<B, 4>, batch: usize) -> Option<Tensor<B, 3>> {
        let (enc, proj, cams) = (self.image.as_ref()?, self.image_proj.as_ref()?, self.camera_embed.as_ref()?);
        let t = proj.forward(enc.forward(images)); // [B·C, g², d]
        let [_, cells, d] = t.dims();
        let n_cams = cams.val().dims()[0];
        let t = t.reshape([batch, n_cams, cells, d]) + cams.val().reshape([1, n_cams, 1, d]);
        Some(t.reshape([batch, n_cams * cells, d]))
    }

    /// Pooled image features `[B, cameras · channels]` (each camera's token grid averaged), for
    /// the critic; `None` for the state-only variant.
    pub fn image_features(&self, obs: &ObsBatch<B>) -> Option<Tensor<B, 2>> {
        let enc = self.image.as_ref()?;
        let t = enc.forward(obs.images.clone()?); // [B·C, g², c]
        let [n, _, c] = t.dims();
        let b = obs.len();
        Some(t.mean_dim(1).reshape([b, (n / b.max(1)) * c]))
    }

    /// Predicted chunks `[B, H, action_dim]` in normalised action units.
    pub fn forward(&self, obs: &ObsBatch<B>) -> Tensor<B, 3> {
        self.head.forward(self.query_features(obs))
    }

    /// Chunks `[B, H, action_dim]` from query features (the output of [`ChunkPolicy::query_features`]).
    pub fn head_forward(&self, features: Tensor<B, 3>) -> Tensor<B, 3> {
        self.head.forward(features)
    }

    /// The trunk's normalised outputs at the H action queries, `[B, H, d_model]`: what the chunk
    /// head (and an expressive head on the trunk, [`crate::model::flow`]) reads.
    pub fn query_features(&self, obs: &ObsBatch<B>) -> Tensor<B, 3> {
        let b = obs.len();
        let mut tokens = vec![self.state_proj.forward(obs.state.clone()).unsqueeze_dim::<3>(1)];
        if let (Some(proj), Some(env)) = (&self.env_proj, &obs.env_state) {
            tokens.push(proj.forward(env.clone()).unsqueeze_dim::<3>(1));
        }
        tokens.push(self.words.forward(obs.words.clone()));
        if let Some(images) = &obs.images {
            if let Some(t) = self.image_tokens(images.clone(), b) {
                tokens.push(t);
            }
        }
        tokens.push(self.queries.val().unsqueeze_dim::<3>(0).repeat_dim(0, b));
        let x = Tensor::cat(tokens, 1) + self.positions.val().unsqueeze_dim::<3>(0);
        let y = encode(&self.trunk, x, &obs.pad_mask);
        let q = y.narrow(1, self.obs_tokens, self.horizon);
        self.norm.forward(q)
    }
}

/// The transformer trunk over `x` (`[B, T, d]`, `pad`: `[B, T]`, true at padding): each layer as
/// one fused LibTorch operation on the LibTorch backends (`model::fused_libtorch`),
/// burn's encoder elsewhere.
fn encode<B: Backend>(trunk: &TransformerEncoder<B>, x: Tensor<B, 3>, pad: &Tensor<B, 2, Bool>) -> Tensor<B, 3> {
    #[cfg(feature = "libtorch")]
    {
        let mut h = x.clone();
        let mut fused = true;
        for layer in &trunk.layers {
            match crate::model::fused_libtorch::encoder_layer(layer, &h, pad, LAYER_NORM_EPSILON) {
                Some(y) => h = y,
                None => {
                    fused = false;
                    break;
                }
            }
        }
        if fused {
            return h;
        }
    }
    trunk.forward(TransformerEncoderInput::new(x).mask_pad(pad.clone()))
}
