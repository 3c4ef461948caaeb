//! LeRobot v2.1 datasets as LeRobot writes them: one parquet and one mp4 per episode, JSON-lines
//! metadata, videos in AV1 encoded by FFmpeg's libsvtav1 with LeRobot's settings
//! (`-g 2 -crf 30 -pix_fmt yuv420p`). Needs the `ffmpeg` CLI (CI installs it).
//!
//! Shared by the dataset and launch tests (`#[path]` includes).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use dataset::table::{write_parquet, Column, Table};

/// Frame width, px.
pub const W: usize = 64;
/// Frame height, px.
pub const H: usize = 64;
/// The camera's feature key.
pub const KEY: &str = "observation.images.cam";
/// Frames per second.
pub const FPS: usize = 10;
/// Task strings; episode `e` has task `e % 2`.
pub const TASKS: [&str; 2] = ["grasp", "place"];

/// Frame `k` of episode `ep`: a gradient tinted per episode with a block moving 8 px per frame.
pub fn frame(ep: usize, k: usize) -> Vec<u8> {
    let mut img = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let p = (y * W + x) * 3;
            img[p] = (x * 3 + 20 * k) as u8;
            // A block that moves 8 px per frame makes every frame distinct.
            if (x / 8) == k % 8 && y < 32 {
                img[p..p + 3].copy_from_slice(&[250, 250, 250]);
            }
            img[p + 1] = (y * 3) as u8;
            img[p + 2] = (80 + 60 * ep) as u8;
        }
    }
    img
}

/// Encodes `frames` (RGB8, W×H) at [`FPS`] to the AV1 mp4 `path` with LeRobot's settings.
pub fn encode_av1(path: &Path, frames: &[Vec<u8>]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let raw = path.with_extension("rgb");
    std::fs::write(&raw, frames.concat()).expect("raw frames");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{W}x{H}")])
        .args(["-r", &FPS.to_string(), "-i"])
        .arg(&raw)
        .args(["-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30"])
        .arg(path)
        .status()
        .expect("the ffmpeg CLI is needed for this test (apt install ffmpeg)");
    assert!(status.success(), "ffmpeg failed");
    std::fs::remove_file(raw).expect("rm");
}

/// Path of episode `ep`'s data file, relative to the dataset root.
pub fn data_file(ep: usize) -> String {
    format!("data/chunk-000/episode_{ep:06}.parquet")
}

/// Path of episode `ep`'s video file, relative to the dataset root.
pub fn video_file(ep: usize) -> String {
    format!("videos/chunk-000/{KEY}/episode_{ep:06}.mp4")
}

/// The `meta/episodes.jsonl` line of episode `ep` with `len` frames.
pub fn episode_line(ep: usize, len: usize) -> String {
    format!("{{\"episode_index\": {ep}, \"tasks\": [\"{}\"], \"length\": {len}}}", TASKS[ep % 2])
}

/// Writes a v2.1 dataset at `root` whose episode `e` has `lens[e]` frames: action `[k, e]`,
/// state `[e, -k]` at frame `k`, reward 1 and success on each episode's last frame.
pub fn write_v21(root: &Path, lens: &[usize]) {
    let total: usize = lens.iter().sum();
    let info = serde_json::json!({
        "codebase_version": "v2.1", "robot_type": "so100", "total_episodes": lens.len(), "total_frames": total,
        "total_tasks": 2, "total_videos": lens.len(), "total_chunks": 1, "chunks_size": 1000, "fps": FPS,
        "splits": {"train": format!("0:{}", lens.len())},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
            "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}},
            KEY: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"],
                  "info": {"video.fps": FPS as f64, "video.codec": "av1", "video.pix_fmt": "yuv420p"}},
            "next.reward": {"dtype": "float32", "shape": [1], "names": null},
            "next.success": {"dtype": "bool", "shape": [1], "names": null},
            "timestamp": {"dtype": "float32", "shape": [1], "names": null},
            "frame_index": {"dtype": "int64", "shape": [1], "names": null},
            "episode_index": {"dtype": "int64", "shape": [1], "names": null},
            "index": {"dtype": "int64", "shape": [1], "names": null},
            "task_index": {"dtype": "int64", "shape": [1], "names": null}
        }
    });
    std::fs::create_dir_all(root.join("meta")).expect("mkdir");
    std::fs::write(root.join("meta/info.json"), serde_json::to_string_pretty(&info).expect("json")).expect("info");
    let lines: Vec<String> = lens.iter().enumerate().map(|(ep, len)| episode_line(ep, *len) + "\n").collect();
    std::fs::write(root.join("meta/episodes.jsonl"), lines.concat()).expect("episodes");
    let tasks: Vec<String> =
        TASKS.iter().enumerate().map(|(i, t)| format!("{{\"task_index\": {i}, \"task\": \"{t}\"}}\n")).collect();
    std::fs::write(root.join("meta/tasks.jsonl"), tasks.concat()).expect("tasks");
    let mut index = 0i64;
    for (ep, &len) in lens.iter().enumerate() {
        let last = |k: usize| k + 1 == len;
        let mut t = Table::default();
        t.push("action", Column::F32Vec { dim: 2, values: (0..len).flat_map(|k| [k as f32, ep as f32]).collect() });
        t.push(
            "observation.state",
            Column::F32Vec { dim: 2, values: (0..len).flat_map(|k| [ep as f32, -(k as f32)]).collect() },
        );
        t.push("next.reward", Column::F32((0..len).map(|k| if last(k) { 1.0 } else { 0.0 }).collect()));
        t.push("next.success", Column::Bool((0..len).map(last).collect()));
        t.push("timestamp", Column::F32((0..len).map(|k| k as f32 / FPS as f32).collect()));
        t.push("frame_index", Column::I64((0..len as i64).collect()));
        t.push("episode_index", Column::I64(vec![ep as i64; len]));
        t.push("index", Column::I64((index..index + len as i64).collect()));
        t.push("task_index", Column::I64(vec![(ep % 2) as i64; len]));
        index += len as i64;
        write_parquet(&root.join(data_file(ep)), &t, HashMap::new()).expect("parquet");
        let frames: Vec<Vec<u8>> = (0..len).map(|k| frame(ep, k)).collect();
        encode_av1(&root.join(video_file(ep)), &frames);
    }
}

/// Copies the dataset at `from` to `to` (files copied, not linked, so edits stay local).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).expect("copy");
        }
    }
}
