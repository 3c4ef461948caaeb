//! A plain multilayer perceptron: `layers` × (Linear → [LayerNorm] → ReLU), then a linear output.
//! The critic members, the edit policy and the dynamics discriminators are built from it.

use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// ε of the layer norms [`linear_norm_relu`] reads (burn's default, named: the fused LibTorch
/// layer needs it and burn keeps a norm's ε private). Build those norms with it.
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Sizes of an [`Mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input width.
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Output width.
    pub output: usize,
    /// LayerNorm after every hidden linear layer.
    pub layer_norm: bool,
    /// Start the output layer at zero (the MLP outputs 0 until it learns otherwise).
    pub zero_output: bool,
}

impl MlpConfig {
    /// An MLP `input → layers × hidden → output` without LayerNorm.
    pub fn new(input: usize, hidden: usize, layers: usize, output: usize) -> MlpConfig {
        MlpConfig { input, hidden, layers, output, layer_norm: false, zero_output: false }
    }

    /// With LayerNorm after every hidden layer.
    pub fn with_layer_norm(mut self) -> MlpConfig {
        self.layer_norm = true;
        self
    }

    /// With the output layer initialised to zero.
    pub fn with_zero_output(mut self) -> MlpConfig {
        self.zero_output = true;
        self
    }

    /// A freshly initialised MLP.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut hidden = Vec::with_capacity(self.layers);
        let mut norms = Vec::new();
        let mut d_in = self.input;
        for _ in 0..self.layers {
            hidden.push(LinearConfig::new(d_in, self.hidden).init(device));
            if self.layer_norm {
                norms.push(LayerNormConfig::new(self.hidden).with_epsilon(LAYER_NORM_EPSILON).init(device));
            }
            d_in = self.hidden;
        }
        let mut out = LinearConfig::new(d_in, self.output);
        if self.zero_output {
            out = out.with_initializer(Initializer::Zeros);
        }
        crate::train::backend_rng::initialised(Mlp { hidden, norms, out: out.init(device) })
    }
}

/// The network. Field names match the critic members' saved records.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    hidden: Vec<Linear<B>>,
    norms: Vec<LayerNorm<B>>,
    out: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `[B, input]` → `[B, output]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut h = x;
        for (i, lin) in self.hidden.iter().enumerate() {
            h = match self.norms.get(i) {
                Some(norm) => linear_norm_relu(lin, norm, h),
                None => linear_relu(lin, h),
            };
        }
        linear(&self.out, h)
    }

    /// The MLP of the rows `[shared_i, rows_r]`, `[n·m, output]`, where `shared` (`[n, F]`)
    /// holds the first F input features of each group of `m` consecutive rows of `rows`
    /// (`[n·m, input − F]`): the same function as [`Mlp::forward`] of the repeated and
    /// concatenated input, with the shared part of the first layer's product computed once per
    /// group instead of once per row (and its input gradient likewise). A critic scoring `m`
    /// chunks per state uses it with the observation features as `shared`.
    ///
    /// # Panics
    /// When `n` does not divide the rows of `rows` or the widths do not add up to the input.
    pub fn forward_grouped(&self, shared: Tensor<B, 2>, rows: Tensor<B, 2>) -> Tensor<B, 2> {
        let ([n, f], [n_rows, c]) = (shared.dims(), rows.dims());
        let m = if n_rows == n { 1 } else { n_rows / n.max(1) };
        assert_eq!(n * m, n_rows, "forward_grouped: {n} groups do not divide {n_rows} rows");
        let Some(first) = self.hidden.first().filter(|_| m > 1) else {
            let repeated =
                if m > 1 { shared.unsqueeze_dim::<3>(1).repeat_dim(1, m).reshape([n_rows, f]) } else { shared };
            return self.forward(Tensor::cat(vec![repeated, rows], 1));
        };
        assert_eq!(f + c, first.weight.dims()[0], "forward_grouped: {f} + {c} features for the first layer");
        let mut h = match self.norms.first() {
            Some(norm) => grouped_linear_norm_relu(first, norm, shared, rows),
            None => relu(grouped_linear(first, shared, rows)),
        };
        for (i, lin) in self.hidden.iter().enumerate().skip(1) {
            h = match self.norms.get(i) {
                Some(norm) => linear_norm_relu(lin, norm, h),
                None => linear_relu(lin, h),
            };
        }
        linear(&self.out, h)
    }
}

