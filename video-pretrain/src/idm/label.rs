//! Proxy labels: the IDM's clipped mean action for every frame of a dataset, written as a new
//! dataset with `action.is_proxy` marks ([`dataset::relabel`]).
//!
//! When the dataset is the one the IDM was trained on, its labelled episodes keep their recorded
//! actions (marked recorded) and only the others get proxy labels: SS-ORL's true + proxy set.
//! When proxied frames also carry recorded actions (an experiment, or a check on a user's own
//! data), the report gives the IDM's error on them: its held-out action error.

use std::path::Path;

use burn::prelude::*;
use dataset::relabel::{write_relabelled, Relabel};
use dataset::Dataset;
use serde::{Deserialize, Serialize};

use super::data::inputs;
use super::model::Idm;
use super::train::{IdmError, IdmSpec};

/// What labelling did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelReport {
    /// Episodes in the dataset.
    pub episodes: usize,
    /// Frames in the dataset.
    pub frames: usize,
    /// Episodes that kept their recorded actions.
    pub kept_episodes: usize,
    /// Frames given proxy labels.
    pub proxy_frames: usize,
    /// RMS error of proxy against recorded actions on proxied frames, per component in
    /// normalised units ([−1, 1] spans each component's recorded range); `None` when the
    /// dataset has no recorded actions.
    pub proxy_rmse: Option<f64>,
    /// The same, in raw action units, per component.
    pub proxy_rmse_raw: Option<Vec<f64>>,
}

fn same_path(a: &Path, b: &str) -> bool {
    a.canonicalize().is_ok_and(|p| p == Path::new(b))
}

/// Labels `ds` (opened from `path`) with `model` into `out`.
pub fn label_dataset<B: Backend>(
    model: &Idm<B>,
    spec: &IdmSpec,
    idm_dir: &Path,
    ds: &Dataset,
    path: &Path,
    out: &Path,
    device: &B::Device,
) -> Result<LabelReport, IdmError> {
    if ds.state_dim() != spec.state_dim || ds.env_state_dim() != spec.env_state_dim {
        return Err(IdmError::Config(format!(
            "{}: state/object-state widths {}/{}, the IDM was trained on {}/{}",
            path.display(),
            ds.state_dim(),
            ds.env_state_dim(),
            spec.state_dim,
            spec.env_state_dim
        )));
    }
    if (ds.fps() - spec.fps).abs() > 1e-6 {
        return Err(IdmError::Config(format!(
            "{}: {} fps, the IDM was trained at {} fps (its inputs are neighbouring frames)",
            path.display(),
            ds.fps(),
            spec.fps
        )));
    }
    let da = spec.model.action_dim;
    let recorded = ds.has_actions();
    if recorded && ds.action_dim() != da {
        return Err(IdmError::Config(format!(
            "{}: actions of {} components, the IDM predicts {da}",
            path.display(),
            ds.action_dim()
        )));
    }
    let keep: Vec<usize> =
        if recorded && same_path(path, &spec.dataset) { spec.labelled_episodes.clone() } else { Vec::new() };
    let all: Vec<usize> = (0..ds.episodes().len()).collect();
    let (x, frames) = inputs(ds, &all, &spec.normalizer);
    let din = spec.model.input_dim();
    let n = ds.len();
    let mut actions = vec![0.0f32; n * da];
    let mut proxy = vec![true; n];
    for start in (0..frames.len()).step_by(4096) {
        let m = (frames.len() - start).min(4096);
        let xt =
            Tensor::<B, 2>::from_data(TensorData::new(x[start * din..(start + m) * din].to_vec(), [m, din]), device);
        let pred = model.predict(xt).into_data();
        let mut pred: Vec<f32> = pred.to_vec().map_err(|e| IdmError::Config(format!("{e:?}")))?;
        spec.normalizer.denormalize_action(&mut pred);
        for (k, &i) in frames[start..start + m].iter().enumerate() {
            actions[i * da..(i + 1) * da].copy_from_slice(&pred[k * da..(k + 1) * da]);
        }
    }
    let mut sq_norm = 0.0;
    let mut sq_raw = vec![0.0; da];
    let mut compared = 0usize;
    let range: Vec<f64> = spec
        .normalizer
        .action
        .min
        .iter()
        .zip(&spec.normalizer.action.max)
        .map(|(a, b)| f64::from(b - a).max(1e-9))
        .collect();
    for (e, m) in ds.episodes().iter().enumerate() {
        let kept = keep.contains(&e);
        for i in m.from_index as usize..m.to_index as usize {
            if kept {
                actions[i * da..(i + 1) * da].copy_from_slice(ds.action(i));
                proxy[i] = false;
            } else if recorded {
                for (k, (p, t)) in actions[i * da..(i + 1) * da].iter().zip(ds.action(i)).enumerate() {
                    let d = f64::from(p - t);
                    sq_raw[k] += d * d;
                    sq_norm += (2.0 * d / range[k]).powi(2);
                }
                compared += 1;
            }
        }
    }
    let proxy_frames = proxy.iter().filter(|p| **p).count();
    let report = LabelReport {
        episodes: ds.episodes().len(),
        frames: n,
        kept_episodes: keep.len(),
        proxy_frames,
        proxy_rmse: (compared > 0).then(|| (sq_norm / (compared * da) as f64).sqrt()),
        proxy_rmse_raw: (compared > 0).then(|| sq_raw.iter().map(|s| (s / compared as f64).sqrt()).collect()),
    };
    let note = serde_json::json!({
        "method": "inverse dynamics (SS-ORL): clipped mean of a tanh-Gaussian IDM over (s[t-1], s[t], s[t+1])",
        "idm": idm_dir.display().to_string(),
        "proxy_frames": proxy_frames,
        "recorded_episodes": keep,
        "idm_val_rmse": spec.val_rmse,
    });
    write_relabelled(ds, out, &Relabel { action_names: spec.action_names.clone(), actions, proxy, note })?;
    Ok(report)
}
