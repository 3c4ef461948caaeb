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
    let out = armstack(dir.path()).args(["scene", "show"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myscene.toml:5:") && err.contains("max_stpes"), "{err}");
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
