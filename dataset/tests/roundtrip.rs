//! Write → read round trips on real parquet and mp4 files in a temp dir.

use dataset::reader::Dataset;
use dataset::stats::VectorStats;
use dataset::video::psnr_db;
use dataset::{CameraFeature, DatasetSpec, DatasetWriter, FrameRecord};

const W: usize = 64;
const H: usize = 48;

fn image(ep: usize, k: usize, cam: usize) -> Vec<u8> {
    let mut img = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let p = (y * W + x) * 3;
            img[p] = (x * 4) as u8;
            img[p + 1] = (y * 5) as u8;
            img[p + 2] = (60 + 40 * cam + 10 * ep) as u8;
            // A brighter square that moves one pixel per frame.
            if (x as isize - (8 + k) as isize).abs() < 6 && (y as isize - 20).abs() < 6 {
                for c in 0..3 {
                    img[p + c] = img[p + c].saturating_add(40);
                }
            }
        }
    }
    img
}

fn spec() -> DatasetSpec {
    DatasetSpec {
        scene: Some("pick_cube".into()),
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: (0..3).map(|i| format!("s{i}")).collect(),
        action_names: (0..2).map(|i| format!("a{i}")).collect(),
        env_state_names: vec!["cube_x".into()],
        cameras: vec![
            CameraFeature { key: "observation.images.front".into(), width: W as u32, height: H as u32 },
            CameraFeature { key: "observation.images.wrist".into(), width: W as u32, height: H as u32 },
        ],
    }
}

/// Episode 2 is cut by the time limit (a truncation); the others end in success (terminations).
const TRUNCATED_EPISODE: usize = 2;

fn frame(ep: usize, k: usize, len: usize) -> FrameRecord {
    let (last, success) = (k + 1 == len, ep != TRUNCATED_EPISODE);
    FrameRecord {
        state: vec![ep as f32, k as f32, 0.5],
        action: vec![k as f32 * 0.1, -(ep as f32)],
        env_state: vec![ep as f32 * 0.01],
        reward: if last && success { 1.0 } else { 0.0 },
        done: last,
        truncated: last && !success,
        success: last && success,
        images: vec![image(ep, k, 0), image(ep, k, 1)],
    }
}

fn record(w: &mut DatasetWriter, ep: usize, len: usize) {
    w.begin_episode(&format!("task {}", ep % 2)).expect("begin");
    for k in 0..len {
        w.add_frame(&frame(ep, k, len)).expect("frame");
    }
    w.end_episode(Some(100 + ep as u64), Some(ep != TRUNCATED_EPISODE)).expect("end").expect("summary");
}

#[test]
fn episodes_round_trip_with_videos_stats_and_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("KEEP_DS").map(std::path::PathBuf::from).unwrap_or_else(|_| dir.path().join("ds"));
    let lens = [7usize, 12, 5, 9];
    let mut w = DatasetWriter::create(&root, &spec()).expect("create");
    record(&mut w, 0, lens[0]);
    // A discarded (re-recorded) episode leaves no trace.
    w.begin_episode("junk").expect("begin");
    w.add_frame(&frame(9, 0, 1)).expect("frame");
    w.discard_episode();
    record(&mut w, 1, lens[1]);
    w.finish().expect("finish");
    // Resume appends to the same dataset.
    let mut w = DatasetWriter::resume(&root).expect("resume");
    record(&mut w, 2, lens[2]);
    record(&mut w, 3, lens[3]);
    w.finish().expect("finish");

    let mut ds = Dataset::open(&root).expect("open");
    assert_eq!(ds.scene(), Some("pick_cube"), "the scene is kept in info.json");
    assert_eq!(ds.len(), lens.iter().sum::<usize>());
    assert_eq!(ds.episodes().len(), 4);
    assert_eq!(ds.tasks(), &["task 0".to_string(), "task 1".to_string()]);
    ds.load_frame_cache(2).expect("cache");
    let mut seeker = ds.seeker();
    let mut worst = f64::INFINITY;
    for (ep, e) in ds.episodes().to_vec().iter().enumerate() {
        assert_eq!(e.length as usize, lens[ep]);
        assert_eq!(e.seed, Some(100 + ep as u64));
        for k in 0..lens[ep] {
            let i = e.from_index as usize + k;
            assert_eq!(ds.frame_index(i), k);
            assert_eq!(ds.state(i), &[ep as f32, k as f32, 0.5]);
            assert_eq!(ds.action(i), &[k as f32 * 0.1, -(ep as f32)]);
            assert_eq!(ds.task(i), format!("task {}", ep % 2));
            for (cam, key) in ds.camera_keys().iter().enumerate() {
                let cached = ds.image(i, key).expect("cached image").to_vec();
                let sought = seeker.image(&ds, i, key).expect("seeked image");
                assert_eq!(cached, sought, "cache and keyframe seek disagree at frame {i}");
                worst = worst.min(psnr_db(&cached, &image(ep, k, cam)));
            }
        }
    }
    assert!(worst >= 35.0, "worst PSNR {worst:.1} dB");
    // Chunk targets pad with the last action and mask past the end.
    let last0 = lens[0] - 1;
    let win = ds.action_window(last0 - 1, 4);
    assert_eq!(win.mask, vec![true, true, false, false]);
    assert_eq!(&win.values[6..8], ds.action(last0));
    // n-step returns stop at a termination without bootstrap...
    let ns = ds.n_step(last0 - 2, 5, 0.5);
    assert_eq!((ns.steps, ns.terminal, ns.next, ns.discount), (3, true, None, 0.0));
    assert!((ns.discounted_reward - 0.25).abs() < 1e-9);
    assert_eq!(ds.n_step(0, 2, 0.9).next, Some(2));
    // ...and bootstrap across a truncation, from the episode's last frame (next.truncated read back).
    let e2 = &ds.episodes()[TRUNCATED_EPISODE];
    let last2 = e2.to_index as usize - 1;
    assert!(ds.truncated(last2) && ds.done(last2) && !ds.terminal(last2));
    assert!(ds.terminal(last0) && !ds.truncated(last0));
    let ns = ds.n_step(last2 - 2, 5, 0.5);
    assert_eq!((ns.steps, ns.terminal, ns.next, ns.discount), (2, false, Some(last2), 0.25));
    assert!(ds.info().features.contains_key(dataset::writer::TRUNCATED));

    // stats.json equals a recomputation from the data.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("meta/stats.json")).expect("stats")).expect("json");
    let mut state = VectorStats::new(3);
    for i in 0..ds.len() {
        state.push(ds.state(i));
    }
    let want = state.finish();
    let got = dataset::FeatureStats::from_json(&stats["observation.state"]).expect("state stats");
    assert_eq!(got.count, ds.len() as u64);
    for k in 0..3 {
        assert!((got.mean[k] - want.mean[k]).abs() < 1e-9);
        assert!((got.std[k] - want.std[k]).abs() < 1e-9);
        assert!((got.quantiles["q90"][k] - want.quantiles["q90"][k]).abs() < 1e-9);
    }
    let front = dataset::FeatureStats::from_json(&stats["observation.images.front"]).expect("image stats");
    assert!(front.image);
    assert_eq!(front.count, ds.len() as u64);
}
