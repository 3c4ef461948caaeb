//! `armstack bench fuzz` end to end: small bounded runs of every kind of hostile message against
//! the real sim, driver (emulated) and recorder find no crash, no limit violation, no e-stop hole
//! and no lost episode, and the JSON accounts for every kind sent.

use std::process::Command;

use serde_json::Value;

/// Runs `bench fuzz` on `targets` with `messages` messages; the exit status, the output and the
/// JSON rows.
fn fuzz(targets: &str, messages: u32) -> (bool, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fuzz.json");
    let out = Command::new(env!("CARGO_BIN_EXE_armstack"))
        .env("ARMSTACK_BUS_DIR", dir.path().join("bus"))
        .env("RUST_LOG", "error")
        .args(["bench", "fuzz", "--targets", targets, "--messages", &messages.to_string()])
        .args(["--estop-pulses", "1", "--max-payload-mb", "3", "--seed", "7", "--dir"])
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let rows = std::fs::read_to_string(&json).map_or_else(|_| Vec::new(), |j| serde_json::from_str(&j).unwrap());
    (out.status.success(), text, rows)
}

/// Every kind was sent, nothing crashed, no limit, speed or e-stop invariant was violated, the
/// run ended as asked and the node counted the garbage it refused.
fn assert_clean(row: &Value) {
    let target = row["target"].as_str().unwrap();
    assert_eq!(row["crashes"].as_array().map(Vec::len), Some(0), "{target}: {row}");
    let kinds = ["random_bytes", "wrong_schema", "newer_schema", "wrong_shape", "non_finite", "bad_stamp"];
    for kind in
        kinds.iter().chain(&["seq_jump", "huge", "second_source", "estop_pulse", "stale_release", "episode_flood"])
    {
        assert!(row["sent"][kind].as_u64().unwrap() > 0, "{target}: no {kind} sent: {row}");
    }
    let observed = &row["observed"];
    assert!(observed["joint_states"].as_u64().unwrap() > 10, "{target}: the robot was not watched: {row}");
    for count in ["limit_violations", "velocity_violations", "hold_violations", "released_while_holding"] {
        assert_eq!(observed[count].as_u64(), Some(0), "{target}: {count}: {row}");
    }
    assert_eq!(row["estop"]["pulses"].as_u64(), Some(1), "{target}: {row}");
    assert_eq!(row["estop"]["missed"].as_u64(), Some(0), "{target}: {row}");
    assert_eq!(row["estop"]["release_ignored"].as_u64(), Some(0), "{target}: {row}");
    assert_eq!(row["stop_obeyed"].as_bool(), Some(true), "{target}: {row}");
    assert!(row["node_counters"]["decode_errors"].as_u64().unwrap() > 0, "{target}: {row}");
    assert!(row["node_counters"]["newer_schema"].as_u64().unwrap() > 0, "{target}: {row}");
}

#[test]
fn fuzzing_the_sim_and_the_driver_finds_nothing() {
    let (ok, text, rows) = fuzz("sim,driver", 800);
    assert!(ok, "the fuzz run found something:\n{text}");
    let targets: Vec<&str> = rows.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["sim", "driver"]);
    for row in &rows {
        assert!(row["sent"]["extreme"].as_u64().unwrap() > 0, "{row}");
        assert_clean(row);
    }
}

#[test]
fn fuzzing_a_recording_finds_nothing() {
    let (ok, text, rows) = fuzz("record", 600);
    assert!(ok, "the fuzz run found something:\n{text}");
    let record = &rows[0];
    assert_clean(record);
    assert_eq!(record["second_commander_refused"].as_bool(), Some(true), "{record}");
    assert!(record["expected_refusal"].as_str().unwrap().contains("would not hold"), "{record}");
    let episodes = &record["episodes"];
    assert!(episodes["finished"].as_u64().unwrap() > 0, "{record}");
    assert_eq!(episodes["lost"].as_u64(), Some(0), "{record}");
    assert_eq!(episodes["foreign"].as_u64(), Some(0), "{record}");
    assert!(episodes["dataset_error"].is_null(), "{record}");
    assert!(record["recorder"]["malformed"].as_u64().unwrap() > 0, "{record}");
}
