//! `armstack dataset info|quality` refuse a dataset whose metadata contradicts its data (a
//! LeRobot v2.1 dataset whose `meta/episodes.jsonl` gives an episode the wrong length), exiting
//! non-zero with the file, the episode and both values. Needs the `ffmpeg` CLI.

mod common;

#[path = "../../dataset/tests/support/lerobot_v21.rs"]
mod lerobot_v21;

use common::{armstack, run_err, run_ok};
use lerobot_v21::{episode_line, write_v21};

#[test]
fn dataset_info_and_quality_refuse_a_wrong_episode_length() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let root = dir.join("ds");
    write_v21(&root, &[16, 16, 16]);
    let quality = run_ok(armstack(dir).args(["dataset", "quality", "ds"]));
    assert!(quality.contains("3 episodes, 48 transitions") && quality.contains("success rate 100.0%"), "{quality}");
    let lines: Vec<String> = (0..3).map(|e| episode_line(e, if e == 1 { 0 } else { 16 })).collect();
    std::fs::write(root.join("meta/episodes.jsonl"), lines.join("\n")).expect("episodes.jsonl");
    let expected = "meta/episodes.jsonl: episode 1 says length 0 but data/chunk-000/episode_000001.parquet has 16 rows";
    for verb in ["quality", "info"] {
        let err = run_err(armstack(dir).args(["dataset", verb, "ds"]));
        assert!(err.contains(expected), "dataset {verb}: {err}");
    }
}
