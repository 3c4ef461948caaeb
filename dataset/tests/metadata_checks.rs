//! Metadata that contradicts the data is refused when a dataset opens: real v2.1 (LeRobot's
//! layout, AV1 videos from the ffmpeg CLI) and v3.0 (written by `DatasetWriter`) datasets in a
//! temp dir, one metadata field corrupted at a time; each error names the file, the episode
//! and both values. Needs the `ffmpeg` CLI.

#[path = "support/lerobot_v21.rs"]
mod lerobot_v21;

use std::path::Path;
use std::process::Command;

use dataset::episodes::EPISODES_FILE;
use dataset::mp4::probe_video_track;
use dataset::reader::Dataset;
use dataset::table::{read_parquet, write_parquet, Column, Table};
use dataset::{CameraFeature, DatasetSpec, DatasetWriter, FrameRecord};
use lerobot_v21::{copy_dir, encode_av1, episode_line, frame, write_v21, KEY};

/// Three episodes of 16 frames, as in the issue.
const LENS: [usize; 3] = [16, 16, 16];
const V30_DATA: &str = "data/chunk-000/file-000.parquet";
const V30_VIDEO: &str = "videos/observation.images.cam/chunk-000/file-000.mp4";

fn open_err(root: &Path) -> String {
    match Dataset::open(root) {
        Ok(ds) => panic!("{} opened ({} frames) despite the corruption", root.display(), ds.len()),
        Err(e) => e.to_string(),
    }
}

/// Copies `base` to `dir/name`, applies `corrupt` to the copy, and asserts that opening it
/// fails with an error containing `expected`.
fn assert_refused(base: &Path, name: &str, corrupt: impl FnOnce(&Path), expected: &str) {
    let root = base.parent().expect("parent").join(name);
    copy_dir(base, &root);
    corrupt(&root);
    let err = open_err(&root);
    assert!(err.contains(expected), "{name}: expected {expected:?} in\n{err}");
}

fn write_episode_lines(root: &Path, lines: &[String]) {
    std::fs::write(root.join("meta/episodes.jsonl"), lines.join("\n") + "\n").expect("episodes.jsonl");
}

fn edit_info(root: &Path, key: &str, value: serde_json::Value) {
    let path = root.join("meta/info.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    info[key] = value;
    std::fs::write(&path, serde_json::to_string_pretty(&info).expect("json")).expect("write");
}

/// Rewrites the parquet file `root/file` after `edit` changed its table (schema metadata kept).
fn edit_parquet(root: &Path, file: &str, edit: impl FnOnce(&mut Table)) {
    let path = root.join(file);
    let mut f = read_parquet(&path).expect("read parquet");
    edit(&mut f.table);
    write_parquet(&path, &f.table, f.metadata).expect("write parquet");
}

fn column<'a>(t: &'a mut Table, name: &str) -> &'a mut Column {
    t.columns.iter_mut().find(|(n, _)| n == name).map(|(_, c)| c).unwrap_or_else(|| panic!("no column {name}"))
}

fn set_int(t: &mut Table, name: &str, row: usize, value: i64) {
    match column(t, name) {
        Column::I64(v) => v[row] = value,
        other => panic!("{name} is {other:?}"),
    }
}

fn add_float(t: &mut Table, name: &str, row: usize, delta: f64) {
    match column(t, name) {
        Column::F64(v) => v[row] += delta,
        other => panic!("{name} is {other:?}"),
    }
}

/// Rows `r` of a column.
fn rows_of(c: &Column, r: std::ops::Range<usize>) -> Column {
    match c {
        Column::F32Vec { dim, values } => {
            Column::F32Vec { dim: *dim, values: values[r.start * dim..r.end * dim].to_vec() }
        }
        Column::F32(v) => Column::F32(v[r].to_vec()),
        Column::F64(v) => Column::F64(v[r].to_vec()),
        Column::I64(v) => Column::I64(v[r].to_vec()),
        Column::Bool(v) => Column::Bool(v[r].to_vec()),
        Column::Str(v) => Column::Str(v[r].to_vec()),
        Column::StrList(v) => Column::StrList(v[r].to_vec()),
    }
}

fn v21_base(dir: &Path) -> std::path::PathBuf {
    let base = dir.join("base");
    write_v21(&base, &LENS);
    base
}

