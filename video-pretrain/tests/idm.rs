//! Inverse-dynamics labels end to end on real LeRobot datasets in a temp dir: an IDM trained on
//! a quarter of the episodes (SS-ORL's labelled set) recovers held-out actions of known dynamics;
//! `label_dataset` writes a new dataset where the labelled episodes keep their recorded actions
//! and every other frame carries a proxy action marked `action.is_proxy`; an action-free dataset
//! gets proxy labels everywhere; training can leave proxy frames out.

use std::path::Path;

use dataset::relabel::PROXY_LABELS_KEY;
use dataset::table::{read_parquet, write_parquet};
use dataset::writer::{ACTION, PROXY};
use dataset::{Dataset, DatasetSpec, DatasetWriter, FrameRecord};
use policy::{Cpu, CpuTrain};
use video_pretrain::idm::label::label_dataset;
use video_pretrain::idm::train::{load_idm, train_idm, IdmTrainConfig};

const EPISODES: usize = 16;
const LEN: usize = 30;

/// Smooth state paths s_t (3 components, bounded, a different phase per episode) and the
/// actions that produce them, a_t = (s_{t+1} − s_t) / 0.1 (0 on the last frame); the object state is constant per
/// episode. The reward grows with the episode index, so the lower-return half is episodes 0…7.
fn write_dataset(root: &Path) {
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: "test".into(),
        state_names: vec!["x".into(), "y".into(), "z".into()],
        action_names: vec!["vx".into(), "vy".into(), "vz".into()],
        env_state_names: vec!["o1".into(), "o2".into()],
        cameras: vec![],
        scene: None,
    };
    let path = |e: usize, t: usize| {
        let (t, e) = (t as f32, e as f32);
        [(0.3 * t + e).sin(), (0.21 * t + 2.0 * e).cos(), 0.5 * (0.17 * t + 0.5 * e).sin()]
    };
    let mut w = DatasetWriter::create(root, &spec).expect("create");
    for e in 0..EPISODES {
        w.begin_episode("move").expect("begin");
        for t in 0..LEN {
            // The last frame has no next state: the arm stops there (a = 0), as the IDM sees it.
            let (s, next) = (path(e, t), path(e, (t + 1).min(LEN - 1)));
            w.add_frame(&FrameRecord {
                state: s.to_vec(),
                action: (0..3).map(|k| (next[k] - s[k]) / 0.1).collect(),
                env_state: vec![(e as f32).sin(), 1.0],
                reward: e as f32 / EPISODES as f32,
                done: t + 1 == LEN,
                truncated: false,
                success: false,
                images: vec![],
            })
            .expect("frame");
        }
        w.end_episode(Some(e as u64), Some(false)).expect("end");
    }
    w.finish().expect("finish");
}

fn config() -> IdmTrainConfig {
    IdmTrainConfig {
        steps: 400,
        batch_size: 256,
        lr: 1e-3,
        labelled_fraction: 0.25,
        eval_every: 50,
        hidden: 128,
        ..Default::default()
    }
}

#[test]
fn idm_labels_are_accurate_and_marked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("all");
    write_dataset(&root);
    let ds = Dataset::open(&root).expect("open");
    let out = tmp.path().join("idm");
    let spec = train_idm::<CpuTrain>(&ds, &root, &config(), &out, &Default::default(), |_, _, _| {}).expect("train");
    // SS-ORL's labelled set: 25% of 16 = 4 episodes from the lower-return half, 10% of them
    // (rounded, at least one) held out.
    assert_eq!(spec.labelled_episodes.len(), 4);
    assert!(spec.labelled_episodes.iter().all(|&e| e < EPISODES / 2), "{:?}", spec.labelled_episodes);
    assert_eq!(spec.val_episodes.len(), 1);
    // Predicting the mean action would miss by the actions' spread: about 0.7 in units where
    // each component's recorded range spans [-1, 1] (sinusoidal velocities).
    let spread = action_spread(&ds);
    assert!(spread > 0.6, "{spread}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert!(spec.val_rmse < 0.35 * spread, "validation RMS error {} vs spread {spread}\n{metrics}", spec.val_rmse);
    assert_eq!(metrics.lines().count(), 8);

    let device = Default::default();
    let (spec, idm) = load_idm::<Cpu>(&out, &device).expect("load");
    let labelled = tmp.path().join("proxy");
    let report = label_dataset(&idm, &spec, &out, &ds, &root, &labelled, &device).expect("label");
    assert_eq!(report.kept_episodes, 4);
    assert_eq!(report.proxy_frames, (EPISODES - 4) * LEN);
    // Held-out action error on the 12 episodes the IDM never saw.
    let rmse = report.proxy_rmse.expect("recorded actions to compare with");
    assert!(rmse < 0.35 * spread, "held-out RMS error {rmse} vs spread {spread}");

    let out_ds = Dataset::open(&labelled).expect("open labelled");
    assert_eq!(out_ds.len(), ds.len());
    let mut max_err: f32 = 0.0;
    for i in 0..ds.len() {
        let e = ds.episode_of(i).index as usize;
        let kept = spec.labelled_episodes.contains(&e);
        assert_eq!(out_ds.is_proxy(i), !kept, "frame {i}");
        if kept {
            assert_eq!(out_ds.action(i), ds.action(i), "recorded actions are kept exactly");
        } else {
            for (p, t) in out_ds.action(i).iter().zip(ds.action(i)) {
                max_err = max_err.max((p - t).abs());
            }
        }
        assert_eq!(out_ds.state(i), ds.state(i));
    }
    assert!(max_err > 0.0, "proxy actions are predictions, not copies of the recorded ones");
    let info = out_ds.info();
    assert_eq!(info.features[PROXY].dtype, "bool");
    assert_eq!(info.extra[PROXY_LABELS_KEY]["proxy_frames"], (EPISODES - 4) * LEN);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(labelled.join("meta/stats.json")).expect("stats")).expect("json");
    assert_eq!(stats[ACTION]["count"][0], ds.len());
    // Labelling into the source folder, or into an existing dataset, is refused.
    assert!(label_dataset(&idm, &spec, &out, &ds, &root, &root, &device).is_err());
    assert!(label_dataset(&idm, &spec, &out, &ds, &root, &labelled, &device).is_err());

    // Training on recorded actions only keeps the 4 labelled episodes' frames.
    let pspec = policy::train::data::TrainingData::fit_spec(
        std::slice::from_ref(&out_ds),
        &policy::train::data::SpecRequest::new(policy::Variant::StateOnly, 4),
    )
    .expect("spec");
    let data = policy::train::data::TrainingData::new(vec![out_ds], pspec, 0.99).expect("data");
    assert_eq!(data.len(), ds.len());
    assert_eq!(data.without_proxy_labels().expect("true labels").len(), 4 * LEN);
}

