//! Checkpoint folders.
//!
//! ```text
//! runs/NAME/policy.json        PolicySpec: config, normalisation, vocabulary, action meaning
//! runs/NAME/model.mpk          the policy to use (best periodic evaluation, else the last step)
//! runs/NAME/critic.mpk         its critic (CO-RFT)
//! runs/NAME/metrics.jsonl      one JSON object per logged step / evaluation
//! runs/NAME/resume/            the last step: model, critic, target critic, optimisers, state.json
//! ```
//! Weights are burn `NamedMpk` records at full precision. Loading rebuilds the module from
//! `policy.json` and checks the record's parameter count against it, so an edited or mismatched
//! config is reported instead of failing later inside a matrix multiply.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

use crate::error::{PolicyError, Result};

/// The recorder used for every weight file.
pub fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Saves `module` to `path` (`.mpk` is added by the recorder; pass the stem).
pub fn save_module<B: Backend, M: Module<B>>(module: &M, stem: &Path) -> Result<()> {
    module
        .clone()
        .save_file(stem.to_path_buf(), &recorder())
        .map_err(|e| PolicyError::checkpoint(stem.with_extension("mpk"), format!("cannot save: {e}")))
}

/// Loads `stem.mpk` into `fresh` (a module built from the spec) and checks it has the same
/// number of parameters, naming `what` in errors.
pub fn load_module<B: Backend, M: Module<B>>(fresh: M, stem: &Path, what: &str, device: &B::Device) -> Result<M> {
    let path = stem.with_extension("mpk");
    if !path.exists() {
        return Err(PolicyError::checkpoint(&path, format!("missing {what} weights")));
    }
    let expected = fresh.num_params();
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fresh.load_file(stem.to_path_buf(), &recorder(), device)
    }))
    .map_err(|_| PolicyError::checkpoint(&path, format!("{what} weights do not fit the architecture in policy.json")))?
    .map_err(|e| {
        PolicyError::checkpoint(&path, format!("{what} weights do not match the architecture in policy.json: {e}"))
    })?;
    let got = loaded.num_params();
    if got != expected {
        return Err(PolicyError::checkpoint(
            &path,
            format!(
                "{what} weights hold {got} parameters but policy.json describes a model with {expected}; \
                 the config does not match these weights (edited policy.json, or files from two runs?)"
            ),
        ));
    }
    Ok(loaded)
}
