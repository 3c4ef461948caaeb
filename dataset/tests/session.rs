//! Resuming a recording session: a session whose frames mean something else (another frame
//! rate, robot, scene, camera set or size, feature, or session setting) is refused naming the
//! setting and both values, before any file changes; per-episode settings (the expert's noise)
//! are stored per episode. Real files in a temp dir.

use std::path::Path;

use dataset::reader::Dataset;
use dataset::session::{SessionSettings, SettingMismatch};
use dataset::{CameraFeature, DatasetError, DatasetSpec, DatasetWriter, FrameRecord};

fn spec() -> DatasetSpec {
    DatasetSpec {
        scene: Some("pick_cube".into()),
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: vec!["waist".into(), "gripper".into()],
        action_names: vec!["delta_x_m".into(), "gripper".into()],
        env_state_names: vec!["cube_x".into()],
        cameras: vec![
            CameraFeature { key: "observation.images.front".into(), width: 64, height: 48 },
            CameraFeature { key: "observation.images.wrist".into(), width: 64, height: 48 },
        ],
    }
}

fn settings(robot: &str, physics_hz: &str) -> SessionSettings {
    SessionSettings::from([
        ("robot".to_string(), robot.to_string()),
        ("physics_hz".to_string(), physics_hz.to_string()),
    ])
}

/// Creates a dataset with `spec()` and the sim settings; returns its info.json text.
fn created(root: &Path) -> String {
    DatasetWriter::create_session(root, &spec(), &settings("sim", "500")).expect("create").finish().expect("finish");
    std::fs::read_to_string(root.join("meta/info.json")).expect("info")
}

/// The mismatches a resume with `spec` and `settings` is refused with.
fn refused(root: &Path, spec: &DatasetSpec, settings: &SessionSettings) -> Vec<SettingMismatch> {
    let before = std::fs::read_to_string(root.join("meta/info.json")).expect("info");
    let err = DatasetWriter::resume_session(root, spec, settings).err().expect("the resume is refused");
    assert_eq!(std::fs::read_to_string(root.join("meta/info.json")).expect("info"), before, "info.json untouched");
    match err {
        DatasetError::Mismatch { mismatches, .. } => mismatches,
        other => panic!("not a mismatch: {other}"),
    }
}

fn mismatch(setting: &str, dataset: &str, session: &str) -> SettingMismatch {
    SettingMismatch { setting: setting.into(), dataset: dataset.into(), session: session.into() }
}

#[test]
fn the_same_session_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("ds");
    created(&root);
    DatasetWriter::resume_session(&root, &spec(), &settings("sim", "500")).expect("the same settings resume");
}

#[test]
fn each_setting_that_changes_a_frame_is_refused_naming_both_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("ds");
    created(&root);
    let sim = settings("sim", "500");
    let cases: Vec<(DatasetSpec, SessionSettings, SettingMismatch)> = vec![
        (DatasetSpec { fps: 15.0, ..spec() }, sim.clone(), mismatch("fps", "10", "15")),
        (DatasetSpec { robot_type: "koch".into(), ..spec() }, sim.clone(), mismatch("robot_type", "widowx250", "koch")),
        (
            DatasetSpec { scene: Some("stack_cubes".into()), ..spec() },
            sim.clone(),
            mismatch("scene", "pick_cube", "stack_cubes"),
        ),
        (spec(), settings("widowx", "500"), mismatch("robot", "sim", "widowx")),
        (spec(), settings("sim", "250"), mismatch("physics_hz", "500", "250")),
        (
            DatasetSpec { state_names: vec!["base".into(), "gripper".into()], ..spec() },
            sim.clone(),
            mismatch("observation.state", "float32 [2] [waist, gripper]", "float32 [2] [base, gripper]"),
        ),
        (
            DatasetSpec { action_names: vec!["q0_rad".into(), "gripper".into()], ..spec() },
            sim.clone(),
            mismatch("action", "float32 [2] [delta_x_m, gripper]", "float32 [2] [q0_rad, gripper]"),
        ),
        (
            DatasetSpec { env_state_names: vec!["cube_x".into(), "cube_y".into()], ..spec() },
            sim.clone(),
            mismatch("observation.environment_state", "float32 [1] [cube_x]", "float32 [2] [cube_x, cube_y]"),
        ),
        (
            DatasetSpec {
                cameras: spec().cameras.into_iter().map(|c| CameraFeature { width: 32, height: 32, ..c }).collect(),
                ..spec()
            },
            sim.clone(),
            mismatch("cameras", "front 64x48, wrist 64x48", "front 32x32, wrist 32x32"),
        ),
        (
            DatasetSpec { cameras: spec().cameras[..1].to_vec(), ..spec() },
            sim.clone(),
            mismatch("cameras", "front 64x48, wrist 64x48", "front 64x48"),
        ),
        (
            DatasetSpec { cameras: Vec::new(), ..spec() },
            sim.clone(),
            mismatch("cameras", "front 64x48, wrist 64x48", "none"),
        ),
    ];
    for (spec, settings, want) in cases {
        assert_eq!(refused(&root, &spec, &settings), vec![want]);
    }
    // Several differences: every one is named, and the message says which dataset and session.
    let widowx = DatasetSpec { scene: None, env_state_names: Vec::new(), cameras: Vec::new(), ..spec() };
    let found = refused(&root, &widowx, &settings("widowx", "500"));
    let names: Vec<&str> = found.iter().map(|m| m.setting.as_str()).collect();
    assert_eq!(names, ["cameras", "observation.environment_state", "robot", "scene"]);
    let err = DatasetWriter::resume_session(&root, &widowx, &settings("widowx", "500")).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "dataset {} was recorded with scene = pick_cube; this session asks for scene = none",
            root.display()
        )),
        "{text}"
    );
    assert!(text.contains("robot = sim; this session asks for robot = widowx"), "{text}");
}