#[test]
fn an_action_free_dataset_gets_proxy_labels_everywhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("all");
    write_dataset(&root);
    // Strip the actions: the parquet column and the feature.
    let free = tmp.path().join("free");
    copy_dir(&root, &free);
    for entry in walk(&free.join("data")) {
        let f = read_parquet(&entry).expect("read");
        let mut t = f.table;
        t.columns.retain(|(n, _)| n != ACTION);
        write_parquet(&entry, &t, f.metadata).expect("write");
    }
    let info_path = free.join("meta/info.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info_path).expect("info")).expect("json");
    info["features"].as_object_mut().expect("features").remove(ACTION);
    std::fs::write(&info_path, info.to_string()).expect("write info");
    let free_ds = Dataset::open(&free).expect("open action-free");
    assert!(!free_ds.has_actions());
    // Training a policy on it is refused with a pointer to labelling.
    let err = policy::train::data::TrainingData::fit_spec(
        std::slice::from_ref(&free_ds),
        &policy::train::data::SpecRequest::new(policy::Variant::StateOnly, 4),
    )
    .expect_err("no actions")
    .to_string();
    assert!(err.contains("dataset label"), "{err}");

    let ds = Dataset::open(&root).expect("open");
    let out = tmp.path().join("idm");
    let cfg = IdmTrainConfig { steps: 100, labelled_fraction: 1.0, ..config() };
    train_idm::<CpuTrain>(&ds, &root, &cfg, &out, &Default::default(), |_, _, _| {}).expect("train");
    let device = Default::default();
    let (spec, idm) = load_idm::<Cpu>(&out, &device).expect("load");
    let labelled = tmp.path().join("proxy");
    let report = label_dataset(&idm, &spec, &out, &free_ds, &free, &labelled, &device).expect("label");
    assert_eq!((report.kept_episodes, report.proxy_frames, report.proxy_rmse), (0, EPISODES * LEN, None));
    let out_ds = Dataset::open(&labelled).expect("open");
    assert_eq!(out_ds.action_dim(), 3);
    assert!((0..out_ds.len()).all(|i| out_ds.is_proxy(i)));
    assert_eq!(out_ds.info().features[ACTION].names, serde_json::json!(["vx", "vy", "vz"]));
}

/// RMS deviation of the actions from their mean, per component, in units where each
/// component's range spans [-1, 1].
fn action_spread(ds: &Dataset) -> f64 {
    let (n, d) = (ds.len(), ds.action_dim());
    let mut total = 0.0;
    for k in 0..d {
        let v: Vec<f64> = (0..n).map(|i| f64::from(ds.action(i)[k])).collect();
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        let mean = v.iter().sum::<f64>() / n as f64;
        total += v.iter().map(|x| (2.0 * (x - mean) / (hi - lo)).powi(2)).sum::<f64>() / n as f64;
    }
    (total / d as f64).sqrt()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("dir").flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).expect("copy");
        }
    }
}

#[test]
fn two_runs_from_one_seed_log_the_same_metrics_even_side_by_side() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("all");
    write_dataset(&root);
    let ds = Dataset::open(&root).expect("open");
    // Dropout 0.1 (the default) draws a mask every step from the backend's generator.
    let cfg = IdmTrainConfig { steps: 20, eval_every: 5, ..config() };
    let train = |name: &str, cfg: &IdmTrainConfig| {
        let out = tmp.path().join(name);
        train_idm::<CpuTrain>(&ds, &root, cfg, &out, &Default::default(), |_, _, _| {}).expect("train");
        std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| train("a", &cfg));
        let b = s.spawn(|| train("b", &cfg));
        (a.join().expect("run a"), b.join().expect("run b"))
    });
    assert_eq!(a.lines().count(), 4);
    assert_eq!(a, b, "the same seed gives the same losses");
    assert_ne!(train("other", &IdmTrainConfig { seed: 1, ..cfg.clone() }), a, "another seed, other losses");
}