fn v30_base(dir: &Path) -> std::path::PathBuf {
    let base = dir.join("base");
    let spec = DatasetSpec {
        scene: None,
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: vec!["q".into()],
        action_names: vec!["a".into()],
        env_state_names: Vec::new(),
        cameras: vec![CameraFeature { key: KEY.into(), width: 32, height: 32 }],
    };
    let mut w = DatasetWriter::create(&base, &spec).expect("create");
    for (ep, &len) in LENS.iter().enumerate() {
        w.begin_episode("grasp").expect("begin");
        for k in 0..len {
            let last = k + 1 == len;
            let image = frame(ep, k).chunks(64 * 3).take(32).flat_map(|row| row[..32 * 3].to_vec()).collect();
            w.add_frame(&FrameRecord {
                state: vec![ep as f32],
                action: vec![k as f32],
                reward: if last { 1.0 } else { 0.0 },
                done: last,
                truncated: false,
                success: last,
                images: vec![image],
                ..Default::default()
            })
            .expect("frame");
        }
        w.end_episode(Some(ep as u64), Some(true)).expect("end");
    }
    w.finish().expect("finish");
    base
}

#[test]
fn untouched_datasets_open_with_every_frame() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (layout, base) in [("v2.1", v21_base(&tmp.path().join("v21"))), ("v3.0", v30_base(&tmp.path().join("v30")))] {
        let ds = Dataset::open(&base).unwrap_or_else(|e| panic!("{layout}: {e}"));
        assert_eq!(ds.len(), 48, "{layout}");
        assert_eq!(ds.episodes().len(), 3, "{layout}");
        let q = dataset::quality::quality(&ds, None, 0.1, None);
        assert_eq!(q.success_rate, 1.0, "{layout}: every episode succeeds");
        assert_eq!(ds.state(ds.episodes()[2].from_index as usize)[0], 2.0, "{layout}: episode 2's first frame");
    }
}

/// The issue's dataset: episode 1 says length 0 (or 17) in `meta/episodes.jsonl`.
#[test]
fn v21_episode_length_is_checked_against_its_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v21_base(tmp.path());
    for bad in [0, 17] {
        let lines: Vec<String> =
            LENS.iter().enumerate().map(|(e, l)| episode_line(e, if e == 1 { bad } else { *l })).collect();
        assert_refused(
            &base,
            &format!("length{bad}"),
            |root| write_episode_lines(root, &lines),
            &format!("meta/episodes.jsonl: episode 1 says length {bad} but data/chunk-000/episode_000001.parquet has 16 rows"),
        );
    }
}

#[test]
fn v21_duplicate_and_missing_episodes_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v21_base(tmp.path());
    let line = |e: usize| episode_line(e, 16);
    assert_refused(
        &base,
        "duplicate",
        |root| write_episode_lines(root, &[line(0), line(1), line(1), line(2)]),
        "meta/episodes.jsonl: episode 1 is listed twice",
    );
    assert_refused(
        &base,
        "missing",
        |root| write_episode_lines(root, &[line(0), line(2)]),
        "meta/episodes.jsonl: episode 0 is followed by episode 2: episode 1 is missing",
    );
    assert_refused(
        &base,
        "no-episode-0",
        |root| write_episode_lines(root, &[line(1), line(2)]),
        "meta/episodes.jsonl: the first episode is episode 1: episode 0 is missing",
    );
}

#[test]
fn v21_rows_must_belong_to_their_episode_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v21_base(tmp.path());
    let file1 = lerobot_v21::data_file(1);
    let file2 = lerobot_v21::data_file(2);
    assert_refused(
        &base,
        "episode-index",
        |root| edit_parquet(root, &file1, |t| set_int(t, "episode_index", 3, 2)),
        "meta/episodes.jsonl: data/chunk-000/episode_000001.parquet is episode 1's file but its row 3 has episode_index 2",
    );
    assert_refused(
        &base,
        "index",
        |root| edit_parquet(root, &file2, |t| set_int(t, "index", 0, 31)),
        "meta/episodes.jsonl: the lengths of the episodes before episode 2 place it at index 32 to 48 but its frame 0 in data/chunk-000/episode_000002.parquet (row 0) has index 31, not 32",
    );
    assert_refused(
        &base,
        "frame-index",
        |root| edit_parquet(root, &file2, |t| set_int(t, "frame_index", 5, 6)),
        "data/chunk-000/episode_000002.parquet: row 5 is frame 5 of episode 2 but has frame_index 6",
    );
    assert_refused(
        &base,
        "task-index",
        |root| edit_parquet(root, &file2, |t| set_int(t, "task_index", 7, 2)),
        "data/chunk-000/episode_000002.parquet: row 7 has task_index 2 but meta/tasks.jsonl has 2 tasks",
    );
    assert_refused(
        &base,
        "no-data-file",
        |root| std::fs::remove_file(root.join(&file1)).expect("rm"),
        "meta/episodes.jsonl: episode 1's data file data/chunk-000/episode_000001.parquet does not exist",
    );
}

