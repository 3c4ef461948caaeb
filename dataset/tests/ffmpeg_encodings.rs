//! Every reader path on videos the `ffmpeg` CLI encodes with libx264's defaults, LeRobot's
//! settings, `-bf 0` and AV1: whole-file decodes, keyframe seeks, the frame cache (the training
//! loader's lookups) and `export_episode` return every frame, the last ones included (with
//! B-frames the decoder holds those back until the end of the stream), at its timestamp.
//! Skipped, with a printed reason, without the ffmpeg CLI.

#[path = "support/indexed_video.rs"]
mod indexed_video;
#[path = "support/lerobot_v21.rs"]
mod lerobot_v21;

use dataset::export::export_episode;
use dataset::reader::Dataset;
use dataset::video::{decode_all, decode_each, psnr_db, KeyframeSeeker};
use indexed_video::{encode, encodings, frame_index, indexed_frame, reencode, write_indexed_dataset, Encoding};
use indexed_video::{CAMERA, SIDE};

const FPS: f64 = 10.0;
/// Three episodes in one file: 33 frames, 0 … 3.2 s.
const LENS: [usize; 3] = [9, 11, 13];

fn total() -> usize {
    LENS.iter().sum()
}

/// A 33-frame file of indexed frames encoded with `encoding`, in `dir`.
fn indexed_file(dir: &std::path::Path, encoding: &Encoding) -> std::path::PathBuf {
    let path = dir.join(format!("{}.mp4", format!("{encoding:?}").replace(['(', ')', '"', '-'], "_")));
    let frames: Vec<Vec<u8>> = (0..total()).map(indexed_frame).collect();
    encode(&path, &frames, SIDE, SIDE, FPS, encoding);
    path
}

#[test]
fn whole_file_decodes_return_every_frame_at_its_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for encoding in encodings("whole_file_decodes_return_every_frame_at_its_time") {
        let path = indexed_file(tmp.path(), &encoding);
        let video = decode_all(&path).expect("decodes");
        assert_eq!(video.len(), total(), "{encoding:?}: every frame");
        for k in 0..total() {
            assert_eq!(frame_index(video.frame(k), video.width), Some(k), "{encoding:?}: frame {k} in order");
            let want_s = k as f64 / FPS;
            assert!((video.pts_s[k] - want_s).abs() < 1e-3, "{encoding:?}: frame {k} at {} s", video.pts_s[k]);
        }
        // The streaming form (ingest's) sees the same frames, also when it keeps partial files.
        let mut seen = Vec::new();
        let n = decode_each(&path, true, |t, rgb, w, _| {
            seen.push((frame_index(rgb, w), t));
            true
        })
        .expect("decodes");
        assert_eq!(n, total());
        assert_eq!(seen.last().map(|s| s.0), Some(Some(total() - 1)), "{encoding:?}: the last frame");
    }
}

#[test]
fn keyframe_seeks_reach_every_frame_including_the_last() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for encoding in encodings("keyframe_seeks_reach_every_frame_including_the_last") {
        let path = indexed_file(tmp.path(), &encoding);
        let mut seeker = KeyframeSeeker::open(&path, FPS).expect("open");
        let last = total() - 1;
        // The last frames first, then backwards (a seek each), forwards (decoding on), and jumps.
        let jumps = [5, last, 0, 17, last - 1, LENS[0] + LENS[1]];
        let order = [last, last - 1, last - 2].into_iter().chain((0..total()).rev()).chain(0..total()).chain(jumps);
        for k in order {
            let img = seeker.frame_at(k as f64 / FPS).unwrap_or_else(|e| panic!("{encoding:?}: frame {k}: {e}"));
            assert_eq!(frame_index(&img, SIDE), Some(k), "{encoding:?}: seek to frame {k}");
        }
        let err = seeker.frame_at(total() as f64 / FPS).expect_err("no frame after the last").to_string();
        assert!(err.contains("past the end"), "{err}");
    }
}

