//! Target networks: θ̄ ← (1 − τ)·θ̄ + τ·θ, parameter by parameter (both modules are visited in
//! the same field order, so no parameter ids are needed).

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
}
