//! The `armstack` binary end to end: good commands work, bad input fails with a clear message.

use std::process::Command;

fn armstack(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_armstack"));
    cmd.env("ARMSTACK_BUS_DIR", dir.join("bus")).env("RUST_LOG", "warn");
    cmd
}

#[test]
fn scene_list_names_every_builtin_scene() {
    let dir = tempfile::tempdir().unwrap();
    let out = armstack(dir.path()).args(["scene", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for scene in ["reach", "pick_cube", "place_in_bin", "push_to_target", "sort"] {
        assert!(text.contains(scene), "{scene} missing from:\n{text}");
    }
}

#[test]
fn render_writes_both_cameras_rgb_and_depth_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let png_path = dir.path().join("frame.png");
    let out = armstack(dir.path())
        .args(["render", "--scene", "place_in_bin", "--seed", "2", "--width", "64", "--height", "48", "--out"])
        .arg(&png_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (64 * 4, 48), "2 cameras × (RGB + depth)");
}

#[test]
fn launch_file_runs_its_nodes_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.toml");
    std::fs::write(
        &file,
        "[[node]]\nkind = \"sim\"\nscene = \"reach\"\nsteps = 30\nas_fast_as_possible = true\ncameras = false\n\n[[node]]\nkind = \"monitor\"\nperiod_s = 0.5\n",
    )
    .unwrap();
    let out = armstack(dir.path()).arg("launch").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn launch_file_with_unknown_node_kind_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[node]]\nkind = \"sim\"\n\n[[node]]\nkind = \"teleporter\"\n").unwrap();
    let out = armstack(dir.path()).arg("launch").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4") || err.contains("bad.toml:5"), "{err}");
    assert!(err.contains("kind") && err.contains("teleporter"), "{err}");
}

#[test]
fn malformed_scene_file_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("myscene.toml");
    let text = sim::scene::BUILTIN_SCENES[1].1.replace("max_steps = 60", "max_steps = 60\nmax_stpes = 3");
    std::fs::write(&file, text).unwrap();
    // A user error prints its message and causes, never a backtrace, even with RUST_BACKTRACE set.
    let out = armstack(dir.path()).args(["scene", "show"]).arg(&file).env("RUST_BACKTRACE", "1").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myscene.toml:5:") && err.contains("max_stpes"), "{err}");
    assert!(err.starts_with("Error: ") && !err.to_lowercase().contains("backtrace"), "{err}");
}

#[test]
fn unknown_scene_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = armstack(dir.path()).args(["sim", "--scene", "juggling", "--steps", "1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scene `juggling`") && err.contains("pick_cube"), "{err}");
}

#[test]
fn ctrl_c_stops_the_sim_node_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let child = armstack(dir.path())
        .args(["sim", "--scene", "reach", "--no-cameras", "--rate", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("sim (reach):") && summary.contains("control steps"), "{summary}");
    // The bus locator file is removed on a clean stop.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("bus")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.iter().all(|e| !e.file_name().to_string_lossy().ends_with(".locator")), "{left:?}");
}

