//! ICVF training on a synthetic store (a bright square moving across each episode): training
//! runs, logs and saves; the saved network reloads and gives the same values; the encoder
//! weights load into the policy's image encoder; and a short run learns temporal distance: the
//! value of reaching the last frame grows along the episode.

use burn::module::Module;
use policy::model::image::ImageEncoder;
use policy::{Cpu, CpuTrain};
use video_pretrain::icvf::model::IcvfConfig;
use video_pretrain::icvf::train::{load_icvf, train_icvf, IcvfTrainConfig};
use video_pretrain::store::{FrameStore, FrameStoreWriter};

const SIZE: usize = 32;
const LEN: usize = 12;

/// Frame k of an episode: black, a 6×6 white square at x = 2k + offset, y = 12 + offset.
fn frame(k: usize, offset: usize) -> Vec<u8> {
    let mut img = vec![0u8; SIZE * SIZE * 3];
    for y in 12 + offset..18 + offset {
        for x in 2 * k + offset..2 * k + 6 + offset {
            img[(y * SIZE + x) * 3..(y * SIZE + x) * 3 + 3].copy_from_slice(&[255, 255, 255]);
        }
    }
    img
}

/// The frames of one episode (offset 1), normalised, `[LEN, 3, SIZE, SIZE]`.
fn episode_frames<B: burn::prelude::Backend>(device: &B::Device) -> burn::tensor::Tensor<B, 4> {
    let images: Vec<f32> = (0..LEN)
        .flat_map(|k| {
            let mut v = Vec::new();
            policy::batch::push_image_chw(&frame(k, 1), &mut v);
            v
        })
        .collect();
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(images, [LEN, 3, SIZE, SIZE]), device)
}

/// Six episodes of the moving square (three offsets, twice each).
fn synthetic_store(dir: &std::path::Path) -> FrameStore {
    let mut w = FrameStoreWriter::create(dir, SIZE, 5.0).expect("store");
    for e in 0..6 {
        let frames: Vec<u8> = (0..LEN).flat_map(|k| frame(k, e % 3)).collect();
        w.add_episode(&format!("synthetic {e}"), &frames).expect("episode");
    }
    w.finish().expect("finish");
    FrameStore::open(dir).expect("open")
}

/// V_i(s_t, g = z = last frame) `[LEN, ensemble]` of the network trained in `out`, reloaded.
fn values_to_last_frame(out: &std::path::Path) -> Vec<f32> {
    let device = Default::default();
    let (_, model) = load_icvf::<Cpu>(out, &device).expect("load");
    let f = model.features(episode_frames::<Cpu>(&device));
    let goal = f.clone().narrow(0, LEN - 1, 1).repeat_dim(0, LEN);
    model.values(f, goal.clone(), goal).into_data().to_vec::<f32>().expect("values")
}

#[test]
fn training_runs_reloads_and_its_encoder_transfers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("frames");
    let store = synthetic_store(&dir);
    let model_cfg = IcvfConfig { hidden: 64, ..IcvfConfig::new(SIZE) };
    let cfg = IcvfTrainConfig { steps: 3, batch_size: 4, lr: 1e-3, gamma: 0.9, log_every: 1, ..Default::default() };
    let out = tmp.path().join("icvf");
    let mut losses = Vec::new();
    let spec = train_icvf::<CpuTrain>(&store, &dir, &model_cfg, &cfg, &out, &Default::default(), &mut |_, s| {
        losses.push(s.loss)
    })
    .expect("training");
    assert!(spec.final_loss.is_finite());
    assert_eq!(losses.len(), 3, "one log line per step");
    assert!(losses.iter().all(|l| l.is_finite() && *l >= 0.0), "{losses:?}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 3);

    // The reloaded network gives finite values for (s_t, g = z = last frame), the same on a
    // second load (weights, not a fresh initialisation).
    let device = Default::default();
    let (a, b) = (values_to_last_frame(&out), values_to_last_frame(&out));
    assert_eq!(a.len(), LEN * 2);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, b);
    // A run folder without icvf.json is a clear error.
    let err = load_icvf::<Cpu>(tmp.path(), &device).expect_err("no run").to_string();
    assert!(err.contains("icvf.json"), "{err}");

    // The encoder folder (encoder.json + encoder.mpk) loads into the policy's image encoder.
    let loaded = policy::pretrained::load_encoder::<Cpu>(&out, &model_cfg.encoder, &device).expect("encoder");
    assert_eq!(loaded.num_params(), ImageEncoder::<Cpu>::new(&model_cfg.encoder, &device).num_params());
    assert_eq!(policy::pretrained::encoder_config(&out).expect("encoder.json"), model_cfg.encoder);
    // A policy whose encoder has other channels is refused, naming both.
    let other = policy::ImageEncoderConfig { channels: [8, 16, 32], ..model_cfg.encoder.clone() };
    let err = policy::pretrained::load_encoder::<Cpu>(&out, &other, &device).expect_err("mismatch").to_string();
    assert!(err.contains("[16, 32, 64]") && err.contains("[8, 16, 32]"), "{err}");
    // adopt_encoder_shape makes a new policy's config take the pre-trained shape.
    let mut target = policy::ImageEncoderConfig::new(48, vec!["observation.images.front".into()]);
    target.channels = [4, 4, 4];
    policy::pretrained::adopt_encoder_shape(&out, &mut target).expect("adopt");
    assert_eq!((target.channels, target.grid, target.size), (model_cfg.encoder.channels, model_cfg.encoder.grid, 48));
    assert!(policy::pretrained::load_encoder::<Cpu>(&out, &target, &device).is_ok());
}