#[test]
fn v21_info_totals_must_match_the_episodes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v21_base(tmp.path());
    assert_refused(
        &base,
        "total-frames",
        |root| edit_info(root, "total_frames", 47.into()),
        "meta/info.json: total_frames is 47 but the episode lengths in meta/episodes.jsonl add up to 48",
    );
    assert_refused(
        &base,
        "total-episodes",
        |root| edit_info(root, "total_episodes", 4.into()),
        "meta/info.json: total_episodes is 4 but meta/episodes.jsonl lists 3 episodes",
    );
}

#[test]
fn v21_videos_must_hold_their_episode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v21_base(tmp.path());
    let video2 = lerobot_v21::video_file(2);
    assert_refused(
        &base,
        "short-video",
        |root| encode_av1(&root.join(&video2), &(0..8).map(|k| frame(2, k)).collect::<Vec<_>>()),
        "meta/episodes.jsonl: episode 2 says length 16 (1.6 s at 10 fps) but videos/chunk-000/observation.images.cam/episode_000002.mp4 ends at 0.8 s (8 frames)",
    );
    assert_refused(
        &base,
        "no-video",
        |root| std::fs::remove_file(root.join(&video2)).expect("rm"),
        "meta/episodes.jsonl: episode 2 says length 16 (1.6 s at 10 fps) but videos/chunk-000/observation.images.cam/episode_000002.mp4 does not exist",
    );
}

#[test]
fn v30_episode_table_is_checked_against_itself_and_the_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v30_base(tmp.path());
    let meta = |root: &Path, edit: &dyn Fn(&mut Table)| edit_parquet(root, EPISODES_FILE, edit);
    let cases: [(&str, &dyn Fn(&mut Table), &str); 6] = [
        ("length", &|t| set_int(t, "length", 2, 15), "episode 2 says length 15 but dataset_from_index 32 to dataset_to_index 48 is 16 frames"),
        ("from", &|t| set_int(t, "dataset_from_index", 1, 14), "episode 1 says dataset_from_index 14 but episode 0 ends at dataset_to_index 16"),
        ("first-from", &|t| {
            set_int(t, "dataset_from_index", 0, 1);
            set_int(t, "length", 0, 15);
        }, "episode 0 says dataset_from_index 1, not 0"),
        ("duplicate", &|t| set_int(t, "episode_index", 2, 1), "episode 1 is listed twice"),
        ("data-file", &|t| set_int(t, "data/file_index", 2, 7), "episode 2 says data/chunk_index 0 and data/file_index 7 but data/chunk-000/file-007.parquet does not exist"),
        // Self-consistent metadata that disagrees with the rows.
        ("length-and-to", &|t| {
            set_int(t, "length", 2, 15);
            set_int(t, "dataset_to_index", 2, 47);
            add_float(t, &format!("videos/{KEY}/to_timestamp"), 2, -0.1);
        }, "episode 2 says length 15 but data/chunk-000/file-000.parquet has 16 rows of episode 2"),
    ];
    for (name, edit, expected) in cases {
        assert_refused(&base, name, |root| meta(root, edit), &format!("{EPISODES_FILE}: {expected}"));
    }
}

#[test]
fn v30_rows_must_match_their_episode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v30_base(tmp.path());
    assert_refused(
        &base,
        "episode-index",
        |root| edit_parquet(root, V30_DATA, |t| set_int(t, "episode_index", 20, 2)),
        &format!("{EPISODES_FILE}: episode 1 says length 16 but {V30_DATA} has 15 rows of episode 1"),
    );
    assert_refused(
        &base,
        "index",
        |root| edit_parquet(root, V30_DATA, |t| set_int(t, "index", 40, 41)),
        &format!("{EPISODES_FILE}: episode 2 says dataset_from_index 32 to dataset_to_index 48 but its frame 8 in {V30_DATA} (row 40) has index 41, not 40"),
    );
    assert_refused(
        &base,
        "frame-index",
        |root| edit_parquet(root, V30_DATA, |t| set_int(t, "frame_index", 20, 9)),
        &format!("{V30_DATA}: row 20 is frame 4 of episode 1 but has frame_index 9"),
    );
}

#[test]
fn v30_video_spans_are_checked_against_length_each_other_and_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v30_base(tmp.path());
    let from = format!("videos/{KEY}/from_timestamp");
    let to = format!("videos/{KEY}/to_timestamp");
    assert_refused(
        &base,
        "span-length",
        |root| edit_parquet(root, EPISODES_FILE, |t| add_float(t, &to, 2, 1.0)),
        &format!("{EPISODES_FILE}: episode 2 says {from} 3.2 s and to_timestamp 5.8 s (2.6 s) but length 16 at 10 fps lasts 1.6 s"),
    );
    assert_refused(
        &base,
        "past-the-end",
        |root| {
            edit_parquet(root, EPISODES_FILE, |t| {
                add_float(t, &from, 2, 1.0);
                add_float(t, &to, 2, 1.0);
            })
        },
        &format!("{EPISODES_FILE}: episode 2 says {to} 5.8 s but {V30_VIDEO} ends at 4.8 s (48 frames)"),
    );
    assert_refused(
        &base,
        "overlap",
        |root| {
            edit_parquet(root, EPISODES_FILE, |t| {
                add_float(t, &from, 1, -0.8);
                add_float(t, &to, 1, -0.8);
            })
        },
        &format!("{EPISODES_FILE}: episode 1 says {from} 0.8 s, inside episode 0's span 0 s to 1.6 s of {V30_VIDEO}"),
    );
    assert_refused(
        &base,
        "info-total",
        |root| edit_info(root, "total_frames", 50.into()),
        "meta/info.json: total_frames is 50 but the episode lengths in meta/episodes add up to 48",
    );
}

