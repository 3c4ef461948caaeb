//! A loaded policy for acting: the model on a non-autodiff backend plus its spec. Used by
//! evaluation and by the policy node.

use std::path::Path;

use burn::prelude::*;

use crate::batch::{to_vec, HostObs};
use crate::checkpoint::load_module;
use crate::error::Result;
use crate::features::RawObs;
use crate::model::ChunkPolicy;
use crate::spec::PolicySpec;

/// File stem of the policy weights in a checkpoint folder.
pub const MODEL_STEM: &str = "model";

/// A policy ready to act.
#[derive(Clone, Debug)]
pub struct Policy<B: Backend> {
    /// Its description.
    pub spec: PolicySpec,
    /// The network.
    pub model: ChunkPolicy<B>,
    /// Where it runs.
    pub device: B::Device,
}

impl<B: Backend> Policy<B> {
    /// Loads `dir/policy.json` and `dir/model.mpk`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Policy<B>> {
        let spec = PolicySpec::load(dir)?;
        let fresh = ChunkPolicy::new(&spec.config, device);
        let model = load_module(fresh, &dir.join(MODEL_STEM), "policy", device)?;
        Ok(Policy { spec, model, device: device.clone() })
    }

    /// Action chunks in raw units for a batch of observations: one `H × D` row-major vector per
    /// observation (normalised outputs are clamped to the training range).
    pub fn act(&self, observations: &[RawObs]) -> Result<Vec<Vec<f32>>> {
        let batch = HostObs::batch_of::<B>(&self.spec, observations, &self.device)?;
        let mut values = to_vec(self.model.forward(&batch));
        self.spec.normalizer.action.invert(&mut values);
        let per = self.spec.config.horizon * self.spec.config.action_dim;
        Ok(values.chunks(per).map(<[f32]>::to_vec).collect())
    }
}
