//! The driver verbs end to end through the CLI against the servo emulator on a pseudo-terminal:
//! `driver`, `calibrate`, `bench driver`, and `--robot widowx` on `record`, `teleop`, `dataset
//! replay` and `deploy`.

mod common;

use std::path::Path;

use common::{armstack, run_err, run_ok};

/// A number after `key` in `text` (e.g. "retries" in "… 12 retries").
fn number_before(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no {key:?} in {text}"));
    text[..at]
        .split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number before {key:?}"))
}

#[test]
fn driver_calibrate_and_bench_against_the_emulator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = run_ok(armstack(dir).args(["driver", "--emulate", "--cycles", "150"]));
    assert!(out.contains("driver: 150 cycles"), "{out}");
    assert_eq!(number_before(&out, "failed transactions"), 0, "{out}");

    // 1% corrupted bytes: the driver keeps running and counts its retries.
    let out = run_ok(armstack(dir).args(["driver", "--emulate", "--emulate-corrupt", "0.01", "--cycles", "200"]));
    assert!(number_before(&out, "retries") > 10, "{out}");
    assert!(number_before(&out, "CRC errors") > 0, "{out}");

    // Calibration recovers the emulated arm's mount offsets and writes a map the driver uses.
    let out = run_ok(armstack(dir).args(["calibrate", "--emulate", "--out", "arm.toml", "--sweep-s", "1.5"]));
    assert!(out.contains("against the true mount offset: 0 ticks"), "{out}");
    let map = std::fs::read_to_string(dir.join("arm.toml")).unwrap();
    assert!(map.contains("homing_offset_ticks = 150"), "{map}");
    let err = run_err(armstack(dir).args(["calibrate", "--emulate", "--out", "arm.toml"]));
    assert!(err.contains("--force"), "{err}");
    // The uncalibrated arm: the built-in map is refused (the shadow disagrees), the calibrated one runs.
    let err = run_err(armstack(dir).args(["driver", "--emulate", "--emulate-uncalibrated", "--cycles", "50"]));
    assert!(err.contains("refusing to enable torque") && err.contains("shadow servo 3"), "{err}");
    run_ok(armstack(dir).args([
        "driver",
        "--emulate",
        "--emulate-uncalibrated",
        "--config",
        "arm.toml",
        "--cycles",
        "50",
    ]));

    // The benchmark: three rows of JSON; full cycles well above 100 Hz at 1 Mbps.
    let out = run_ok(armstack(dir).args(["bench", "driver", "--emulate", "--cycles", "300", "--json", "bench.json"]));
    assert!(out.contains("| sync read + bulk write | 0% |"), "{out}");
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[1]["hz"].as_f64().unwrap() > 150.0, "{rows:?}");
    assert!(rows[2]["retries"].as_u64().unwrap() > 0, "{rows:?}");

    // A launch file: the driver node on the emulator, driven by the waypoints node.
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/widowx_waypoints.toml")).unwrap();
    std::fs::write(dir.join("wx.toml"), example.replace("publish_hz = 20", "publish_hz = 20\ncycles = 150")).unwrap();
    let out = run_ok(armstack(dir).args(["launch", "wx.toml"]));
    let line = out.lines().find(|l| l.starts_with("driver: 150 cycles")).unwrap_or_else(|| panic!("{out}"));
    assert!(number_before(line, "commands applied") > 10, "{line}");

    // Clear errors.
    let err = run_err(armstack(dir).args(["driver", "--cycles", "1"]));
    assert!(err.contains("--port") && err.contains("--emulate"), "{err}");
    std::fs::write(dir.join("bad.toml"), map.replacen("id = 4", "id = 1", 1)).unwrap();
    let err = run_err(armstack(dir).args(["driver", "--emulate", "--config", "bad.toml", "--cycles", "1"]));
    assert!(err.contains("servo ID 1 is used twice"), "{err}");
}

#[test]
fn record_teleop_replay_and_deploy_on_the_emulated_widowx() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wx = ["--robot", "widowx", "--emulate"];
    let out = run_ok(
        armstack(dir).args(["record", "--dataset", "wx", "--no-cameras", "--device", "circle"]).args(wx).args([
            "--episodes",
            "2",
            "--episode-s",
            "1.5",
            "--reset-s",
            "0.2",
        ]),
    );
    assert!(out.contains("recorded 2 episodes") && out.contains("30 frames"), "{out}");
    let info = std::fs::read_to_string(dir.join("wx/meta/info.json")).unwrap();
    assert!(info.contains("\"robot_type\": \"widowx250\"") && !info.contains("environment_state"), "{info}");

    let out =
        run_ok(armstack(dir).args(["teleop", "--device", "circle", "--episodes", "1", "--episode-s", "1"]).args(wx));
    assert!(out.contains("teleop: 1 episodes"), "{out}");

    // Replaying a recorded episode on the (deterministic) emulated arm reproduces its states.
    let out = run_ok(armstack(dir).args(["dataset", "replay", "wx", "--episode", "1"]).args(wx));
    let rms: f64 =
        out.split("recorded states ").nth(1).and_then(|t| t.split(' ').next()).and_then(|v| v.parse().ok()).unwrap();
    assert!(rms < 0.05, "{out}");

    // A proprioception-only policy trained on the arm's data drives the arm through the driver.
    run_ok(armstack(dir).args([
        "train",
        "bc",
        "--dataset",
        "wx",
        "--out",
        "runs/wx",
        "--steps",
        "10",
        "--batch-size",
        "8",
    ]));
    let out = run_ok(armstack(dir).args(["deploy", "--policy", "runs/wx", "--ticks", "20"]).args(wx));
    let ticks = out.lines().find(|l| l.starts_with("ticks")).unwrap_or_default();
    assert!(ticks.contains("ticks 20, commands 20"), "{out}");
    // A driver fault ends an unbounded deployment at once, with the reason.
    let run = run_bounded(
        armstack(dir).args(["deploy", "--policy", "runs/wx", "--emulate-shadow-slip-s", "1"]).args(wx),
        40.0,
    );
    assert!(!run.success && run.stderr.contains("shadow servo 3"), "{}", run.stderr);
    assert!(run.secs < 25.0, "deploy took {:.1} s to stop after the fault", run.secs);
    // Weights that do not load end the deployment before the robot starts (the robot used to
    // wait for the policy node at the start forever).
    let copied = std::process::Command::new("cp").args(["-r", "runs/wx", "runs/broken"]).current_dir(dir).status();
    assert!(copied.is_ok_and(|s| s.success()), "cp -r");
    let weights = dir.join("runs/broken/model.mpk");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let run = run_bounded(armstack(dir).args(["deploy", "--policy", "runs/broken"]).args(wx), 40.0);
    assert!(!run.success && run.stderr.contains("model.mpk"), "{}", run.stderr);

    // Clear errors.
    let err = run_err(armstack(dir).args(["record", "--dataset", "cams", "--device", "circle"]).args(wx));
    assert!(err.contains("--no-cameras"), "{err}");
    let err = run_err(armstack(dir).args(["teleop", "--robot", "widowx", "--device", "circle"]));
    assert!(err.contains("--port") && err.contains("--emulate"), "{err}");
    let err = run_err(armstack(dir).args(["teleop", "--device", "scripted"]).args(wx));
    assert!(err.contains("--robot sim"), "{err}");
}