/// What a recording killed between writing the data file and the episode table leaves (rows
/// of an episode the metadata does not list yet, past its frames) still opens; such rows inside
/// the listed frames do not.
#[test]
fn v30_rows_past_the_metadata_are_ignored_but_not_rows_inside_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = v30_base(tmp.path());
    // Episode 3's first 4 rows: copies of episode 2's, renumbered.
    let append_episode_3 = |root: &Path, first_index: i64| {
        edit_parquet(root, V30_DATA, |t| {
            for (name, col) in &mut t.columns {
                let extra = match name.as_str() {
                    "episode_index" => Column::I64(vec![3; 4]),
                    "index" => Column::I64((first_index..first_index + 4).collect()),
                    "frame_index" => Column::I64((0..4).collect()),
                    _ => rows_of(col, 32..36),
                };
                assert!(col.extend(&extra), "{name}");
            }
        })
    };
    let past = tmp.path().join("past");
    copy_dir(&base, &past);
    append_episode_3(&past, 48);
    let ds = Dataset::open(&past).expect("rows past the metadata are ignored");
    assert_eq!(ds.len(), 48);
    assert_refused(
        &base,
        "inside",
        |root| append_episode_3(root, 40),
        &format!("{V30_DATA}: 4 rows have episode_index 3, which the metadata does not list, and index from 40, inside its 48 frames"),
    );
}

/// The MP4 probe reads frame counts and durations from box headers of files FFmpeg made
/// (H.264 with B-frames, AV1), passes on other containers and names a truncated file.
#[test]
fn mp4_probe_reads_frames_and_duration_from_box_headers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let frames: Vec<Vec<u8>> = (0..12).map(|k| frame(0, k)).collect();
    let av1 = tmp.path().join("av1.mp4");
    encode_av1(&av1, &frames);
    let raw = tmp.path().join("frames.rgb");
    std::fs::write(&raw, frames.concat()).expect("raw");
    let ffmpeg = |out: &Path, codec: &[&str]| {
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x64", "-r", "10", "-i"])
            .arg(&raw)
            .args(codec)
            .arg(out)
            .status()
            .expect("ffmpeg CLI");
        assert!(status.success());
    };
    let h264 = tmp.path().join("h264.mp4");
    ffmpeg(&h264, &["-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    for path in [&av1, &h264] {
        let track = probe_video_track(path).expect("probe").expect("an mp4 video track");
        assert_eq!(track.frames, 12, "{}", path.display());
        assert!((track.duration_s - 1.2).abs() < 1e-6, "{}: {} s", path.display(), track.duration_s);
    }
    let mkv = tmp.path().join("h264.mkv");
    ffmpeg(&mkv, &["-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    assert_eq!(probe_video_track(&mkv).expect("probe"), None, "Matroska is not measured");
    let bytes = std::fs::read(&h264).expect("read");
    let cut = tmp.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = probe_video_track(&cut).expect_err("truncated").to_string();
    assert!(err.contains("cut.mp4") && err.contains("moov"), "{err}");
}

/// `resume` truncates data files to the rows the metadata lists: with a wrong `length` that
/// would destroy recorded rows, so it refuses such metadata and leaves the file as it was.
#[test]
fn resume_refuses_contradicting_metadata_without_touching_the_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = v30_base(tmp.path());
    edit_parquet(&root, EPISODES_FILE, |t| {
        set_int(t, "length", 2, 15);
        set_int(t, "dataset_to_index", 2, 47);
        add_float(t, &format!("videos/{KEY}/to_timestamp"), 2, -0.1);
    });
    let err = match DatasetWriter::resume(&root) {
        Ok(_) => panic!("resume accepted a length that contradicts the rows"),
        Err(e) => e.to_string(),
    };
    let expected = format!("{EPISODES_FILE}: episode 2 says length 15 but {V30_DATA} has 16 rows of episode 2");
    assert!(err.contains(&expected), "{err}");
    assert_eq!(read_parquet(&root.join(V30_DATA)).expect("data").table.rows(), 48, "no row dropped");
}
