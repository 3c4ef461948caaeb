//! The ICVF network: the policy's image encoder φ (shared by s, g and z, so its weights transfer
//! to a policy), then an ensemble of multilinear heads
//! V(s, g, z) = Σ_k [A·(T(ψ(z)) ⊙ φ(s))]_k · [B·(T(ψ(z)) ⊙ ψ(g))]_k.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use policy::model::image::ImageEncoder;
use policy::model::mlp::{linear_norm_relu, LAYER_NORM_EPSILON};
use policy::ImageEncoderConfig;
use serde::{Deserialize, Serialize};

/// ICVF sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IcvfConfig {
    /// The image encoder (the policy's architecture; one camera).
    pub encoder: ImageEncoderConfig,
    /// Width of φ, ψ, T and the bilinear maps (256 in the paper).
    pub hidden: usize,
    /// Ensemble members (2 in the paper).
    pub ensemble: usize,
}

impl IcvfConfig {
    /// The paper's heads on the policy's default encoder at `size` px.
    pub fn new(size: usize) -> IcvfConfig {
        IcvfConfig { encoder: ImageEncoderConfig::new(size, vec!["frames".into()]), hidden: 256, ensemble: 2 }
    }

    /// Width of the flattened encoder output.
    pub fn feature_dim(&self) -> usize {
        self.encoder.grid * self.encoder.grid * self.encoder.channels[2]
    }

    /// Builds the network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Icvf<B> {
        let mlp = |i: usize, o: usize| Mlp {
            l1: LinearConfig::new(i, self.hidden).init(device),
            n1: LayerNormConfig::new(self.hidden).with_epsilon(LAYER_NORM_EPSILON).init(device),
            l2: LinearConfig::new(self.hidden, o).init(device),
        };
        let f = self.feature_dim();
        policy::train::backend_rng::initialised(Icvf {
            encoder: ImageEncoder::new(&self.encoder, device),
            heads: (0..self.ensemble)
                .map(|_| MultilinearHead {
                    phi: mlp(f, self.hidden),
                    psi: mlp(f, self.hidden),
                    t: mlp(self.hidden, self.hidden),
                    a: LinearConfig::new(self.hidden, self.hidden).init(device),
                    b: LinearConfig::new(self.hidden, self.hidden).init(device),
                })
                .collect(),
        })
    }
}

/// Linear → LayerNorm → ReLU → Linear.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    l1: Linear<B>,
    n1: LayerNorm<B>,
    l2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.l2.forward(linear_norm_relu(&self.l1, &self.n1, x))
    }
}

/// One ensemble member.
#[derive(Module, Debug)]
pub struct MultilinearHead<B: Backend> {
    phi: Mlp<B>,
    psi: Mlp<B>,
    t: Mlp<B>,
    a: Linear<B>,
    b: Linear<B>,
}

impl<B: Backend> MultilinearHead<B> {
    /// V(s, g, z) `[N]` from encoder features `[N, F]` of s, g and z.
    fn value(&self, fs: Tensor<B, 2>, fg: Tensor<B, 2>, fz: Tensor<B, 2>) -> Tensor<B, 1> {
        let tz = self.t.forward(self.psi.forward(fz));
        let phi = self.a.forward(tz.clone() * self.phi.forward(fs));
        let psi = self.b.forward(tz * self.psi.forward(fg));
        (phi * psi).sum_dim(1).squeeze_dim::<1>(1)
    }
}

/// Encoder + multilinear ensemble.
#[derive(Module, Debug)]
pub struct Icvf<B: Backend> {
    /// φ's convolutional trunk: the part a policy reuses.
    pub encoder: ImageEncoder<B>,
    heads: Vec<MultilinearHead<B>>,
}

impl<B: Backend> Icvf<B> {
    /// Flattened encoder features `[N, F]` of normalised images `[N, 3, S, S]`.
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.encoder.forward(images).flatten::<2>(1, 2)
    }

    /// V_i(s, g, z) for every member: `[N, E]`.
    pub fn values(&self, fs: Tensor<B, 2>, fg: Tensor<B, 2>, fz: Tensor<B, 2>) -> Tensor<B, 2> {
        let v: Vec<Tensor<B, 2>> =
            self.heads.iter().map(|h| h.value(fs.clone(), fg.clone(), fz.clone()).unsqueeze_dim::<2>(1)).collect();
        Tensor::cat(v, 1)
    }
}
