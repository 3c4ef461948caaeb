//! Batches of real (tiny) datasets.

use dataset::writer::{DatasetWriter, FrameRecord};

use super::*;

/// With action targets, the rows past a terminated episode's end hold its last target and
/// are trained; past a truncated one they stay masked, as every padded delta row does.
#[test]
fn rows_past_a_terminated_episode_hold_its_last_target() {
    let tmp = tempfile::tempdir().unwrap();
    let env = sim::EnvConfig::new(sim::load_scene("pick_cube").unwrap());
    let mut w = DatasetWriter::create(tmp.path(), &crate::demos::dataset_spec(&env, Vec::new())).unwrap();
    // Episode 0 succeeds after 3 frames, episode 1 is cut by the time limit after 4.
    for (frames, terminal) in [(3usize, true), (4, false)] {
        w.begin_episode("pick up the cube").unwrap();
        for k in 0..frames {
            let last = k + 1 == frames;
            w.add_frame(&FrameRecord {
                state: vec![0.1 * k as f32, 0.2, 0.3, 0.0, 0.4, 0.0, 0.5],
                action: vec![0.01, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0],
                env_state: vec![0.25, 0.0, 0.02, 0.0, 1.0],
                reward: f32::from(u8::from(last && terminal)),
                done: last,
                truncated: last && !terminal,
                success: last && terminal,
                images: vec![],
            })
            .unwrap();
        }
        w.end_episode(Some(0), Some(terminal)).unwrap();
    }
    w.finish().unwrap();
    let masks = |targets: bool| {
        let ds = Dataset::open(tmp.path()).unwrap();
        let request = SpecRequest { action_targets: Some(targets), ..SpecRequest::new(Variant::StateOnly, 3) };
        let spec = TrainingData::fit_spec(std::slice::from_ref(&ds), &request).unwrap();
        let data = TrainingData::new(vec![ds], spec, 0.99).unwrap();
        let mut b = HostBatch::default();
        for i in 0..7 {
            data.push_sample(&mut b, 0, i).unwrap();
        }
        (b.action_mask, b.actions)
    };
    let (mask, actions) = masks(true);
    // Frames 0–2 (terminated): every row; frames 3–6 (truncated): rows inside the episode.
    #[rustfmt::skip]
    assert_eq!(mask, [
        1.0, 1.0, 1.0,  1.0, 1.0, 1.0,  1.0, 1.0, 1.0,
        1.0, 1.0, 1.0,  1.0, 1.0, 1.0,  1.0, 1.0, 0.0,  1.0, 0.0, 0.0,
    ]);
    // Frame 2's rows 1 and 2 hold its own target.
    let d = 7;
    let row = |f: usize, k: usize| &actions[(f * 3 + k) * d..(f * 3 + k + 1) * d];
    assert_eq!(row(2, 1), row(2, 0));
    assert_eq!(row(2, 2), row(2, 0));
    // Deltas: the padded rows stay masked after either ending.
    let (mask, _) = masks(false);
    assert_eq!(&mask[..9], [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}
