//! `armstack bench train` through the CLI: every row runs on a recorded dataset (quick mode) and
//! reports every field; `--compare` adds the ratio to a PyTorch reference file; a malformed
//! reference, or a backend the build lacks, is refused before anything runs.

mod common;

use common::{armstack, run_err, run_ok};

/// Runs `armstack bench train --quick --threads 1 ARGS --json rows.json` in `dir`; returns its
/// standard output and the rows of the JSON file.
fn quick_rows(dir: &std::path::Path, args: &[&str]) -> (String, Vec<serde_json::Value>) {
    let out = run_ok(
        armstack(dir).args(["bench", "train", "--quick", "--threads", "1"]).args(args).args(["--json", "rows.json"]),
    );
    let rows = serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json")).unwrap()).unwrap();
    (out, rows)
}

const ROWS: [&str; 7] = ["bc_state", "bc_vision_64", "bc_vision_128", "co_rft_critic", "expo_update", "icvf", "idm"];

#[test]
fn bench_train_reports_every_row_and_field_and_the_ratio_to_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A reference as bench/pytorch/train_reference.py writes it, for one row, at other threads.
    let reference = r#"[{"name": "bc_state", "samples_per_s": 250.0, "ms_per_step": 16.0,
        "backend": "pytorch-2.9.0-cpu", "threads": 2, "batch": 4, "steps": 2, "params": 1}]"#;
    std::fs::write(dir.join("torch.json"), reference).unwrap();
    let (out, rows) = quick_rows(dir, &["--compare", "torch.json"]);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ROWS, "{out}");
    for r in &rows {
        let name = &r["name"];
        for key in ["samples_per_s", "ms_per_step", "peak_rss_mib", "peak_rss_delta_mib"] {
            let v = r[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= 0.0, "{name}: {key} = {}", r[key]);
        }
        assert!(r["samples_per_s"].as_f64().unwrap() > 0.0 && r["peak_rss_mib"].as_f64().unwrap() > 0.0, "{r}");
        // samples/s and ms/step describe the same timing.
        let (rate, ms, batch) =
            (r["samples_per_s"].as_f64().unwrap(), r["ms_per_step"].as_f64().unwrap(), r["batch"].as_f64().unwrap());
        assert!((rate * ms / 1e3 - batch).abs() < 1e-6 * batch.max(1.0), "{r}");
        // The default build's CPU backend.
        assert!(r["backend"].as_str().unwrap_or("").contains("libtorch"), "{r}");
        assert_eq!(r["threads"], 1, "{r}");
        assert!((1..=4).contains(&r["batch"].as_u64().unwrap_or(0)), "quick mode caps batches at 4: {r}");
        assert_eq!(r["steps"], 2, "{r}");
        assert!(r["params"].as_u64().unwrap_or(0) > 1000, "{r}");
        assert!(!r["shape"].as_str().unwrap_or("").is_empty(), "{r}");
        assert!(out.contains(&format!("| {} |", name.as_str().unwrap())), "table row {name}:\n{out}");
    }
    // The ratio is this run's samples/s over the reference's, for the rows the reference has.
    let bc = &rows[0];
    assert_eq!(bc["pytorch_samples_per_s"], 250.0);
    let ratio = bc["ratio_vs_pytorch"].as_f64().unwrap();
    assert!((ratio - bc["samples_per_s"].as_f64().unwrap() / 250.0).abs() < 1e-9, "{bc}");
    assert!(rows[1..].iter().all(|r| r.get("ratio_vs_pytorch").is_none()), "no reference, no ratio");
    assert!(out.contains("PyTorch samples/s | ratio") && out.contains("1 threads"), "{out}");
    assert!(out.contains("ran with 2 threads"), "a thread-count mismatch is pointed out:\n{out}");

    // A reference without samples/s is refused before any recording or training.
    std::fs::write(dir.join("bad.json"), r#"[{"name": "bc_state"}]"#).unwrap();
    let err = run_err(armstack(dir).args(["bench", "train", "--quick", "--compare", "bad.json"]));
    assert!(err.contains("bad.json") && err.contains("samples_per_s"), "{err}");
    let err = run_err(armstack(dir).args(["bench", "train", "--rows", "bc_nothing"]));
    assert!(err.contains("bc_nothing") && err.contains("bc_state"), "{err}");
    // burn-flex stays selectable by name in every build.
    let flex = run_ok(armstack(dir).args([
        "bench",
        "train",
        "--quick",
        "--threads",
        "1",
        "--rows",
        "bc_state",
        "--device",
        "flex",
        "--json",
        "flex.json",
    ]));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("flex.json")).unwrap()).unwrap();
    assert!(rows.len() == 1 && rows[0]["backend"].as_str().unwrap_or("").contains("flex"), "{flex}");
    // A comparison backend this build did not compile is refused with the cargo features that
    // add it, before any recording.
    let err = run_err(armstack(dir).args(["bench", "train", "--quick", "--device", "ndarray-blas"]));
    assert!(err.contains("--features video,ndarray-blas") && !err.contains("recording"), "{err}");
}