#[test]
fn calibrate_checks_its_output_before_touching_the_servos() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("maps")).unwrap();
    std::fs::write(dir.join("old.toml"), "keep me").unwrap();
    for (out, force, expected) in [
        ("missing/arm.toml", false, "the folder missing does not exist"),
        ("maps", true, "--out maps is a directory"),
        ("old.toml", false, "old.toml exists; pass --force to overwrite it"),
    ] {
        let mut cmd = armstack(dir);
        cmd.args(["calibrate", "--emulate", "--out", out, "--sweep-s", "0.5"]);
        if force {
            cmd.arg("--force");
        }
        let result = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
        assert!(!result.status.success(), "{out}: {stdout}");
        assert!(stderr.contains(expected), "{out}: {stderr}");
        // Refused up front: no calibration ran (its table and offsets would be on stdout).
        assert!(stdout.is_empty(), "{out}: the calibration ran:\n{stdout}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("old.toml")).unwrap(), "keep me");
    assert!(!dir.join("missing").exists());
}

/// What a bounded run of the CLI did.
struct Bounded {
    success: bool,
    stdout: String,
    stderr: String,
    secs: f64,
}

/// Runs `cmd`, killing it (and failing the test) if it is still running after `limit_s`.
fn run_bounded(cmd: &mut std::process::Command, limit_s: f64) -> Bounded {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn armstack");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed().as_secs_f64() > limit_s {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {limit_s} s\nstderr:\n{}", err.join().unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Bounded {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        secs: started.elapsed().as_secs_f64(),
    }
}

/// A driver fault mid-run (a shadow servo's encoder slips) ends `teleop`, `record` and
/// `launch` at once, with a non-zero exit and the reason on stderr; `record` keeps every
/// finished episode.
#[test]
fn a_driver_fault_ends_teleop_and_record_promptly_keeping_finished_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wx = ["--robot", "widowx", "--emulate"];
    // No episode limit: only the fault can end it.
    let run = run_bounded(
        armstack(dir).args(["teleop", "--device", "circle", "--emulate-shadow-slip-s", "1"]).args(wx),
        30.0,
    );
    assert!(!run.success, "teleop exited 0 after a fault:\n{}", run.stderr);
    assert!(run.stderr.contains("shadow servo 3"), "{}", run.stderr);
    assert!(run.secs < 15.0, "teleop took {:.1} s to stop after the fault", run.secs);

    // Episodes of 1 s: the slip lands after a few finished ones.
    let run = run_bounded(
        armstack(dir)
            .args(["record", "--dataset", "wx", "--no-cameras", "--device", "circle", "--episodes", "50"])
            .args(["--episode-s", "1", "--reset-s", "0.2", "--emulate-shadow-slip-s", "3.5"])
            .args(wx),
        40.0,
    );
    assert!(!run.success, "record exited 0 after a fault:\n{}", run.stderr);
    assert!(run.stderr.contains("shadow servo 3"), "{}", run.stderr);
    assert!(run.secs < 20.0, "record took {:.1} s to stop after the fault", run.secs);
    let recorded = number_before(&run.stdout, "episodes (");
    assert!(recorded >= 1, "{}", run.stdout);
    let ds = dataset::reader::Dataset::open(&dir.join("wx")).expect("the dataset opens after the fault");
    assert_eq!(ds.episodes().len() as u64, recorded, "every finished episode is kept");
    assert!(run.stderr.contains(&format!("{recorded} episodes in total are kept")), "{}", run.stderr);

    // `launch`: the example's nodes run until stopped; the fault stops all of them.
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/widowx_waypoints.toml")).unwrap();
    let faulty = example.replace("publish_hz = 20", "publish_hz = 20\nemulate_shadow_slip_s = 1");
    std::fs::write(dir.join("faulty.toml"), faulty).unwrap();
    let run = run_bounded(armstack(dir).args(["launch", "faulty.toml"]), 30.0);
    assert!(!run.success && run.stderr.contains("shadow servo 3"), "{}", run.stderr);
    assert!(run.secs < 15.0, "launch took {:.1} s to stop after the fault", run.secs);
}
