//! Exponential moving averages of weights, parameter by parameter (both modules are visited in
//! the same field order, so no parameter ids are needed):
//!
//! - target networks ([`soft_update`]): θ̄ ← (1 − τ)·θ̄ + τ·θ after every critic update;
//! - the averaged policy a run evaluates and saves ([`WeightAverage`], Polyak averaging as in
//!   diffusion policy's and LeRobot's trainers): after update t,
//!   θ̄ ← d_t·θ̄ + (1 − d_t)·θ with d_t = min(d, (1 + t)/(10 + t)), the warm-up of TensorFlow's
//!   `ExponentialMovingAverage(num_updates)`, so the random initial weights are forgotten fast.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

struct Collect<B: Backend> {
    params: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params.push(param.val().flatten::<1>(0, D - 1));
    }
}

struct Blend<B: Backend> {
    online: std::vec::IntoIter<Tensor<B, 1>>,
    tau: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, target, mapper) = param.consume();
        let blended = match self.online.next() {
            Some(online) => {
                let shape = target.shape();
                target.mul_scalar(1.0 - self.tau) + online.reshape(shape).mul_scalar(self.tau)
            }
            None => target,
        };
        Param::from_mapped_value(id, blended, mapper)
    }
}

/// Moves `target` a fraction `tau` towards `online` (same architecture).
pub fn soft_update<B: Backend, M: Module<B>>(target: M, online: &M, tau: f64) -> M {
    let mut collect = Collect { params: Vec::new() };
    online.visit(&mut collect);
    target.map(&mut Blend { online: collect.params.into_iter(), tau })
}

/// The exponential moving average of a module's weights over a run (see the module docs).
#[derive(Clone, Debug)]
pub struct WeightAverage<M> {
    /// Largest decay d (e.g. 0.999: an average over roughly the last 1000 updates).
    decay: f64,
    average: Option<M>,
}

impl<M> WeightAverage<M> {
    /// An empty average with decay `decay` ∈ [0, 1).
    pub fn new(decay: f64) -> WeightAverage<M> {
        WeightAverage { decay: decay.clamp(0.0, 0.999_999), average: None }
    }

    /// The decay d_t after update `step` (0-based).
    pub fn decay_at(&self, step: u64) -> f64 {
        self.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }

    /// The averaged weights (`None` before the first update).
    pub fn get(&self) -> Option<&M> {
        self.average.as_ref()
    }

    /// Replaces the average (a resumed run's).
    pub fn set(&mut self, average: M) {
        self.average = Some(average);
    }
}

impl<M> WeightAverage<M> {
    /// Folds in `online` after update `step` (0-based); the first call copies it.
    pub fn update<B: Backend>(&mut self, online: M, step: u64)
    where
        M: Module<B>,
    {
        let d = self.decay_at(step);
        self.average = Some(match self.average.take() {
            Some(avg) => soft_update(avg, &online, 1.0 - d),
            None => online,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use burn::nn::LinearConfig;

    #[test]
    fn blends_every_parameter() {
        let device = Default::default();
        let _rng = crate::train::backend_rng::exclusive();
        let a = LinearConfig::new(2, 1).init::<Cpu>(&device);
        let b = LinearConfig::new(2, 1).init::<Cpu>(&device);
        let wa = crate::batch::to_vec(a.weight.val());
        let wb = crate::batch::to_vec(b.weight.val());
        let c = soft_update(a, &b, 0.25);
        let wc = crate::batch::to_vec(c.weight.val());
        for k in 0..2 {
            assert!((wc[k] - (0.75 * wa[k] + 0.25 * wb[k])).abs() < 1e-6);
        }
    }

    /// Two updates by hand: the first copies, the second blends with d_1 = min(0.9, 2/11).
    #[test]
    fn weight_average_warms_up_its_decay() {
        let device = Default::default();
        let _rng = crate::train::backend_rng::exclusive();
        let a = LinearConfig::new(2, 1).init::<Cpu>(&device);
        let b = LinearConfig::new(2, 1).init::<Cpu>(&device);
        let (wa, wb) = (crate::batch::to_vec(a.weight.val()), crate::batch::to_vec(b.weight.val()));
        let mut avg = WeightAverage::new(0.9);
        avg.update(a, 0);
        avg.update(b, 1);
        let d = 2.0 / 11.0;
        assert!((avg.decay_at(1) - d).abs() < 1e-12 && (avg.decay_at(10_000) - 0.9).abs() < 1e-12);
        let w = crate::batch::to_vec(avg.get().expect("average").weight.val());
        for k in 0..2 {
            let expected = d * f64::from(wa[k]) + (1.0 - d) * f64::from(wb[k]);
            assert!((f64::from(w[k]) - expected).abs() < 1e-6, "{} vs {expected}", w[k]);
        }
    }
}