/// Spearman rank correlation of `v` with its index.
fn rank_correlation(v: &[f32]) -> f64 {
    let n = v.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut rank = vec![0.0; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as f64;
    }
    let d2: f64 = rank.iter().enumerate().map(|(i, r)| (i as f64 - r).powi(2)).sum();
    1.0 - 6.0 * d2 / (n as f64 * (n as f64 * n as f64 - 1.0))
}

#[test]
fn value_to_the_last_frame_grows_along_the_episode() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("frames");
    let store = synthetic_store(&dir);
    let model_cfg = IcvfConfig { hidden: 64, ..IcvfConfig::new(SIZE) };
    let cfg =
        IcvfTrainConfig { steps: STEPS, batch_size: 16, lr: 1e-3, gamma: 0.9, log_every: 50, ..Default::default() };
    let out = tmp.path().join("icvf");
    train_icvf::<CpuTrain>(&store, &dir, &model_cfg, &cfg, &out, &Default::default(), &mut |_, _| {}).expect("train");
    let device = Default::default();
    let (_, model) = load_icvf::<Cpu>(&out, &device).expect("load");
    let x = episode_frames::<Cpu>(&device);
    let f = model.features(x);
    let goal = f.clone().narrow(0, LEN - 1, 1).repeat_dim(0, LEN);
    // Values [LEN, ensemble]: the ensemble mean per frame.
    let v = model.values(f, goal.clone(), goal).mean_dim(1).into_data().to_vec::<f32>().expect("values");
    // After 300 steps the value rises toward the goal, most steeply over the last frames. The
    // run is reproducible bit for bit on one machine and CPU backend build, but another rounding
    // (another kernel build, another batch layout) takes another path. At 150 steps such paths
    // measured ρ 0.85 / 0.87 / 0.66 (a dip in mid-episode), so the test now trains 300 steps:
    // ρ 0.83, V(last) − V(first) 1.84, 1.37 between the last and first thirds, rising
    // monotonically after the fourth frame. Another machine of the same kind (2026-11-30, the
    // same code) took a path with ρ 0.71: a dip over the first four frames, then a monotonic
    // rise, V(last) − V(first) 1.49. The bounds hold a run that learned the ordering, with room
    // for another path, not for one that learns nothing (ρ near 0, no rise).
    let rho = rank_correlation(&v);
    let third = LEN / 3;
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    assert!(rho > 0.65, "rank correlation of V(s_t, last, last) with t: {rho:.2}; values {v:?}");
    assert!(v[LEN - 1] > v[0] + 0.8, "{v:?}");
    assert!(mean(&v[LEN - third..]) > mean(&v[..third]) + 0.5, "{v:?}");
}

const STEPS: u64 = 300;

#[test]
fn two_runs_from_one_seed_give_the_same_network_even_side_by_side() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("frames");
    let store = synthetic_store(&dir);
    let model_cfg = IcvfConfig { hidden: 32, ..IcvfConfig::new(SIZE) };
    let cfg = IcvfTrainConfig { steps: 6, batch_size: 4, lr: 1e-3, gamma: 0.9, log_every: 1, ..Default::default() };
    let train = |name: &str, cfg: &IcvfTrainConfig| {
        let out = tmp.path().join(name);
        train_icvf::<CpuTrain>(&store, &dir, &model_cfg, cfg, &out, &Default::default(), &mut |_, _| {})
            .expect("train");
        (values_to_last_frame(&out), std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics"))
    };
    // Side by side, as the test harness runs tests: both draw initial weights from the
    // backend's one generator.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| train("a", &cfg));
        let b = s.spawn(|| train("b", &cfg));
        (a.join().expect("run a"), b.join().expect("run b"))
    });
    assert_eq!(a.1.lines().count(), 6);
    assert_eq!(a.1, b.1, "the same seed logs the same losses");
    assert!(a.0 == b.0, "the same seed trains the same network");
    let other = train("other", &IcvfTrainConfig { seed: 1, ..cfg.clone() });
    assert!(other.0 != a.0, "another seed, another network");
}