#[test]
fn dataset_readers_and_export_return_every_frame_of_a_reencoded_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for encoding in encodings("dataset_readers_and_export_return_every_frame_of_a_reencoded_file") {
        let root = tmp.path().join(format!("ds_{}", encoding.args().join("_").replace('-', "")));
        write_indexed_dataset(&root, &LENS, FPS);
        let mut ds = Dataset::open(&root).expect("open");
        let (video, _) = ds.video_location(0, CAMERA).expect("the video");
        assert_eq!(video, ds.video_location(total() - 1, CAMERA).expect("video").0, "one file for all episodes");
        reencode(&video, SIDE, SIDE, FPS, &encoding);

        // The frame cache: what the training loader reads.
        ds.load_frame_cache(2).expect("the cache decodes");
        for i in 0..total() {
            let img = ds.image(i, CAMERA).unwrap_or_else(|e| panic!("{encoding:?}: cached frame {i}: {e}"));
            assert_eq!(frame_index(img, SIDE), Some(i), "{encoding:?}: cached frame {i}");
        }
        // Keyframe seeks, from the end backwards.
        let mut seeker = ds.seeker();
        for i in (0..total()).rev() {
            let img = seeker.image(&ds, i, CAMERA).unwrap_or_else(|e| panic!("{encoding:?}: sought frame {i}: {e}"));
            assert_eq!(frame_index(&img, SIDE), Some(i), "{encoding:?}: sought frame {i}");
        }
        // Exporting the last episode of the file.
        let out = tmp.path().join("last_episode.mp4");
        let last = LENS.len() - 1;
        let frames = export_episode(&ds, last, &out, false).unwrap_or_else(|e| panic!("{encoding:?}: export: {e}"));
        assert_eq!(frames, LENS[last] as u64);
        let exported = decode_all(&out).expect("the export decodes");
        assert_eq!(exported.len(), LENS[last], "{encoding:?}: exported frames");
        let first = total() - LENS[last];
        for j in 0..exported.len() {
            assert_eq!(frame_index(exported.frame(j), exported.width), Some(first + j), "{encoding:?}: exported {j}");
        }
    }
}

/// A v2.1 dataset (one mp4 per episode) whose videos were re-encoded with LeRobot's H.264
/// settings: every episode's last frames come from the decoder's end-of-stream drain.
#[test]
fn v21_episodes_reencoded_with_lerobot_h264_read_and_export_whole() {
    if !encodings("v21_episodes_reencoded_with_lerobot_h264_read_and_export_whole").contains(&Encoding::LeRobotH264) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("v21");
    let lens = [6usize, 9, 7];
    lerobot_v21::write_v21(&root, &lens);
    for ep in 0..lens.len() {
        let video = root.join(lerobot_v21::video_file(ep));
        reencode(&video, lerobot_v21::W, lerobot_v21::H, lerobot_v21::FPS as f64, &Encoding::LeRobotH264);
    }
    let mut ds = Dataset::open(&root).expect("open v2.1");
    ds.load_frame_cache(2).expect("the cache decodes");
    let mut seeker = ds.seeker();
    for i in (0..ds.len()).rev() {
        let (ep, k) = (ds.episode_of(i).index as usize, ds.frame_index(i));
        let cached = ds.image(i, lerobot_v21::KEY).unwrap_or_else(|e| panic!("cached frame {i}: {e}"));
        let sought = seeker.image(&ds, i, lerobot_v21::KEY).unwrap_or_else(|e| panic!("sought frame {i}: {e}"));
        assert_eq!(cached, sought.as_slice(), "seek and cache agree on frame {i}");
        // The right frame: closer to its source than to any other frame of the episode.
        let own = psnr_db(cached, &lerobot_v21::frame(ep, k));
        for other in (0..lens[ep]).filter(|o| *o != k) {
            assert!(own > psnr_db(cached, &lerobot_v21::frame(ep, other)) + 3.0, "frame {i} looks like {other}");
        }
    }
    for (ep, &len) in lens.iter().enumerate() {
        let out = tmp.path().join(format!("export_{ep}.mp4"));
        let frames = export_episode(&ds, ep, &out, true).unwrap_or_else(|e| panic!("export episode {ep}: {e}"));
        assert_eq!(frames, len as u64, "episode {ep}");
        assert_eq!(decode_all(&out).expect("the export decodes").len(), len, "exported frames of episode {ep}");
    }
}
