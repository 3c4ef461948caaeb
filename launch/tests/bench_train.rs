//! `armstack bench train` through the CLI: every row runs on a recorded dataset (quick mode) and
//! reports every field; `--compare` adds the ratio to a PyTorch reference file; a malformed
//! reference, or a backend the build lacks, is refused before anything runs.

mod common;

use common::{armstack, run_err, run_ok};

const ROWS: [&str; 7] = ["bc_state", "bc_vision_64", "bc_vision_128", "co_rft_critic", "expo_update", "icvf", "idm"];

#[test]
fn bench_train_reports_every_row_and_field_and_the_ratio_to_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A reference as bench/pytorch/train_reference.py writes it, for one row, at other threads.
    let reference = r#"[{"name": "bc_state", "samples_per_s": 250.0, "ms_per_step": 16.0,
        "backend": "pytorch-2.9.0-cpu", "threads": 2, "batch": 4, "steps": 2, "params": 1}]"#;
    std::fs::write(dir.join("torch.json"), reference).unwrap();
    let out = run_ok(armstack(dir).args([
        "bench",
        "train",
        "--quick",
        "--threads",
        "1",
        "--compare",
        "torch.json",
        "--json",
        "rows.json",
    ]));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json")).unwrap()).unwrap();
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
        "bench", "train", "--quick", "--threads", "1", "--rows", "bc_state", "--device", "flex", "--json", "flex.json",
    ]));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("flex.json")).unwrap()).unwrap();
    assert!(rows.len() == 1 && rows[0]["backend"].as_str().unwrap_or("").contains("flex"), "{flex}");
    // A comparison backend this build did not compile is refused with the cargo features that
    // add it, before any recording.
    let err = run_err(armstack(dir).args(["bench", "train", "--quick", "--device", "ndarray-blas"]));
    assert!(err.contains("--features video,ndarray-blas") && !err.contains("recording"), "{err}");
}
