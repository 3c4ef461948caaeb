//! `armstack dataset cache` writes the frame cache file that vision training reads its images
//! from (the GPU build has no FFmpeg to decode them); after the videos change (an appended
//! episode) the cache is refused and this `video` build decodes the videos instead. Vision
//! training on the default backend is reproducible bit for bit, dropout included.

mod common;

use common::{armstack, checkpoint_bytes_without_ids, run_ok};

/// Records `episodes` scripted `reach` episodes with cameras into `dir/ds` (appending with `resume`).
fn record(dir: &std::path::Path, episodes: &str, resume: bool) {
    let mut c = armstack(dir);
    c.args(["record", "--dataset", "ds", "--scene", "reach", "--device", "scripted", "--episodes", episodes]);
    if resume {
        c.arg("--resume");
    }
    run_ok(&mut c);
}

/// Trains a vision BC policy for two steps on `dir/ds` into `dir/OUT`; returns stderr (info logs).
fn train_vision(dir: &std::path::Path, out: &str) -> String {
    let output = armstack(dir)
        .env("RUST_LOG", "warn,armstack=info")
        .args(["train", "bc", "--variant", "vision", "--dataset", "ds", "--out", out])
        .args(["--steps", "2", "--batch-size", "4", "--eval-every", "0", "--eval-episodes", "0"])
        .output()
        .expect("run armstack");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "train bc failed:\n{stderr}");
    stderr
}

#[test]
fn vision_training_reads_the_frame_cache_until_the_videos_change() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    record(dir, "1", false);
    let out = run_ok(armstack(dir).args(["dataset", "cache", "ds", "--json"]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    let cache = dir.join("ds/cache/frames.bin");
    assert_eq!(summary["bytes"].as_u64(), Some(std::fs::metadata(&cache).expect("the cache file").len()));
    assert!(summary["frames"].as_u64().is_some_and(|n| n > 0), "{summary}");

    let log = train_vision(dir, "run1");
    assert!(log.contains("from ds/cache/frames.bin"), "training did not read the cache:\n{log}");
    // The same seed and data train the same weights, bit for bit: the vision policy's dropout
    // (0.1 in the transformer) draws its masks from the seeded generator.
    train_vision(dir, "run1_again");
    let weights = |run: &str| checkpoint_bytes_without_ids(&dir.join(run).join("model.mpk"));
    assert!(weights("run1") == weights("run1_again"), "two vision trainings with one seed differ");

    // One more episode appends to the video files: the cache no longer describes them.
    record(dir, "1", true);
    let log = train_vision(dir, "run2");
    assert!(log.contains("stale frame cache") && log.contains("decoding the videos instead"), "{log}");
}
