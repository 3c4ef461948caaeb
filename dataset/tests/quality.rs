//! TQ and SACo on a small dataset with known returns and duplicates.

use dataset::quality::quality;
use dataset::reader::Dataset;
use dataset::{DatasetSpec, DatasetWriter, FrameRecord};

#[test]
fn tq_and_saco_follow_their_definitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = DatasetSpec {
        scene: None,
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: vec!["q".into()],
        action_names: vec!["a".into()],
        env_state_names: Vec::new(),
        cameras: Vec::new(),
    };
    let mut w = DatasetWriter::create(dir.path(), &spec).expect("create");
    // Episode 0 succeeds (return 1) with 4 distinct (s, a); episode 1 fails (return 0) and repeats
    // one (s, a) pair 4 times.
    for (ep, success) in [(0, true), (1, false)] {
        w.begin_episode("t").expect("begin");
        for k in 0..4 {
            let (s, a) = if ep == 0 { (k as f32, 1.0) } else { (10.0, -1.0) };
            w.add_frame(&FrameRecord {
                state: vec![s],
                action: vec![a],
                reward: if success && k == 3 { 1.0 } else { 0.0 },
                done: k == 3,
                truncated: false,
                success: success && k == 3,
                ..Default::default()
            })
            .expect("frame");
        }
        w.end_episode(None, Some(success)).expect("end");
    }
    w.finish().expect("finish");
    let ds = Dataset::open(dir.path()).expect("open");
    let q = quality(&ds, None, 0.1, None);
    assert_eq!(q.episodes, 2);
    assert!((q.mean_return - 0.5).abs() < 1e-12);
    assert!((q.tq - 0.5).abs() < 1e-12, "(0.5 - 0) / (1 - 0)");
    assert!((q.success_rate - 0.5).abs() < 1e-12);
    assert_eq!(q.unique_pairs, 5, "4 distinct + 1 repeated");
    assert!((q.saco - 5.0 / 8.0).abs() < 1e-12);
    // Against a reference with twice the coverage, SACo halves; a custom return range rescales TQ.
    let q = quality(&ds, Some((0.0, 2.0)), 0.1, Some(10));
    assert!((q.tq - 0.25).abs() < 1e-12 && (q.saco - 0.5).abs() < 1e-12);
}
