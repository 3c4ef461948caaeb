//! ICVF training on a synthetic store (a bright square moving across each episode): training
//! runs, logs and saves; the saved network reloads and gives the same values; the encoder
//! weights load into the policy's image encoder. Whether the value learns temporal distance needs
//! far more steps than CI affords on the CPU backend (about 2.5 s per step at batch 32 × 32 px
//! here): that is an experiment, not a test.

use burn::module::Module;
use policy::model::image::ImageEncoder;
use policy::{Cpu, CpuTrain};
use video_pretrain::icvf::model::IcvfConfig;
use video_pretrain::icvf::train::{load_icvf, train_icvf, IcvfTrainConfig, ENCODER_STEM};
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

#[test]
fn learns_temporal_distance_and_its_encoder_transfers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("frames");
    let mut w = FrameStoreWriter::create(&dir, SIZE, 5.0).expect("store");
    for e in 0..6 {
        let frames: Vec<u8> = (0..LEN).flat_map(|k| frame(k, e % 3)).collect();
        w.add_episode(&format!("synthetic {e}"), &frames).expect("episode");
    }
    w.finish().expect("finish");
    let store = FrameStore::open(&dir).expect("open");
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
    let values = || {
        let (_, model) = load_icvf::<Cpu>(&out, &device).expect("load");
        let images: Vec<f32> = (0..LEN)
            .flat_map(|k| {
                let mut v = Vec::new();
                policy::batch::push_image_chw(&frame(k, 1), &mut v);
                v
            })
            .collect();
        let x = burn::tensor::Tensor::<Cpu, 4>::from_data(
            burn::tensor::TensorData::new(images, [LEN, 3, SIZE, SIZE]),
            &device,
        );
        let f = model.features(x);
        let goal = f.clone().narrow(0, LEN - 1, 1).repeat_dim(0, LEN);
        model.values(f, goal.clone(), goal).into_data().to_vec::<f32>().expect("values")
    };
    let (a, b) = (values(), values());
    assert_eq!(a.len(), LEN * 2);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, b);
    // A run folder without icvf.json is a clear error.
    let err = load_icvf::<Cpu>(tmp.path(), &device).expect_err("no run").to_string();
    assert!(err.contains("icvf.json"), "{err}");

    // The encoder weights load into the policy's image encoder of the same config.
    let enc = ImageEncoder::<Cpu>::new(&model_cfg.encoder, &device);
    let fresh = enc.num_params();
    let loaded = policy::checkpoint::load_module(enc, &out.join(ENCODER_STEM), "encoder", &device).expect("encoder");
    assert_eq!(loaded.num_params(), fresh);
    // An encoder of another size does not load.
    let other = policy::ImageEncoderConfig { channels: [8, 16, 32], ..model_cfg.encoder.clone() };
    let wrong = ImageEncoder::<Cpu>::new(&other, &device);
    assert!(policy::checkpoint::load_module(wrong, &out.join(ENCODER_STEM), "encoder", &device).is_err());
}
