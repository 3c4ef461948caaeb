//! Test videos whose frames tell their index, encoded by the `ffmpeg` CLI with the settings that
//! datasets meet in the wild: libx264's defaults (B-frames), LeRobot's (`-g 2 -crf 30 -pix_fmt
//! yuv420p`), `-bf 0`, and AV1. The top-left 32×32 px of frame `k` are two grey blocks showing
//! `k`'s base-8 digits, 28 grey levels apart, so the index survives lossy coding; the rest is
//! texture moving 1.5 px per frame, which makes x264 choose B-frames.
//!
//! Shared by the dataset, video-pretrain and launch tests (`#[path]` includes).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use dataset::{CameraFeature, DatasetSpec, DatasetWriter, FrameRecord};

/// Width and height of an indexed frame, px.
pub const SIDE: usize = 64;
/// Indexes a frame can show.
pub const MAX_FRAMES: usize = 64;
const BLOCK: usize = 16;
const LEVEL0: f64 = 20.0;
const LEVEL_STEP: f64 = 28.0;

/// How a test video is encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Encoding {
    /// libx264 with its defaults (3 B-frames, b-pyramid).
    X264Defaults,
    /// LeRobot's H.264 settings: `-pix_fmt yuv420p -g 2 -crf 30` (x264's default B-frames).
    LeRobotH264,
    /// libx264 without B-frames (`-bf 0`).
    X264NoBFrames,
    /// AV1 with LeRobot's settings, through the named encoder (libsvtav1 or libaom-av1).
    Av1(&'static str),
}

impl Encoding {
    /// The ffmpeg output options.
    pub fn args(&self) -> Vec<&'static str> {
        match self {
            Encoding::X264Defaults => vec!["-c:v", "libx264", "-pix_fmt", "yuv420p"],
            Encoding::LeRobotH264 => vec!["-vcodec", "libx264", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30"],
            Encoding::X264NoBFrames => vec!["-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "0"],
            Encoding::Av1(encoder) => vec!["-c:v", encoder, "-pix_fmt", "yuv420p", "-g", "2", "-crf", "30"],
        }
    }
}

/// Whether the `ffmpeg` CLI runs; prints why a test is skipped when it does not.
pub fn ffmpeg_available(test: &str) -> bool {
    let ok = Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping {test}: the ffmpeg CLI is not installed (apt install ffmpeg)");
    }
    ok
}

/// Every encoding this ffmpeg can make (AV1 only with libsvtav1 or libaom-av1, else skipped
/// with a printed reason); empty, with a printed reason, when there is no ffmpeg.
pub fn encodings(test: &str) -> Vec<Encoding> {
    if !ffmpeg_available(test) {
        return Vec::new();
    }
    let mut out = vec![Encoding::X264Defaults, Encoding::LeRobotH264, Encoding::X264NoBFrames];
    let list =
        Command::new("ffmpeg").args(["-hide_banner", "-encoders"]).output().map(|o| o.stdout).unwrap_or_default();
    let list = String::from_utf8_lossy(&list);
    match ["libsvtav1", "libaom-av1"].into_iter().find(|e| list.contains(&format!(" {e} "))) {
        Some(e) => out.push(Encoding::Av1(e)),
        None => eprintln!("{test}: no AV1 encoder in this ffmpeg (libsvtav1, libaom-av1): AV1 not covered"),
    }
    out
}

/// Frame `k` (`k < MAX_FRAMES`) as `SIDE`×`SIDE` RGB8.
pub fn indexed_frame(k: usize) -> Vec<u8> {
    assert!(k < MAX_FRAMES, "frame {k} cannot be indexed");
    let mut img = vec![0u8; SIDE * SIDE * 3];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let v = if y < 2 * BLOCK && x < 2 * BLOCK {
                let digit = if x < BLOCK { k / 8 } else { k % 8 };
                (LEVEL0 + LEVEL_STEP * digit as f64) as u8
            } else {
                texture((x + 3 * k / 2) / 2, y / 2)
            };
            img[(y * SIDE + x) * 3..(y * SIDE + x) * 3 + 3].copy_from_slice(&[v, v, v]);
        }
    }
    img
}

