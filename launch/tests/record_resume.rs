//! `armstack record --resume` end to end: a resumed session continues after the seeds the
//! dataset holds (never repeating an episode unless asked by seed), stores the expert's noise,
//! demonstration quality and mistake and the task per episode, and refuses a session whose frames would mean something else,
//! naming the setting and both values, without touching the dataset; `record` neither clobbers
//! a folder nor invents a dataset to resume.

mod common;

use std::path::Path;

use common::{armstack, run_err, run_ok};
use dataset::reader::Dataset;

/// `record` of the scripted expert into `ds` (lockstep sim) with `extra` arguments.
fn record(dir: &Path, ds: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = armstack(dir);
    cmd.args(["record", "--dataset", ds, "--device", "scripted"]).args(extra);
    cmd
}

/// `--quality mixed --mistake-rate 1` through the bus: every episode stores `mixed` and the
/// mistake the expert drew from that episode's seed; a resumed `--quality expert` session stores
/// its own level and no mistake.
#[test]
fn record_stores_the_demo_quality_and_each_episodes_mistake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mixed = ["--scene", "pick_cube", "--quality", "mixed", "--mistake-rate", "1", "--no-cameras"];
    run_ok(record(dir, "ds", &mixed).args(["--episodes", "3"]));
    let expert = ["--scene", "pick_cube", "--quality", "expert", "--no-cameras", "--resume"];
    run_ok(record(dir, "ds", &expert).args(["--episodes", "1"]));
    let ds = Dataset::open(&dir.join("ds")).expect("open");
    let scene = sim::load_scene("pick_cube").expect("scene");
    let expected: Vec<(Option<&str>, Option<&str>)> = [0, 1, 2]
        .map(|seed| (Some("mixed"), Some(sim::Expert::planned_mistake(&scene, sim::DemoQuality::mixed(1.0), seed).name())))
        .into_iter()
        .chain([(Some("expert"), Some("none"))])
        .collect();
    let stored: Vec<(Option<&str>, Option<&str>)> =
        ds.episodes().iter().map(|e| (e.demo_quality.as_deref(), e.mistake.as_deref())).collect();
    assert_eq!(stored, expected);
    assert!(stored[..3].iter().all(|(_, m)| *m != Some("none")), "rate 1: every episode has a mistake");

    // A flag the chosen level does not use is refused before anything is written.
    for (extra, flag) in [
        (["--quality", "expert", "--noise", "0.3"], "--noise"),
        (["--quality", "mixed", "--noise", "0.3"], "--noise"),
        (["--quality", "noisy", "--mistake-rate", "0.2"], "--mistake-rate"),
    ] {
        let err = run_err(record(dir, "refused", &extra).args(["--episodes", "1", "--no-cameras"]));
        assert!(err.contains(flag) && err.contains("applies to"), "{err}");
        assert!(!dir.join("refused").exists(), "nothing is written");
    }
}

fn seeds(ds: &Dataset) -> Vec<Option<u64>> {
    ds.episodes().iter().map(|e| e.seed).collect()
}

/// The environment state (object poses) at the start of episode `e`: its seed draws them.
fn start(ds: &Dataset, e: usize) -> Vec<f32> {
    ds.env_state(ds.episodes()[e].from_index as usize).to_vec()
}

#[test]
fn resume_continues_after_the_stored_seeds_and_stores_noise_and_task_per_episode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let noisy = ["--noise", "0.3", "--no-cameras"];
    run_ok(record(dir, "ds", &noisy).args(["--episodes", "2"]));
    // The README's way to append: the same command with --resume.
    let out = run_ok(record(dir, "ds", &noisy).args(["--episodes", "2", "--resume"]));
    assert!(out.contains("4 episodes in total"), "{out}");
    let ds = Dataset::open(&dir.join("ds")).expect("open");
    assert_eq!(seeds(&ds), [Some(0), Some(1), Some(2), Some(3)], "the resumed session continues after seed 1");
    assert_ne!(start(&ds, 2), start(&ds, 0), "episode 2 starts like episode 0");
    assert_ne!(start(&ds, 3), start(&ds, 1), "episode 3 starts like episode 1");

    // An explicit --seed that repeats stored seeds is refused, and nothing is recorded.
    let err = run_err(record(dir, "ds", &noisy).args(["--episodes", "2", "--resume", "--seed", "3"]));
    assert!(err.contains("--seed 3") && err.contains("seeds 3") && err.contains("--reuse-seeds"), "{err}");
    assert_eq!(Dataset::open(&dir.join("ds")).expect("open").episodes().len(), 4);
    // A free seed, another noise level and task: stored per episode.
    let task = "pick up the cube, gently";
    run_ok(&mut record(
        dir,
        "ds",
        &["--no-cameras", "--noise", "0", "--episodes", "1", "--resume", "--seed", "10", "--task", task],
    ));
    // Asked for explicitly, a stored seed is recorded again.
    run_ok(record(dir, "ds", &noisy).args(["--episodes", "1", "--resume", "--seed", "1", "--reuse-seeds"]));
    let ds = Dataset::open(&dir.join("ds")).expect("open");
    assert_eq!(seeds(&ds), [Some(0), Some(1), Some(2), Some(3), Some(10), Some(1)]);
    assert_eq!(start(&ds, 5), start(&ds, 1), "the same seed starts the same scene");
    let noise: Vec<Option<f64>> = ds.episodes().iter().map(|e| e.expert_noise).collect();
    assert_eq!(noise, [Some(0.3), Some(0.3), Some(0.3), Some(0.3), Some(0.0), Some(0.3)]);
    assert_eq!(ds.episodes()[4].tasks, [task]);
    assert_ne!(ds.episodes()[3].tasks, [task]);
}