/// `--reference` runs the PyTorch reference script in the same run, row by row and round by
/// round. Runs when `ARMSTACK_PYTHON_TESTS=1` (CI installs PyTorch 2.9.0 for `python3`).
#[test]
fn bench_train_runs_the_pytorch_reference_interleaved_and_reports_the_median_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Refused before any recording: a missing script, a Python without torch, and two
    // references at once.
    let err =
        run_err(armstack(dir).args(["bench", "train", "--quick", "--reference", "--reference-script", "nothing.py"]));
    assert!(err.contains("nothing.py") && !err.contains("recording"), "{err}");
    let err = run_err(armstack(dir).args(["bench", "train", "--quick", "--reference", "false"]));
    assert!(err.contains("cannot import torch") && !err.contains("recording"), "{err}");
    std::fs::write(dir.join("torch.json"), "[]").unwrap();
    let err = run_err(armstack(dir).args(["bench", "train", "--quick", "--reference", "--compare", "torch.json"]));
    assert!(err.contains("--compare") && err.contains("--reference"), "{err}");
    if std::env::var("ARMSTACK_PYTHON_TESTS").ok().as_deref() != Some("1") {
        eprintln!("skipped the PyTorch run: set ARMSTACK_PYTHON_TESTS=1 (needs python3 with torch)");
        return;
    }
    let (out, rows) = quick_rows(dir, &["--rows", "bc_state,idm", "--rounds", "3", "--reference"]);
    assert_eq!(rows.len(), 2, "{out}");
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default()
    };
    for r in &rows {
        let (ours, theirs) = (floats(&r["round_samples_per_s"]), floats(&r["pytorch_round_samples_per_s"]));
        assert!(ours.len() == 3 && theirs.len() == 3, "three rounds each: {r}");
        assert!(ours.iter().chain(&theirs).all(|v| v.is_finite() && *v > 0.0), "{r}");
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s[1]
        };
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, p)| o / p).collect();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(r["samples_per_s"].as_f64().unwrap(), median(&ours)), "median round: {r}");
        assert!(close(r["pytorch_samples_per_s"].as_f64().unwrap(), median(&theirs)), "{r}");
        assert!(close(r["ratio_vs_pytorch"].as_f64().unwrap(), median(&ratios)), "median ratio: {r}");
        let range = floats(&r["ratio_range"]);
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        assert!(range.len() == 2 && close(range[0], lo) && close(range[1], hi), "{r}");
        assert!(out.contains(&format!("| {} |", r["name"].as_str().unwrap())), "{out}");
    }
    assert!(out.contains("3 rounds per row") && out.contains("PyTorch samples/s"), "{out}");
    assert!(out.contains("median of the rounds' ratios"), "{out}");
}

/// `--reference` with a stand-in Python (no PyTorch needed): the script receives the row, the
/// threads, its JSON path, the steps and warm-up of this run; a round the reference fails is
/// reported, left out of the ratio, and the finished rows are still written before the command
/// fails.
#[cfg(unix)]
#[test]
fn bench_train_reference_gets_the_runs_arguments_and_a_failed_round_loses_no_row() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("argv.txt");
    // Answers `-c "import torch"`; logs every run; fails idm's second run; else reports 100/s.
    let python = dir.join("fake-python");
    let body = format!(
        r#"#!/bin/sh
[ "$1" = "-c" ] && exit 0
echo "$@" >> {log}
row=$3
json=$7
if [ "$row" = idm ] && [ "$(grep -c -- "--rows idm " {log})" = 2 ]; then
  echo "killed: out of memory" >&2
  exit 3
fi
printf '[{{"name": "%s", "samples_per_s": 100.0, "threads": 1}}]' "$row" > "$json"
"#,
        log = log.display()
    );
    std::fs::write(&python, body).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("reference.py"), "# stand-in: the fake Python does the work\n").unwrap();
    let out = armstack(dir)
        .args(["bench", "train", "--quick", "--threads", "1", "--rows", "bc_state,idm", "--rounds", "2"])
        .args(["--reference", python.to_str().unwrap(), "--reference-script", "reference.py", "--json", "rows.json"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a failed reference round fails the command:\n{stdout}\n{stderr}");
    assert!(stderr.contains("idm, round 2") && stderr.contains("out of memory"), "{stderr}");
    assert!(stdout.contains("failed in 1 round"), "{stdout}");
    // The script got this run's arguments, once per row and round.
    let calls: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for (call, row) in calls.iter().zip(["bc_state", "bc_state", "idm", "idm"]) {
        let args: Vec<&str> = call.split_whitespace().collect();
        assert_eq!(args[0], "reference.py", "{call}");
        assert_eq!(&args[1..5], ["--rows", row, "--threads", "1"], "{call}");
        assert_eq!(&args[7..], ["--steps", "2", "--warmup", "1", "--quick"], "{call}");
    }
    // Both rows are written; idm's ratio comes from its one measured round.
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 2, "{stdout}");
    let ours = |r: &serde_json::Value| -> Vec<f64> {
        r["round_samples_per_s"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect()
    };
    let bc = &rows[0];
    assert_eq!(bc["pytorch_samples_per_s"], 100.0);
    let mean_ratio = ours(bc).iter().map(|o| o / 100.0).sum::<f64>() / 2.0;
    assert!((bc["ratio_vs_pytorch"].as_f64().unwrap() - mean_ratio).abs() < 1e-9, "{bc}");
    let idm = &rows[1];
    assert_eq!(idm["pytorch_round_samples_per_s"], serde_json::json!([100.0, null]), "{idm}");
    assert!((idm["ratio_vs_pytorch"].as_f64().unwrap() - ours(idm)[0] / 100.0).abs() < 1e-9, "{idm}");
}
