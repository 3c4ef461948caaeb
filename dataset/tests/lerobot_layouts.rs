//! Datasets laid out as LeRobot writes them: a v2.1 dataset (one parquet and one mp4 per
//! episode, JSON-lines metadata) whose videos are AV1, encoded by FFmpeg's libsvtav1 with
//! LeRobot's settings (`-g 2 -crf 30 -pix_fmt yuv420p`). Needs the `ffmpeg` CLI (CI installs it).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use dataset::reader::Dataset;
use dataset::table::{write_parquet, Column, Table};
use dataset::video::psnr_db;

const W: usize = 64;
const H: usize = 64;
const KEY: &str = "observation.images.cam";

fn frame(ep: usize, k: usize) -> Vec<u8> {
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

fn encode_av1(path: &Path, frames: &[Vec<u8>]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let raw = path.with_extension("rgb");
    std::fs::write(&raw, frames.concat()).expect("raw frames");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{W}x{H}"), "-r", "10", "-i"])
        .arg(&raw)
        .args(["-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30"])
        .arg(path)
        .status()
        .expect("the ffmpeg CLI is needed for this test (apt install ffmpeg)");
    assert!(status.success(), "ffmpeg failed");
    std::fs::remove_file(raw).expect("rm");
}

#[test]
fn reads_a_lerobot_v21_dataset_with_av1_videos() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let lens = [5usize, 7];
    let info = serde_json::json!({
        "codebase_version": "v2.1", "robot_type": "so100", "total_episodes": 2, "total_frames": 12,
        "total_tasks": 2, "total_videos": 2, "total_chunks": 1, "chunks_size": 1000, "fps": 10,
        "splits": {"train": "0:2"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
            "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}},
            KEY: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"],
                  "info": {"video.fps": 10.0, "video.codec": "av1", "video.pix_fmt": "yuv420p"}},
            "timestamp": {"dtype": "float32", "shape": [1], "names": null},
            "frame_index": {"dtype": "int64", "shape": [1], "names": null},
            "episode_index": {"dtype": "int64", "shape": [1], "names": null},
            "index": {"dtype": "int64", "shape": [1], "names": null},
            "task_index": {"dtype": "int64", "shape": [1], "names": null}
        }
    });
    std::fs::create_dir_all(root.join("meta")).expect("mkdir");
    std::fs::write(root.join("meta/info.json"), serde_json::to_string_pretty(&info).expect("json")).expect("info");
    std::fs::write(
        root.join("meta/episodes.jsonl"),
        "{\"episode_index\": 0, \"tasks\": [\"grasp\"], \"length\": 5}\n{\"episode_index\": 1, \"tasks\": [\"place\"], \"length\": 7}\n",
    )
    .expect("episodes");
    std::fs::write(
        root.join("meta/tasks.jsonl"),
        "{\"task_index\": 0, \"task\": \"grasp\"}\n{\"task_index\": 1, \"task\": \"place\"}\n",
    )
    .expect("tasks");
    let mut index = 0i64;
    for (ep, &len) in lens.iter().enumerate() {
        let mut t = Table::default();
        t.push("action", Column::F32Vec { dim: 2, values: (0..len).flat_map(|k| [k as f32, ep as f32]).collect() });
        t.push(
            "observation.state",
            Column::F32Vec { dim: 2, values: (0..len).flat_map(|k| [ep as f32, -(k as f32)]).collect() },
        );
        t.push("timestamp", Column::F32((0..len).map(|k| k as f32 / 10.0).collect()));
        t.push("frame_index", Column::I64((0..len as i64).collect()));
        t.push("episode_index", Column::I64(vec![ep as i64; len]));
        t.push("index", Column::I64((index..index + len as i64).collect()));
        t.push("task_index", Column::I64(vec![ep as i64; len]));
        index += len as i64;
        write_parquet(&root.join(format!("data/chunk-000/episode_{ep:06}.parquet")), &t, HashMap::new())
            .expect("parquet");
        let frames: Vec<Vec<u8>> = (0..len).map(|k| frame(ep, k)).collect();
        encode_av1(&root.join(format!("videos/chunk-000/{KEY}/episode_{ep:06}.mp4")), &frames);
    }

    let mut ds = Dataset::open(root).expect("open v2.1");
    assert_eq!(ds.len(), 12);
    assert_eq!(ds.episodes().len(), 2);
    assert_eq!(ds.tasks(), &["grasp".to_string(), "place".to_string()]);
    assert_eq!(ds.task(6), "place");
    assert_eq!(ds.action(6), &[1.0, 1.0]);
    assert_eq!(ds.state(4), &[0.0, -4.0]);
    assert!(ds.done(4) && !ds.done(3), "episode ends mark done");
    ds.load_frame_cache(2).expect("AV1 decodes");
    let mut seeker = ds.seeker();
    let mut worst = f64::INFINITY;
    for i in 0..ds.len() {
        let ep = ds.episode_of(i).index as usize;
        let k = ds.frame_index(i);
        let img = ds.image(i, KEY).expect("frame");
        assert_eq!(img, seeker.image(&ds, i, KEY).expect("seek").as_slice(), "seek and cache agree");
        let own = psnr_db(img, &frame(ep, k));
        worst = worst.min(own);
        // The decoded frame is the right one: it is closer to its source than to any other frame.
        for other in (0..lens[ep]).filter(|o| *o != k) {
            assert!(own > psnr_db(img, &frame(ep, other)) + 3.0, "frame {i} looks like frame {other}");
        }
    }
    // AV1 at LeRobot's crf 30 is lossy on this synthetic pattern.
    assert!(worst > 25.0, "worst PSNR {worst:.1} dB");
}