#[test]
fn resuming_a_missing_dataset_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("nothing");
    let err = DatasetWriter::resume_session(&root, &spec(), &settings("sim", "500")).err().expect("refused");
    assert!(err.to_string().contains("no dataset to append to"), "{err}");
    assert!(!root.exists(), "nothing was created");
}

fn frame() -> FrameRecord {
    FrameRecord { state: vec![0.1, 1.0], action: vec![0.01, 1.0], ..Default::default() }
}

/// The spec of a state-only dataset (no object state, no cameras).
fn state_only_spec() -> DatasetSpec {
    DatasetSpec { env_state_names: Vec::new(), cameras: Vec::new(), ..spec() }
}

/// Writes one complete one-frame "pick" episode with `seed` and `success`.
fn one_frame_episode(w: &mut DatasetWriter, seed: u64, success: bool) {
    w.begin_episode("pick").expect("begin");
    w.add_frame(&frame()).expect("frame");
    w.end_episode(Some(seed), Some(success)).expect("end");
}

/// State-only episodes: the expert's noise is stored per episode, and a session setting the
/// dataset predates is adopted (stored) on resume.
#[test]
fn expert_noise_is_stored_per_episode_and_new_settings_are_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state_only) = (dir.path().join("ds"), state_only_spec());
    // A dataset written before session settings were stored.
    let mut w = DatasetWriter::create(&root, &state_only).expect("create");
    for noise in [Some(0.3), None] {
        w.set_expert_noise(noise);
        one_frame_episode(&mut w, 7, false);
    }
    w.finish().expect("finish");
    let mut w =
        DatasetWriter::resume_session(&root, &state_only, &settings("sim", "500")).expect("adopts new settings");
    w.set_expert_noise(Some(0.0));
    one_frame_episode(&mut w, 8, true);
    w.finish().expect("finish");
    let ds = Dataset::open(&root).expect("open");
    let noise: Vec<Option<f64>> = ds.episodes().iter().map(|e| e.expert_noise).collect();
    assert_eq!(noise, [Some(0.3), None, Some(0.0)]);
    let info = std::fs::read_to_string(root.join("meta/info.json")).expect("info");
    assert!(
        info.contains("\"armstack/robot\": \"sim\"") && info.contains("\"armstack/physics_hz\": \"500\""),
        "{info}"
    );
    // Now stored, the setting is compared like any other.
    assert_eq!(refused(&root, &state_only, &settings("widowx", "500")), vec![mismatch("robot", "sim", "widowx")]);
}