#[test]
fn resume_refuses_sessions_whose_frames_mean_something_else_and_record_never_clobbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    run_ok(&mut record(dir, "ds", &["--image-size", "32", "--episodes", "1"]));
    let info = || std::fs::read_to_string(dir.join("ds/meta/info.json")).expect("info");
    let before = info();
    let refusals: [(&[&str], &str); 4] = [
        (&["--image-size", "32", "--fps", "20"], "fps = 10; this session asks for fps = 20"),
        (
            &["--image-size", "64"],
            "cameras = front 32x32, wrist 32x32; this session asks for cameras = front 64x64, wrist 64x64",
        ),
        (&["--no-cameras"], "cameras = front 32x32, wrist 32x32; this session asks for cameras = none"),
        (&["--image-size", "32", "--scene", "reach"], "scene = pick_cube; this session asks for scene = reach"),
    ];
    for (args, want) in refusals {
        let err = run_err(record(dir, "ds", args).args(["--episodes", "1", "--resume"]));
        assert!(err.contains(&format!("dataset ds was recorded with {want}")), "{args:?}: {err}");
        assert_eq!(info(), before, "{args:?}: the dataset changed");
    }
    let wx = [
        "record",
        "--dataset",
        "ds",
        "--resume",
        "--no-cameras",
        "--robot",
        "widowx",
        "--emulate",
        "--device",
        "circle",
    ];
    let err = run_err(armstack(dir).args(wx));
    assert!(err.contains("dataset ds was recorded with robot = sim; this session asks for robot = widowx"), "{err}");
    assert_eq!(info(), before, "the dataset changed");

    // No --resume: an existing dataset is not clobbered, a non-empty folder not written into.
    let err = run_err(&mut record(dir, "ds", &["--image-size", "32", "--episodes", "1"]));
    assert!(err.contains("already holds a dataset") && err.contains("--resume"), "{err}");
    assert_eq!(info(), before);
    std::fs::create_dir(dir.join("notes")).expect("mkdir");
    std::fs::write(dir.join("notes/todo.txt"), "keep me").expect("write");
    let err = run_err(&mut record(dir, "notes", &["--no-cameras", "--episodes", "1"]));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(dir.join("notes")).expect("ls").count(), 1, "nothing was written into the folder");
    // --resume does not invent a dataset.
    let err = run_err(&mut record(dir, "nothing", &["--no-cameras", "--episodes", "1", "--resume"]));
    assert!(err.contains("holds no dataset") && err.contains("without --resume"), "{err}");
    assert!(!dir.join("nothing").exists(), "a folder was created");
}

/// A real arm's joint names come from its servo map: a map with other names records other
/// frames; and a real arm's episodes store no seed (the driver numbers them per session).
#[test]
fn resume_on_the_arm_refuses_another_servo_map_and_stores_no_seeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let wx = ["--robot", "widowx", "--emulate", "--no-cameras", "--device", "circle", "--reset-s", "0.1"];
    let short = ["--episodes", "1", "--episode-s", "0.5"];
    run_ok(armstack(dir).args(["record", "--dataset", "wx"]).args(wx).args(short));
    run_ok(armstack(dir).args(["record", "--dataset", "wx", "--resume"]).args(wx).args(short));
    let ds = Dataset::open(&dir.join("wx")).expect("open");
    assert_eq!(seeds(&ds), [None, None]);
    assert_eq!(ds.episodes().iter().map(|e| e.expert_noise).collect::<Vec<_>>(), [None, None]);
    let map = robot_driver::servo_map::WIDOWX250_TOML.replacen("name = \"waist\"", "name = \"base\"", 1);
    assert_ne!(map, robot_driver::servo_map::WIDOWX250_TOML, "the built-in map names its first joint waist");
    std::fs::write(dir.join("renamed.toml"), map).expect("write map");
    let err = run_err(
        armstack(dir).args(["record", "--dataset", "wx", "--resume", "--config", "renamed.toml"]).args(wx).args(short),
    );
    assert!(err.contains("was recorded with observation.state = float32 [7] [waist,"), "{err}");
    assert!(err.contains("this session asks for observation.state = float32 [7] [base,"), "{err}");
}
