//! Adam (Kingma & Ba 2015, Algorithm 1), the optimiser of every model the project trains, with
//! burn's defaults (β₁ 0.9, β₂ 0.999, ε 1e-5, no weight decay) and burn's state record
//! ([`AdamState`]), so optimiser checkpoints are those of [`burn::optim::Adam`].
//!
//! On the LibTorch backend a step updates the parameter and both moments in place with LibTorch's
//! kernels: `m ← m + (1 − β₁)(g − m)`, `v ← β₂ v + (1 − β₂) g²`, then
//! `θ ← θ − lr · √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε √(1 − β₂ᵗ))`, seven passes over the
//! parameter's memory where burn's element-wise operations make thirteen, each into a new
//! buffer (for a vision policy of 3.3 M parameters, a few percent of a training step). A tensor
//! burn shares (a target network cloned from its online network, a moment a checkpoint still
//! holds) is never written: that step writes new buffers, as burn would. Other backends take
//! burn's own [`burn::optim::Adam`], unchanged.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::LearningRate;
use burn::optim::{AdamConfig, AdamState, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Adam with burn's defaults; see the module documentation.
#[derive(Clone)]
// β₁, β₂ and ε are read by the LibTorch step only; burn's `Adam` holds its own copy.
#[cfg_attr(not(feature = "libtorch"), allow(dead_code))]
pub struct Adam {
    burn: burn::optim::Adam,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

/// The optimiser of module `M` on backend `B`.
pub type AdamOptimizer<M, B> = OptimizerAdaptor<Adam, M, B>;

/// β₁, β₂ and ε: burn's defaults.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

impl Default for Adam {
    fn default() -> Adam {
        let config = AdamConfig::new().with_beta_1(BETA_1).with_beta_2(BETA_2).with_epsilon(EPSILON);
        Adam { burn: config.build(), beta_1: BETA_1, beta_2: BETA_2, epsilon: EPSILON }
    }
}

/// A fresh Adam optimiser (no state yet) for module `M`.
pub fn adam<B: AutodiffBackend, M: AutodiffModule<B>>() -> AdamOptimizer<M, B> {
    OptimizerAdaptor::from(Adam::default())
}

impl<B: Backend> SimpleOptimizer<B> for Adam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<AdamState<B, D>>,
    ) -> (Tensor<B, D>, Option<AdamState<B, D>>) {
        #[cfg(feature = "libtorch")]
        let (tensor, grad, state) = match libtorch::step(self, lr, tensor, grad, state) {
            Ok(done) => return done,
            Err(inputs) => inputs,
        };
        SimpleOptimizer::<B>::step(&self.burn, lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: AdamState<B, D>, device: &B::Device) -> AdamState<B, D> {
        <burn::optim::Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(feature = "libtorch")]
mod libtorch {
    use std::any::Any;

    use burn::backend::libtorch::TchTensor;
    use burn::optim::LearningRate;
    use burn::optim::{AdamState, AdaptiveMomentumState};
    use burn::prelude::*;
    use burn::tensor::TensorPrimitive;

    use super::Adam;
    use crate::LibTorch;

    /// A step's inputs, given back when `B` is not LibTorch.
    type Inputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<AdamState<B, D>>);

    /// `value` as a `T` when it is one (`B` is LibTorch), else `value` back.
    fn cast<S: 'static, T: 'static>(value: S) -> Result<T, S> {
        match (Box::new(value) as Box<dyn Any>).downcast::<T>() {
            Ok(t) => Ok(*t),
            Err(any) => Err(*any.downcast::<S>().expect("the value's own type")),
        }
    }

    /// The in-place LibTorch step when `B` is LibTorch; the inputs back otherwise.
    #[allow(clippy::type_complexity)]
    pub(super) fn step<B: Backend, const D: usize>(
        adam: &Adam,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<AdamState<B, D>>,
    ) -> Result<(Tensor<B, D>, Option<AdamState<B, D>>), Inputs<B, D>> {
        let inputs: Inputs<LibTorch, D> = cast((tensor, grad, state))?;
        let (tensor, state) = torch_step(adam, lr, inputs);
        Ok(cast((tensor, Some(state))).unwrap_or_else(|_| unreachable!("B is LibTorch")))
    }

    fn torch_step<const D: usize>(
        adam: &Adam,
        lr: LearningRate,
        (tensor, grad, state): Inputs<LibTorch, D>,
    ) -> (Tensor<LibTorch, D>, AdamState<LibTorch, D>) {
        let (b1, b2) = (f64::from(adam.beta_1), f64::from(adam.beta_2));
        let g = grad.into_primitive().tensor().tensor;
        let g2 = g.square();
        let (time, m, v) = match state {
            Some(s) => {
                let momentum = s.momentum;
                let mut m = momentum.moment_1.into_primitive().tensor();
                let mut v = momentum.moment_2.into_primitive().tensor();
                // m + (1 − β₁)(g − m) = β₁ m + (1 − β₁) g; the same for v and g².
                let m =
                    m.mut_ops(|m| m.lerp_(&g, 1.0 - b1)).unwrap_or_else(|| TchTensor::new(m.tensor.lerp(&g, 1.0 - b1)));
                let v = v
                    .mut_ops(|v| v.lerp_(&g2, 1.0 - b2))
                    .unwrap_or_else(|| TchTensor::new(v.tensor.lerp(&g2, 1.0 - b2)));
                (momentum.time + 1, m, v)
            }
            None => (1, TchTensor::new(&g * (1.0 - b1)), TchTensor::new(g2 * (1.0 - b2))),
        };
        let t = time as i32;
        let bias_2 = (1.0 - adam.beta_2.powi(t)).sqrt();
        let step_size = lr * f64::from(bias_2 / (1.0 - adam.beta_1.powi(t)));
        let mut param = tensor.into_primitive().tensor();
        if step_size != 0.0 {
            // θ − step · m / (√v + ε′) = θ + m / ((√v + ε′) · (−1/step)).
            let mut denominator = v.tensor.sqrt();
            let _ = denominator.g_add_scalar_(f64::from(adam.epsilon * bias_2));
            let _ = denominator.g_mul_scalar_(-1.0 / step_size);
            param = param
                .mut_ops(|p| p.addcdiv_(&m.tensor, &denominator))
                .unwrap_or_else(|| TchTensor::new(param.tensor.addcdiv(&m.tensor, &denominator)));
        }
        let float = |t| Tensor::<LibTorch, D>::from_primitive(TensorPrimitive::Float(t));
        let momentum = AdaptiveMomentumState::new(time, float(m), float(v));
        (float(param), AdamState::new(momentum))
    }
}

#[cfg(all(test, feature = "libtorch"))]
mod tests {
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, Optimizer};
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::Distribution;

    use super::*;
    use crate::LibTorchTrain;

    type B = LibTorchTrain;
    type BurnAdam = OptimizerAdaptor<burn::optim::Adam, Linear<B>, B>;

    fn flat<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// One gradient of a squared-error loss of `lin` on a fixed batch.
    fn grads(lin: &Linear<B>, x: &Tensor<B, 2>, y: &Tensor<B, 2>) -> GradientsParams {
        let loss = (lin.forward(x.clone()) - y.clone()).powf_scalar(2.0).mean();
        GradientsParams::from_grads(loss.backward(), lin)
    }

    /// A copy of `lin` with parameters of its own (a module's clone shares its parameters'
    /// autodiff nodes, which two separate training runs do not).
    fn copy(lin: &Linear<B>) -> Linear<B> {
        let fresh = |t: Tensor<B, 2>| Param::from_tensor(Tensor::from_data(t.into_data(), &Default::default()));
        let fresh_1 = |t: Tensor<B, 1>| Param::from_tensor(Tensor::from_data(t.into_data(), &Default::default()));
        Linear { weight: fresh(lin.weight.val()), bias: lin.bias.as_ref().map(|b| fresh_1(b.val())) }
    }

    fn setup() -> (Linear<B>, Tensor<B, 2>, Tensor<B, 2>) {
        let dev = Default::default();
        let lin = LinearConfig::new(6, 4).init::<B>(&dev);
        // Parameters initialise lazily, on first use: clones made before would draw their own.
        let _ = (lin.weight.val(), lin.bias.as_ref().map(Param::val));
        let x = Tensor::<B, 2>::random([32, 6], Distribution::Normal(0.0, 1.0), &dev);
        let y = Tensor::<B, 2>::random([32, 4], Distribution::Normal(0.0, 1.0), &dev);
        (lin, x, y)
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        let worst = a.iter().zip(b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(worst <= 1e-6, "{what}: differs by {worst}");
    }

    #[test]
    fn the_libtorch_step_follows_burns_adam_and_writes_no_shared_tensor() {
        let (start, x, y) = setup();
        let before = flat(start.weight.val());
        let (mut ours, mut theirs) = (start.clone(), copy(&start));
        let (mut opt_ours, mut opt_theirs) = (adam::<B, Linear<B>>(), AdamConfig::new().init::<B, Linear<B>>());
        let address = |lin: &Linear<B>| lin.weight.val().inner().into_primitive().tensor().tensor.data_ptr() as usize;
        for step in 0..5 {
            let lr = 1e-2 * (step + 1) as f64;
            let (g, was) = (grads(&ours, &x, &y), address(&ours));
            ours = opt_ours.step(lr, ours, g);
            // From the second step on the parameter is the optimiser's alone (moved in, no
            // clone of it alive): updated in place.
            assert_eq!(address(&ours) == was, step > 0, "in place at step {step}");
            theirs = opt_theirs.step(lr, theirs.clone(), grads(&theirs, &x, &y));
            assert_close(&flat(ours.weight.val()), &flat(theirs.weight.val()), &format!("W after step {step}"));
        }
        // The parameters moved (by about lr per step, Adam's step size)...
        let moved = flat(ours.weight.val()).iter().zip(&before).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(moved > 0.05, "W moved by {moved} only");
        // ...and the module they were cloned from (a target network's situation) did not.
        assert_eq!(flat(start.weight.val()), before, "a clone of the parameters was written in place");
    }

    #[test]
    fn the_optimiser_state_is_burns_adam_record() {
        let (lin, x, y) = setup();
        let mut ours = adam::<B, Linear<B>>();
        let lin = ours.step(1e-2, lin.clone(), grads(&lin, &x, &y));
        // Saved by this Adam, loaded by burn's: both take the same next step.
        let bytes = BinBytesRecorder::<FullPrecisionSettings>::new().record(ours.to_record(), ()).unwrap();
        let record = BinBytesRecorder::<FullPrecisionSettings>::new().load(bytes, &Default::default()).unwrap();
        let mut theirs: BurnAdam = AdamConfig::new().init::<B, Linear<B>>().load_record(record);
        let a = ours.step(1e-2, lin.clone(), grads(&lin, &x, &y));
        let b = theirs.step(1e-2, lin.clone(), grads(&lin, &x, &y));
        assert_close(&flat(a.weight.val()), &flat(b.weight.val()), "W after a resumed step");
        assert_close(&flat(a.bias.unwrap().val()), &flat(b.bias.unwrap().val()), "b after a resumed step");
    }
}