/// The scripted expert's demonstration quality and each episode's mistake are stored per
/// episode, read back, and kept when a session is resumed; episodes driven by a person read
/// back as None.
#[test]
fn demo_quality_and_mistake_are_stored_per_episode_and_survive_a_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state_only) = (dir.path().join("ds"), state_only_spec());
    let mut w = DatasetWriter::create(&root, &state_only).expect("create");
    w.set_demo_quality(Some("mixed"));
    for mistake in ["missed_grasp_regrasped", "none"] {
        w.set_mistake(Some(mistake));
        one_frame_episode(&mut w, 7, false);
    }
    w.finish().expect("finish");
    let mut w = DatasetWriter::resume_session(&root, &state_only, &settings("sim", "500")).expect("resume");
    w.set_demo_quality(None);
    w.set_mistake(None);
    one_frame_episode(&mut w, 8, true);
    w.finish().expect("finish");
    let ds = Dataset::open(&root).expect("open");
    let stored: Vec<(Option<&str>, Option<&str>)> =
        ds.episodes().iter().map(|e| (e.demo_quality.as_deref(), e.mistake.as_deref())).collect();
    assert_eq!(stored, [(Some("mixed"), Some("missed_grasp_regrasped")), (Some("mixed"), Some("none")), (None, None)]);
}

/// Seeds are stored in LeRobot's int64 episode column: the largest representable seed round-trips,
/// a larger one is refused (it used to be stored wrapped, as a negative number, and read back as
/// "no seed"), and the episode stays open so it can still be ended with a valid seed.
#[test]
fn seeds_round_trip_up_to_the_int64_limit_and_larger_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state_only) = (dir.path().join("ds"), state_only_spec());
    let mut w = DatasetWriter::create(&root, &state_only).expect("create");
    let max = i64::MAX as u64;
    one_frame_episode(&mut w, max, true);
    w.begin_episode("pick").expect("begin");
    w.add_frame(&frame()).expect("frame");
    let err = w.end_episode(Some(max + 1), Some(true)).expect_err("refused").to_string();
    assert!(err.contains("9223372036854775808") && err.contains("int64"), "{err}");
    w.end_episode(Some(3), Some(true)).expect("the episode is still open").expect("kept");
    w.finish().expect("finish");
    let ds = Dataset::open(&root).expect("open");
    let seeds: Vec<Option<u64>> = ds.episodes().iter().map(|e| e.seed).collect();
    assert_eq!(seeds, [Some(max), Some(3)]);
}

/// A dataset recorded before `next.truncated` existed (column and feature removed here): read,
/// an episode end is a termination where it succeeded and a truncation otherwise; resumed, the
/// column is added to the old rows by that rule and to info.json, and new episodes carry their
/// own flags.
#[test]
fn a_dataset_without_next_truncated_is_read_by_the_success_rule_and_resumed_with_the_column() {
    use dataset::table::{read_parquet, write_parquet};
    use dataset::writer::TRUNCATED;
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state_only) = (dir.path().join("ds"), state_only_spec());
    let mut w = DatasetWriter::create_session(&root, &state_only, &settings("sim", "500")).expect("create");
    let episode = |w: &mut DatasetWriter, success: bool, truncated: bool| {
        w.begin_episode("pick").expect("begin");
        w.add_frame(&FrameRecord { done: true, truncated, success, ..frame() }).expect("frame");
        w.end_episode(Some(0), Some(success)).expect("end");
    };
    // A success (terminal) and a time-limit end (truncated).
    episode(&mut w, true, false);
    episode(&mut w, false, true);
    w.finish().expect("finish");
    // Make it old: no column, no feature.
    let data = root.join("data/chunk-000/file-000.parquet");
    let old = read_parquet(&data).expect("read");
    let mut table = old.table.clone();
    table.columns.retain(|(name, _)| name != TRUNCATED);
    write_parquet(&data, &table, old.metadata.clone()).expect("write");
    let info_path = root.join("meta/info.json");
    let mut info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
    info["features"].as_object_mut().unwrap().remove(TRUNCATED);
    std::fs::write(&info_path, serde_json::to_string_pretty(&info).unwrap()).unwrap();

    let ds = Dataset::open(&root).expect("open");
    assert!(ds.terminal(0) && !ds.truncated(0), "a successful end is a termination");
    assert!(ds.truncated(1) && !ds.terminal(1), "an end without success is a truncation");

    let mut w = DatasetWriter::resume_session(&root, &state_only, &settings("sim", "500")).expect("resumes");
    episode(&mut w, false, true);
    w.finish().expect("finish");
    let info = std::fs::read_to_string(&info_path).expect("info");
    assert!(info.contains(TRUNCATED), "{info}");
    match read_parquet(&data).expect("read").table.get(TRUNCATED) {
        Some(dataset::table::Column::Bool(v)) => assert_eq!(v, &[false, true, true]),
        other => panic!("next.truncated after the resume: {other:?}"),
    }
    let ds = Dataset::open(&root).expect("open");
    assert_eq!((0..3).map(|i| ds.truncated(i)).collect::<Vec<_>>(), [false, true, true]);
}