/// `lin` of the rows `[shared_i, rows_r]` (see [`Mlp::forward_grouped`]), `[n·m, out]`.
fn grouped_linear<B: Backend>(lin: &Linear<B>, shared: Tensor<B, 2>, rows: Tensor<B, 2>) -> Tensor<B, 2> {
    let ([n, f], [n_rows, c]) = (shared.dims(), rows.dims());
    let w = lin.weight.val();
    let out = w.dims()[1];
    let per_group = shared.matmul(w.clone().narrow(0, 0, f)).unsqueeze_dim::<3>(1); // [n, 1, out]
    let per_row = rows.matmul(w.narrow(0, f, c)).reshape([n, n_rows / n, out]);
    let h = (per_row + per_group).reshape([n_rows, out]);
    match &lin.bias {
        Some(b) => h + b.val().unsqueeze_dim(0),
        None => h,
    }
}

/// `relu(norm(lin(·)))` of the rows `[shared_i, rows_r]` (see [`Mlp::forward_grouped`]).
fn grouped_linear_norm_relu<B: Backend>(
    lin: &Linear<B>,
    norm: &LayerNorm<B>,
    shared: Tensor<B, 2>,
    rows: Tensor<B, 2>,
) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) =
        crate::model::fused_libtorch::grouped_linear_norm_relu(lin, norm, LAYER_NORM_EPSILON, &shared, &rows)
    {
        return y;
    }
    relu(norm.forward(grouped_linear(lin, shared, rows)))
}

/// `lin(x)`, `[B, in]` → `[B, out]`: one fused operation on the LibTorch backends
/// (`model::fused_libtorch`), burn's module elsewhere.
pub fn linear<B: Backend>(lin: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) = crate::model::fused_libtorch::linear(lin, &x) {
        return y;
    }
    lin.forward(x)
}

/// `relu(lin(x))`, `[B, in]` → `[B, out]`: one fused operation on the LibTorch backends,
/// burn's module elsewhere.
pub fn linear_relu<B: Backend>(lin: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) = crate::model::fused_libtorch::linear_relu_dropout(lin, 0.0, &x) {
        return y;
    }
    relu(lin.forward(x))
}

/// `relu(norm(lin(x)))`, `[B, in]` → `[B, hidden]`: one fused operation on the LibTorch
/// backends (`model::fused_libtorch`), burn's modules elsewhere. `norm` must have been built
/// with ε = [`LAYER_NORM_EPSILON`].
pub fn linear_norm_relu<B: Backend>(lin: &Linear<B>, norm: &LayerNorm<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "libtorch")]
    if let Some(y) = crate::model::fused_libtorch::linear_norm_relu(lin, norm, LAYER_NORM_EPSILON, &x) {
        return y;
    }
    relu(norm.forward(lin.forward(x)))
}

