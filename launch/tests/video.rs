//! `armstack video ingest` and `armstack train icvf` end to end on a file the `ffmpeg` CLI makes.

mod common;

use common::{armstack, run_err, run_ok};

#[test]
fn ingest_then_icvf_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("videos")).unwrap();
    let ok = std::process::Command::new("ffmpeg")
        .current_dir(dir.join("videos"))
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=s=80x60:r=20:d=2", "-c:v", "ffv1", "a.mkv"])
        .status()
        .expect("the ffmpeg CLI is needed (apt install ffmpeg)");
    assert!(ok.success());
    std::fs::write(dir.join("videos/readme.txt"), "not a video").unwrap();
    let out = run_ok(
        armstack(dir).args(["video", "ingest", "--videos", "videos", "--out", "frames", "--size", "32", "--fps", "5"]),
    );
    assert!(out.contains("1 episodes, 1 skipped") && out.contains("40 frames decoded, 10 written"), "{out}");
    assert!(out.contains("skipped videos/readme.txt"), "{out}");
    let err = run_err(armstack(dir).args(["video", "ingest", "--videos", "videos", "--out", "frames"]));
    assert!(err.contains("not empty"), "{err}");
    let out = run_ok(armstack(dir).args([
        "train",
        "icvf",
        "--frames",
        "frames",
        "--out",
        "runs/icvf",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--hidden",
        "16",
    ]));
    assert!(out.contains("icvf: 2 steps on 10 frames (1 episodes)"), "{out}");
    assert!(dir.join("runs/icvf/encoder.mpk").exists() && dir.join("runs/icvf/icvf.json").exists());
    let err = run_err(armstack(dir).args(["train", "icvf", "--frames", "videos", "--out", "runs/x"]));
    assert!(err.contains("manifest.json"), "{err}");
}