fn texture(x: usize, y: usize) -> u8 {
    let v = (x as u32).wrapping_mul(374_761_393).wrapping_add((y as u32).wrapping_mul(668_265_263));
    ((v ^ (v >> 13)).wrapping_mul(1_274_126_177) >> 24) as u8
}

/// The index an RGB8 image shows in its top-left corner (`width` px per row); `None` when a
/// block's grey is not within 10 levels of a digit's.
pub fn frame_index(rgb: &[u8], width: usize) -> Option<usize> {
    let digit = |x0: usize| {
        let mut sum = 0.0;
        let mut n = 0.0;
        for y in 8..24 {
            for x in x0 + 4..x0 + BLOCK - 4 {
                sum += f64::from(*rgb.get((y * width + x) * 3)?);
                n += 1.0;
            }
        }
        let level = sum / n;
        let d = ((level - LEVEL0) / LEVEL_STEP).round();
        ((0.0..8.0).contains(&d) && (level - LEVEL0 - LEVEL_STEP * d).abs() < 10.0).then_some(d as usize)
    };
    Some(digit(0)? * 8 + digit(BLOCK)?)
}

/// Encodes `frames` (RGB8, `width`×`height` each) at `fps` into `path` with `encoding`, the way
/// LeRobot does from an image sequence (`-r FPS -i …`).
pub fn encode(path: &Path, frames: &[Vec<u8>], width: usize, height: usize, fps: f64, encoding: &Encoding) {
    let raw = path.with_extension("rgb");
    std::fs::write(&raw, frames.concat()).expect("write raw frames");
    let status = Command::new("ffmpeg")
        .env("SVT_LOG", "1")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{width}x{height}")])
        .args(["-r", &fps.to_string(), "-i"])
        .arg(&raw)
        .args(encoding.args())
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not encode {} with {encoding:?}", path.display());
    std::fs::remove_file(raw).expect("remove raw frames");
}

/// Every frame of `path` as ffmpeg decodes it (RGB8 at the stream's size).
pub fn decode_with_ffmpeg(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg could not decode {}", path.display());
    out.stdout.chunks_exact(width * height * 3).map(<[u8]>::to_vec).collect()
}

/// Re-encodes the video at `path` in place with `encoding` (same frames, same rate), the way a
/// dataset's videos are re-encoded for LeRobot.
pub fn reencode(path: &Path, width: usize, height: usize, fps: f64, encoding: &Encoding) {
    let frames = decode_with_ffmpeg(path, width, height);
    let tmp = path.with_extension("reencoded.mp4");
    encode(&tmp, &frames, width, height, fps, encoding);
    std::fs::rename(&tmp, path).expect("replace the video");
}

/// The camera of [`write_indexed_dataset`]'s datasets.
pub const CAMERA: &str = "observation.images.cam";

/// Records a LeRobot v3.0 dataset at `root` with our writer: episodes of `lens` frames at `fps`,
/// one camera ([`CAMERA`]) whose frame `i` (dataset index, across episodes) is
/// [`indexed_frame`]`(i)`. All episodes share one mp4.
pub fn write_indexed_dataset(root: &Path, lens: &[usize], fps: f64) {
    let spec = DatasetSpec {
        scene: None,
        fps,
        robot_type: "widowx250".into(),
        state_names: vec!["s".into()],
        action_names: vec!["a".into()],
        env_state_names: Vec::new(),
        cameras: vec![CameraFeature { key: CAMERA.into(), width: SIDE as u32, height: SIDE as u32 }],
    };
    let mut w = DatasetWriter::create(root, &spec).expect("create the dataset");
    let mut i = 0;
    for (ep, &len) in lens.iter().enumerate() {
        w.begin_episode(&format!("task {ep}")).expect("begin an episode");
        for k in 0..len {
            let last = k + 1 == len;
            w.add_frame(&FrameRecord {
                state: vec![i as f32],
                action: vec![k as f32],
                env_state: Vec::new(),
                reward: f32::from(u8::from(last)),
                done: last,
                truncated: false,
                success: last,
                images: vec![indexed_frame(i)],
            })
            .expect("add a frame");
            i += 1;
        }
        w.end_episode(None, Some(true)).expect("end the episode").expect("an episode summary");
    }
    w.finish().expect("finish the dataset");
}
