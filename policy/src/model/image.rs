//! The image encoder: a small ResNet shared by all cameras. Three stages, each a stride-2 3×3
//! convolution (GroupNorm, ReLU) and a residual block, then adaptive average pooling to a
//! `grid × grid` map; every cell becomes one transformer token. On the LibTorch backends each
//! stage runs as one fused LibTorch operation (`model::fused_libtorch::image_stage`).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::config::ImageEncoderConfig;

fn conv3(c_in: usize, c_out: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
}

fn group_norm<B: Backend>(channels: usize, device: &B::Device) -> GroupNorm<B> {
    GroupNormConfig::new(8.min(channels), channels).init(device)
}

/// `norm` applied to `x` (`[N, C, H, W]`): the arithmetic of burn's `GroupNorm::forward`, op
/// for op, with the per-channel scale and shift laid out as `[N, C, 1]` rows over `[N, C, H·W]`.
/// burn's own layout (`[1, C, 1, 1]` broadcast over all four dims) matches neither broadcast
/// pattern the CPU backend's vectorised kernels accept, so every scale, shift and their
/// gradients went through its element-by-element strided iterator; the row layout takes the
/// per-row-scalar kernel. Same parameters, same forward values.
fn group_norm_forward<B: Backend>(norm: &GroupNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let hidden = c / norm.num_groups * h * w;
    let x = x.reshape([n, norm.num_groups, hidden]);
    let mean = x.clone().sum_dim(2) / hidden as f64;
    let x = x.sub(mean);
    let var = x.clone().square().sum_dim(2) / hidden as f64;
    let x = x.div(var.add_scalar(norm.epsilon).sqrt()).reshape([n, c, h * w]);
    let x = match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) if norm.affine => {
            let rows = |p: Tensor<B, 1>| p.reshape([1, c, 1]).repeat_dim(0, n);
            x * rows(gamma.val()) + rows(beta.val())
        }
        _ => x,
    };
    x.reshape([n, c, h, w])
}

/// Two 3×3 convolutions with a skip connection.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    pub(crate) conv1: Conv2d<B>,
    pub(crate) norm1: GroupNorm<B>,
    pub(crate) conv2: Conv2d<B>,
    pub(crate) norm2: GroupNorm<B>,
}

impl<B: Backend> ResBlock<B> {
    fn new(channels: usize, device: &B::Device) -> ResBlock<B> {
        ResBlock {
            conv1: conv3(channels, channels, 1).init(device),
            norm1: group_norm(channels, device),
            conv2: conv3(channels, channels, 1).init(device),
            norm2: group_norm(channels, device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = relu(group_norm_forward(&self.norm1, self.conv1.forward(x.clone())));
        let h = group_norm_forward(&self.norm2, self.conv2.forward(h));
        relu(h + x)
    }
}

/// One downsampling stage.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    pub(crate) down: Conv2d<B>,
    pub(crate) norm: GroupNorm<B>,
    pub(crate) block: ResBlock<B>,
}

impl<B: Backend> Stage<B> {
    /// `[N, C_in, H, W]` → `[N, C, H/2, W/2]` (rounded up).
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        #[cfg(feature = "libtorch")]
        if let Some(y) = crate::model::fused_libtorch::image_stage(self, &x) {
            return y;
        }
        self.forward_burn(x)
    }

    /// [`Stage::forward`] by burn's modules on every backend.
    pub(crate) fn forward_burn(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = relu(group_norm_forward(&self.norm, self.down.forward(x)));
        self.block.forward(x)
    }
}

/// The per-camera image encoder.
#[derive(Module, Debug)]
pub struct ImageEncoder<B: Backend> {
    /// The downsampling stages, input side first.
    pub(crate) stages: Vec<Stage<B>>,
    pool: AdaptiveAvgPool2d,
    /// Output channels per token.
    pub channels: usize,
}

impl<B: Backend> ImageEncoder<B> {
    /// Builds the encoder described by `config`.
    pub fn new(config: &ImageEncoderConfig, device: &B::Device) -> ImageEncoder<B> {
        let mut c_in = 3;
        let mut stages = Vec::new();
        for &c in &config.channels {
            stages.push(Stage {
                down: conv3(c_in, c, 2).init(device),
                norm: group_norm(c, device),
                block: ResBlock::new(c, device),
            });
            c_in = c;
        }
        crate::train::backend_rng::initialised(ImageEncoder {
            stages,
            pool: AdaptiveAvgPool2dConfig::new([config.grid, config.grid]).init(),
            channels: c_in,
        })
    }

    /// `images`: `[N, 3, side, side]`, normalised → tokens `[N, grid², channels]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let mut x = images;
        for s in &self.stages {
            x = s.forward(x);
        }
        let x = self.pool.forward(x); // [N, C, g, g]
        let [n, c, g1, g2] = x.dims();
        x.reshape([n, c, g1 * g2]).swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;
    use crate::CpuTrain;

    /// The row-laid-out GroupNorm gives burn's `GroupNorm::forward` values, and the same
    /// gradients for the input, scale and shift (up to summation order).
    #[test]
    fn group_norm_forward_matches_burns_group_norm() {
        let device = Default::default();
        let _rng = crate::train::backend_rng::seeded::<CpuTrain>(&device, 7);
        let mut norm: GroupNorm<CpuTrain> = group_norm(16, &device);
        // Non-trivial scale and shift, so a misplaced channel would show.
        let random = |mean: f64| Param::from_tensor(Tensor::random([16], Distribution::Normal(mean, 0.5), &device));
        norm.gamma = Some(random(1.0));
        norm.beta = Some(random(0.0));
        let x = Tensor::<CpuTrain, 4>::random([3, 16, 5, 6], Distribution::Normal(0.5, 2.0), &device);
        let weights = Tensor::<CpuTrain, 4>::random([3, 16, 5, 6], Distribution::Normal(0.0, 1.0), &device);

        let grads_of = |y: Tensor<CpuTrain, 4>, x: &Tensor<CpuTrain, 4>| {
            let grads = (y * weights.clone()).sum().backward();
            let of = |p: &Option<Param<Tensor<CpuTrain, 1>>>| {
                p.as_ref().and_then(|p| p.val().grad(&grads)).map(|g| g.into_data())
            };
            (x.grad(&grads).map(|g| g.into_data()), of(&norm.gamma), of(&norm.beta))
        };
        let x_ours = x.clone().require_grad();
        let ours = group_norm_forward(&norm, x_ours.clone());
        let x_burn = x.require_grad();
        let burns = norm.forward(x_burn.clone());
        assert_eq!(ours.to_data(), burns.to_data(), "forward values differ");

        let (ours_dx, ours_dg, ours_db) = grads_of(ours, &x_ours);
        let (burn_dx, burn_dg, burn_db) = grads_of(burns, &x_burn);
        for (name, a, b) in [("input", ours_dx, burn_dx), ("gamma", ours_dg, burn_dg), ("beta", ours_db, burn_db)] {
            let (a, b) = (a.expect(name), b.expect(name));
            a.assert_approx_eq::<f32>(&b, Tolerance::rel_abs(1e-5, 1e-5));
        }
    }
}