#[test]
fn scripted_teleop_drives_the_sim_through_the_bus() {
    let tmp = tempfile::tempdir().unwrap();
    let out = armstack(tmp.path()).args(["teleop", "--device", "scripted", "--episodes", "3"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("teleop: 3 episodes (3 successful)"), "{stdout}");
}

#[test]
fn keyboard_teleop_without_a_terminal_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = armstack(tmp.path())
        .args(["teleop", "--device", "keyboard"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interactive terminal") && err.contains("--device scripted"), "{err}");
}

mod common;

/// Runs `args` in `dir`, expecting a command-line error: exit status 2 (clap), no panic.
fn usage_error(dir: &std::path::Path, args: &[&str]) -> String {
    let out = common::armstack(dir).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: expected a usage error (2), got {:?}\n{err}", out.status);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

#[test]
fn numeric_flags_out_of_range_are_refused_with_their_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for rate in [["--rate", "0"].as_slice(), &["--rate", "-1"], &["--rate=-5"], &["--rate", "-5"]] {
        let mut args = vec!["deploy", "--policy", "runs/none"];
        args.extend_from_slice(rate);
        let err = usage_error(dir, &args);
        assert!(err.contains("--rate") && err.contains("must be > 0 Hz, got "), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
    let cases: [(&[&str], &str, &str); 9] = [
        (&["sim", "--episodes", "0"], "--episodes", "must be at least 1, got 0"),
        (&["record", "--dataset", "d", "--episodes", "0"], "--episodes", "must be at least 1, got 0"),
        (&["eval", "--policy", "p", "--episodes", "0"], "--episodes", "must be at least 1, got 0"),
        (&["teleop", "--episodes", "-2"], "--episodes", "must be at least 1, got -2"),
        (&["sim", "--expert", "1.5"], "--expert", "must be in [0, 1], got 1.5"),
        (&["sim", "--width", "0"], "--width", "must be in 1..=4096, got 0"),
        (&["train", "bc", "--dataset", "d", "--out", "o", "--steps", "0"], "--steps", "must be at least 1, got 0"),
        (&["topics", "hz", "joint_state", "--seconds", "NaN"], "--seconds", "must be a finite number"),
        (&["sim", "--seed", "-1"], "--seed", "must be at least 0, got -1"),
    ];
    for (args, flag, message) in cases {
        let err = usage_error(dir, args);
        assert!(err.contains(flag) && err.contains(message), "{args:?}: {err}");
    }
}

/// Records `episodes` scripted episodes of `reach` without cameras into `dir/name`.
fn record_reach(dir: &std::path::Path, name: &str, episodes: &str) {
    common::run_ok(common::armstack(dir).args([
        "record",
        "--dataset",
        name,
        "--scene",
        "reach",
        "--device",
        "scripted",
        "--no-cameras",
        "--episodes",
        episodes,
    ]));
}

#[test]
fn outputs_are_checked_before_the_work_and_never_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    record_reach(dir, "data", "2");
    let train = |extra: &[&str]| {
        let mut c = common::armstack(dir);
        c.args(["train", "bc", "--dataset", "data", "--out", "runs/bc", "--steps", "2", "--batch-size", "8"]);
        c.args(["--eval-episodes", "0"]).args(extra);
        c
    };
    common::run_ok(&mut train(&[]));
    // A second run into the same folder is refused, naming the folder and the way out.
    let err = common::run_err(&mut train(&[]));
    assert!(err.contains("runs/bc") && err.contains("already exists") && err.contains("--force"), "{err}");
    let model = dir.join("runs/bc/model.mpk");
    let before = std::fs::metadata(&model).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    common::run_ok(&mut train(&["--force"]));
    assert_ne!(std::fs::metadata(&model).unwrap().modified().unwrap(), before, "--force replaced the run");
    // --force never removes a folder that is not a training run.
    std::fs::create_dir_all(dir.join("mine")).unwrap();
    std::fs::write(dir.join("mine/notes.txt"), "keep").unwrap();
    let err = common::run_err(common::armstack(dir).args([
        "train",
        "bc",
        "--dataset",
        "data",
        "--out",
        "mine",
        "--steps",
        "2",
        "--force",
    ]));
    assert!(err.contains("not a previous training run"), "{err}");
    assert!(dir.join("mine/notes.txt").exists());

    // eval --json into a missing folder fails before the policy is even loaded, and prints no result.
    let out =
        common::armstack(dir).args(["eval", "--policy", "runs/none", "--json", "no/such/eval.json"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--json no/such/eval.json") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("policy.json"), "the output is checked first: {err}");
    let out = common::armstack(dir).args(["eval", "--policy", "runs/bc", "--json", "no/eval.json"]).output().unwrap();
    assert!(!out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));

    // export-video into a path under a file names that path.
    std::fs::write(dir.join("plain"), "x").unwrap();
    let err = common::run_err(common::armstack(dir).args([
        "dataset",
        "export-video",
        "data",
        "--episode",
        "0",
        "--out",
        "plain/clip.mp4",
    ]));
    assert!(err.contains("plain/clip.mp4") && err.contains("is not a folder"), "{err}");

    // A truncated weight file is reported as truncated, with its size, not as a mismatch.
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = common::run_err(common::armstack(dir).args(["eval", "--policy", "runs/bc", "--episodes", "1"]));
    assert!(err.contains("model.mpk") && err.contains("truncated"), "{err}");
    assert!(err.contains(&format!("{} bytes", bytes.len() / 2)) && !err.contains("architecture"), "{err}");
}

/// Runs `cmd` with its standard output closed by the reader before anything is written (as
/// `| head -c 0` would) and asserts it ends with status 141 and no panic or pipe error.
fn assert_quiet_with_closed_stdout(cmd: &mut Command) {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    record_reach(dir, "data", "1");
    assert_quiet_with_closed_stdout(common::armstack(dir).args(["dataset", "info", "data"]));
    // Through a shell pipe into `head`, as a user would run it.
    let bin = env!("CARGO_BIN_EXE_armstack");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{bin}' dataset info data --json | head -c 10 >/dev/null; '{bin}' dataset info data | head -c 10"
        ))
        .current_dir(dir)
        .env("ARMSTACK_BUS_DIR", dir.join("bus"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    assert_eq!(out.stdout.len(), 10);
}

#[test]
fn calibrate_with_a_closed_stdout_still_writes_the_map_and_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let calibrate = ["calibrate", "--emulate", "--out", "arm.toml", "--sweep-s", "1.5"];
    assert_quiet_with_closed_stdout(common::armstack(dir).args(calibrate));
    // The homing offsets went into the servos: the map that goes with them is written all the same.
    let map = std::fs::read_to_string(dir.join("arm.toml")).unwrap();
    assert!(map.contains("homing_offset_ticks = 150"), "{map}");
}

#[test]
fn the_log_flag_wins_over_rust_log() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = |rust_log: &str, flag: Option<&str>| {
        let mut c = common::armstack(tmp.path());
        c.env("RUST_LOG", rust_log).args([
            "sim",
            "--scene",
            "reach",
            "--no-cameras",
            "--steps",
            "3",
            "--as-fast-as-possible",
        ]);
        if let Some(filter) = flag {
            c.args(["--log", filter]);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).contains("node finished")
    };
    assert!(sim("warn", Some("info")), "--log info must log at info despite RUST_LOG=warn");
    assert!(!sim("info", Some("warn")), "--log warn must hide info despite RUST_LOG=info");
    assert!(sim("info", None), "without --log, RUST_LOG applies");
    assert!(!sim("warn", None), "without --log, RUST_LOG applies");
}

#[test]
fn echo_on_a_silent_topic_names_the_live_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut sim = common::armstack(dir)
        .args(["sim", "--scene", "reach", "--no-cameras", "--rate", "20", "--steps", "2000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = common::armstack(dir).args(["topics", "echo", "joint_stat", "--timeout", "8"]).output().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no message on armstack/") && err.contains("joint_stat in 8 s"), "{err}");
    assert!(err.contains("live topics") && err.contains("/joint_state"), "{err}");
}
