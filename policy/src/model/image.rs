//! The image encoder: a small ResNet shared by all cameras. Three stages, each a stride-2 3×3
//! convolution (GroupNorm, ReLU) and a residual block, then adaptive average pooling to a
//! `grid × grid` map; every cell becomes one transformer token.

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

/// Two 3×3 convolutions with a skip connection.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    conv1: Conv2d<B>,
    norm1: GroupNorm<B>,
    conv2: Conv2d<B>,
    norm2: GroupNorm<B>,
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
        let h = relu(self.norm1.forward(self.conv1.forward(x.clone())));
        let h = self.norm2.forward(self.conv2.forward(h));
        relu(h + x)
    }
}

/// One downsampling stage.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    down: Conv2d<B>,
    norm: GroupNorm<B>,
    block: ResBlock<B>,
}

/// The per-camera image encoder.
#[derive(Module, Debug)]
pub struct ImageEncoder<B: Backend> {
    stages: Vec<Stage<B>>,
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
            x = relu(s.norm.forward(s.down.forward(x)));
            x = s.block.forward(x);
        }
        let x = self.pool.forward(x); // [N, C, g, g]
        let [n, c, g1, g2] = x.dims();
        x.reshape([n, c, g1 * g2]).swap_dims(1, 2)
    }
}