#[cfg(all(test, feature = "libtorch"))]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::LibTorchTrain;

    /// burn's modules, layer by layer: the reference for the fused LibTorch layer.
    fn unfused(mlp: &Mlp<LibTorchTrain>, x: Tensor<LibTorchTrain, 2>) -> Tensor<LibTorchTrain, 2> {
        let mut h = x;
        for (lin, norm) in mlp.hidden.iter().zip(&mlp.norms) {
            h = relu(norm.forward(lin.forward(h)));
        }
        mlp.out.forward(h)
    }

    /// The MLP without LayerNorm (fused `relu(x·W + b)` hidden layers and a fused `addmm`
    /// output on LibTorch) against burn's modules, in value and gradient.
    #[test]
    fn the_fused_plain_mlp_matches_burns_modules_in_value_and_gradient() {
        let dev = Default::default();
        let mlp = MlpConfig::new(12, 32, 2, 3).init::<LibTorchTrain>(&dev);
        let x = Tensor::<LibTorchTrain, 2>::random([16, 12], Distribution::Normal(0.0, 1.0), &dev);
        let target = Tensor::<LibTorchTrain, 2>::random([16, 3], Distribution::Normal(0.0, 1.0), &dev);
        // The LibTorch training backend takes the fused path (else this compares burn with itself).
        assert!(crate::model::fused_libtorch::linear(&mlp.hidden[0], &x).is_some());
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                mlp.forward(x.clone())
            } else {
                let mut h = x.clone();
                for lin in &mlp.hidden {
                    h = relu(lin.forward(h));
                }
                mlp.out.forward(h)
            };
            let grads = (y.clone() - target.clone()).powf_scalar(2.0).sum().backward();
            let flat = |d: burn::tensor::TensorData| d.to_vec::<f32>().unwrap();
            let mut out = vec![flat(y.into_data()), flat(x.grad(&grads).expect("∂x").into_data())];
            for lin in mlp.hidden.iter().chain([&mlp.out]) {
                out.push(flat(lin.weight.grad(&grads).expect("∂W").into_data()));
                out.push(flat(lin.bias.as_ref().and_then(|b| b.grad(&grads)).expect("∂b").into_data()));
            }
            out
        };
        let (fused, reference) = (run(true), run(false));
        assert_eq!(fused.len(), 8);
        assert_same_nonzero(&fused, &reference, "plain MLP");
    }

    /// Every tensor of `got` equals `want`'s within 1e-4 of its largest magnitude and is not all
    /// zero (so the comparison means something).
    fn assert_same_nonzero(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (k, (a, b)) in got.iter().zip(want).enumerate() {
            assert_eq!(a.len(), b.len(), "{what}: tensor {k}");
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-4 * scale, "{what}: tensor {k} differs by {worst} (scale {scale})");
            assert!(a.iter().any(|v| v.abs() > 1e-4), "{what}: tensor {k} is zero");
        }
    }

    /// `forward_grouped` against `forward` of the repeated and concatenated input, in value and
    /// in every gradient (both inputs and the first layer's weight), with and without LayerNorm,
    /// on `B`.
    fn grouped_rows_match_the_repeated_input<B: burn::tensor::backend::AutodiffBackend>() {
        let dev = Default::default();
        let (n, m, f, c) = (5, 7, 4, 9);
        let shared = Tensor::<B, 2>::random([n, f], Distribution::Normal(0.0, 1.0), &dev);
        let rows = Tensor::<B, 2>::random([n * m, c], Distribution::Normal(0.0, 1.0), &dev);
        let target = Tensor::<B, 2>::random([n * m, 2], Distribution::Normal(0.0, 1.0), &dev);
        for norm in [true, false] {
            let config = MlpConfig::new(f + c, 16, 2, 2);
            let mlp = if norm { config.with_layer_norm() } else { config }.init::<B>(&dev);
            let run = |grouped: bool| {
                let (s, r) = (shared.clone().require_grad(), rows.clone().require_grad());
                let y = if grouped {
                    mlp.forward_grouped(s.clone(), r.clone())
                } else {
                    let repeated = s.clone().unsqueeze_dim::<3>(1).repeat_dim(1, m).reshape([n * m, f]);
                    mlp.forward(Tensor::cat(vec![repeated, r.clone()], 1))
                };
                let grads = (y.clone() - target.clone()).powf_scalar(2.0).sum().backward();
                let flat = |d: burn::tensor::TensorData| d.to_vec::<f32>().unwrap();
                vec![
                    flat(y.into_data()),
                    flat(s.grad(&grads).expect("∂shared").into_data()),
                    flat(r.grad(&grads).expect("∂rows").into_data()),
                    flat(mlp.hidden[0].weight.grad(&grads).expect("∂W1").into_data()),
                ]
            };
            assert_same_nonzero(&run(true), &run(false), &format!("grouped rows, norm {norm}"));
        }
        // An MLP without hidden layers takes the plain path.
        let mlp = MlpConfig::new(f + c, 16, 0, 2).init::<B>(&dev);
        assert_eq!(mlp.forward_grouped(shared, rows).dims(), [n * m, 2]);
    }

    #[test]
    fn grouped_rows_give_the_values_and_gradients_of_the_repeated_input_on_libtorch() {
        grouped_rows_match_the_repeated_input::<LibTorchTrain>();
    }

    #[test]
    fn grouped_rows_give_the_values_and_gradients_of_the_repeated_input_on_flex() {
        grouped_rows_match_the_repeated_input::<crate::CpuTrain>();
    }

    #[test]
    #[should_panic(expected = "do not divide")]
    fn grouped_rows_that_do_not_fill_the_groups_are_refused() {
        let dev = Default::default();
        let mlp = MlpConfig::new(6, 8, 1, 1).init::<LibTorchTrain>(&dev);
        let shared = Tensor::<LibTorchTrain, 2>::zeros([3, 2], &dev);
        let _ = mlp.forward_grouped(shared, Tensor::zeros([7, 4], &dev));
    }

    #[test]
    fn the_fused_libtorch_layer_matches_burns_modules_in_value_and_gradient() {
        let dev = Default::default();
        let mlp = MlpConfig::new(12, 32, 2, 3).with_layer_norm().init::<LibTorchTrain>(&dev);
        let x = Tensor::<LibTorchTrain, 2>::random([16, 12], Distribution::Normal(0.0, 1.0), &dev);
        let target = Tensor::<LibTorchTrain, 2>::random([16, 3], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused { mlp.forward(x.clone()) } else { unfused(&mlp, x.clone()) };
            let grads = (y.clone() - target.clone()).powf_scalar(2.0).sum().backward();
            let g = |t: Option<Tensor<crate::LibTorch, 2>>| t.expect("a gradient").into_data().to_vec::<f32>().unwrap();
            let g1 =
                |t: Option<Tensor<crate::LibTorch, 1>>| t.expect("a gradient").into_data().to_vec::<f32>().unwrap();
            let mut out = vec![y.into_data().to_vec::<f32>().unwrap(), g(x.grad(&grads))];
            for (lin, norm) in mlp.hidden.iter().zip(&mlp.norms) {
                out.push(g(lin.weight.grad(&grads)));
                out.push(g1(lin.bias.as_ref().and_then(|b| b.grad(&grads))));
                out.push(g1(norm.gamma.grad(&grads)));
                out.push(g1(norm.beta.as_ref().and_then(|b| b.grad(&grads))));
            }
            out
        };
        // The LibTorch training backend takes the fused path (else this compares burn with itself).
        assert!(crate::model::fused_libtorch::linear_norm_relu(&mlp.hidden[0], &mlp.norms[0], LAYER_NORM_EPSILON, &x)
            .is_some());
        let (fused, reference) = (run(true), run(false));
        let names = ["output", "∂x", "∂W1", "∂b1", "∂γ1", "∂β1", "∂W2", "∂b2", "∂γ2", "∂β2"];
        for ((name, a), b) in names.iter().zip(&fused).zip(&reference) {
            assert_eq!(a.len(), b.len(), "{name}");
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-4 * scale, "{name}: differs by {worst} (scale {scale})");
        }
        // The gradients are not all zero (the comparison above means something).
        assert!(fused[2].iter().any(|v| v.abs() > 1e-4), "∂W1 is zero");
    }
}
