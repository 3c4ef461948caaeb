//! The policy verbs end to end through the CLI: `demo` (record → BC → CO-RFT → eval → video),
//! `train` / `eval` on its outputs, `deploy` against the real-time sim, and clear errors.

mod common;

use common::{armstack, checkpoint_bytes_without_ids, run_ok};

#[test]
fn demo_then_train_eval_and_deploy_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A small demo: every stage runs, the table and the video come out.
    let out = run_ok(armstack(dir).args([
        "demo",
        "--out",
        "demo",
        "--demos",
        "6",
        "--noise",
        "0.3",
        "--bc-steps",
        "30",
        "--co-rft-steps",
        "20",
        "--batch-size",
        "32",
        "--eval-episodes",
        "4",
        "--critics",
        "2",
    ]));
    assert!(out.contains("| BC |") && out.contains("| CO-RFT |"), "{out}");
    assert!(out.contains("recorded 6 demonstrations"), "{out}");
    let video = dir.join("demo/co_rft_rollouts.mp4");
    assert!(std::fs::metadata(&video).map(|m| m.len() > 1000).unwrap_or(false), "no rollout video");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["bc"]["episodes"], 4);
    assert_eq!(summary["co_rft"]["episodes"], 4);
    // Filtered BC runs whenever a demonstration succeeded.
    assert!(summary["demo_successes"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["bc_successful_only"]["episodes"], 4);
    assert!(out.contains("| BC, successful demos only |"), "{out}");

    // train bc with periodic evaluation keeps the best checkpoint and logs JSONL metrics.
    let out = run_ok(armstack(dir).args([
        "train",
        "bc",
        "--dataset",
        "demo/data",
        "--out",
        "runs/bc",
        "--steps",
        "20",
        "--batch-size",
        "16",
        "--eval-every",
        "10",
        "--eval-episodes",
        "2",
        "--num-envs",
        "2",
    ]));
    assert!(out.contains("kept the best"), "{out}");
    let metrics = std::fs::read_to_string(dir.join("runs/bc/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("eval_success")).count(), 2, "{metrics}");
    assert!(dir.join("runs/bc/resume/optim_policy.mpk").exists());

    // The default CPU backend (LibTorch) trains reproducibly: the same seed and data give the same
    // weights and losses bit for bit, for BC and for CO-RFT from it.
    for run in ["a", "b"] {
        run_ok(armstack(dir).args([
            "train",
            "bc",
            "--dataset",
            "demo/data",
            "--out",
            &format!("rep/bc_{run}"),
            "--steps",
            "20",
            "--batch-size",
            "16",
            "--seed",
            "3",
        ]));
        run_ok(armstack(dir).args([
            "train",
            "co-rft",
            "--dataset",
            "demo/data",
            "--init",
            &format!("rep/bc_{run}"),
            "--out",
            &format!("rep/co_rft_{run}"),
            "--steps",
            "6",
            "--batch-size",
            "16",
            "--critics",
            "2",
            "--seed",
            "3",
            "--critic-warmup",
            "2",
        ]));
    }
    // Steps within the critic warm-up would never move the actor: refused, not saved as CO-RFT.
    let out = armstack(dir)
        .args(["train", "co-rft", "--dataset", "demo/data", "--init", "rep/bc_a", "--out", "rep/none", "--steps", "6"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("critic warm-up"), "{err}");
    let bytes = |p: &str| checkpoint_bytes_without_ids(&dir.join(p));
    let losses = |p: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(p))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("samples_per_s"); // a timing, not a result
                v
            })
            .collect()
    };
    for file in ["bc_{}/model.mpk", "co_rft_{}/model.mpk", "co_rft_{}/critic.mpk"] {
        let (a, b) = (format!("rep/{}", file.replace("{}", "a")), format!("rep/{}", file.replace("{}", "b")));
        assert!(bytes(&a) == bytes(&b), "{a} and {b} differ");
    }
    for file in ["bc_{}/metrics.jsonl", "co_rft_{}/metrics.jsonl"] {
        let (a, b) = (format!("rep/{}", file.replace("{}", "a")), format!("rep/{}", file.replace("{}", "b")));
        let (la, lb) = (losses(&a), losses(&b));
        assert!(!la.is_empty() && la == lb, "{a} and {b} differ:\n{la:?}\n{lb:?}");
    }

    // eval rebuilds the model from the folder alone; JSON report with a 95% interval.
    run_ok(armstack(dir).args([
        "eval",
        "--policy",
        "runs/bc",
        "--episodes",
        "3",
        "--num-envs",
        "3",
        "--json",
        "eval.json",
        "--exec",
        "ensemble",
    ]));
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["episodes"], 3);
    let (lo, hi) = (eval["ci95"][0].as_f64().unwrap(), eval["ci95"][1].as_f64().unwrap());
    assert!(lo <= eval["success_rate"].as_f64().unwrap() && hi > lo);
    assert_eq!(eval["exec"], "ensemble");

    // The execution-mode table: every mode for each policy on the same episodes, pooled per mode.
    let out = run_ok(armstack(dir).args([
        "eval",
        "--policy",
        "runs/bc",
        "--policy",
        "demo/bc",
        "--compare-exec",
        "--episodes",
        "2",
        "--num-envs",
        "2",
        "--json",
        "modes.json",
    ]));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("modes.json")).unwrap()).unwrap();
    let modes: Vec<&str> = rows.iter().map(|r| r["exec"].as_str().unwrap()).collect();
    assert_eq!(modes, ["open-loop", "ensemble", "async", "open-loop", "ensemble", "async"]);
    for mode in ["open-loop", "ensemble", "async"] {
        let k: u64 = rows.iter().filter(|r| r["exec"] == mode).map(|r| r["successes"].as_u64().unwrap()).sum();
        assert!(out.contains(&format!("| pooled (2 policies) | {mode} | {k}/4 |")), "{out}");
    }
    let refused =
        armstack(dir).args(["eval", "--policy", "runs/bc", "--compare-exec", "--video", "v.mp4"]).output().unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--video records one"));

    // deploy: the policy node drives the real-time sim over the bus.
    let out = run_ok(armstack(dir).args(["deploy", "--policy", "demo/co_rft", "--ticks", "30", "--rate", "20"]));
    let ticks_line = out.lines().find(|l| l.starts_with("ticks")).unwrap_or_default();
    assert!(ticks_line.contains("ticks 30") && ticks_line.contains("commands"), "{out}");
    // An episode count: the run ends with the robot's last episode.
    let out = run_ok(armstack(dir).args(["deploy", "--policy", "demo/co_rft", "--episodes", "1", "--rate", "20"]));
    assert!(out.contains("episodes 1, successes"), "{out}");

    // demo never deletes a folder that is not a previous demo's output.
    std::fs::create_dir_all(dir.join("mine")).unwrap();
    std::fs::write(dir.join("mine/notes.txt"), "keep").unwrap();
    let out = armstack(dir).args(["demo", "--out", "mine", "--demos", "1"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a previous demo"));
    assert!(dir.join("mine/notes.txt").exists());

    // A device this build lacks is refused before any recording, naming the feature to build.
    let out =
        armstack(dir).args(["demo", "--out", "nodev", "--demos", "1", "--device", "ndarray-blas"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--features video,ndarray-blas"), "{err}");
    assert!(!dir.join("nodev").exists(), "nothing recorded for a device the build lacks");

    // A policy folder that is not one: a clear error naming policy.json.
    let out = armstack(dir).args(["eval", "--policy", "demo/data", "--episodes", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("policy.json"), "{err}");
}

#[test]
fn vision_demo_trains_the_camera_vla_from_decoded_video() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = run_ok(armstack(dir).args([
        "demo",
        "--out",
        "v",
        "--variant",
        "vision",
        "--demos",
        "2",
        "--noise",
        "0",
        "--bc-steps",
        "3",
        "--co-rft-steps",
        "2",
        "--batch-size",
        "4",
        "--eval-episodes",
        "2",
        "--critics",
        "2",
    ]));
    assert!(out.contains("| CO-RFT |"), "{out}");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("v/co_rft/policy.json")).unwrap()).unwrap();
    assert_eq!(spec["config"]["variant"], "vision");
    assert_eq!(spec["config"]["image"]["cameras"][0], "observation.images.front");
    assert!(dir.join("v/data/videos").exists(), "the demonstrations were recorded with cameras");
}
