//! The frame cache file: a `video` build writes a dataset's decoded frames (from videos the
//! `ffmpeg` CLI encoded), a reader loads them back bit for bit without decoding, and a cache
//! whose video file changed since, or that was cut short, is refused. Skipped, with a printed
//! reason, without the ffmpeg CLI.

#[path = "support/indexed_video.rs"]
mod indexed_video;

use dataset::frame_cache::default_path;
use dataset::reader::Dataset;
use indexed_video::{frame_index, reencode, write_indexed_dataset, Encoding, CAMERA, SIDE};

const FPS: f64 = 10.0;
/// Two episodes in one video file.
const LENS: [usize; 2] = [7, 12];

/// A dataset whose video the ffmpeg CLI re-encoded with `encoding`, in `root`.
fn ffmpeg_dataset(root: &std::path::Path, encoding: &Encoding) -> Dataset {
    write_indexed_dataset(root, &LENS, FPS);
    let ds = Dataset::open(root).expect("open");
    let (video, _) = ds.video_location(0, CAMERA).expect("the video");
    reencode(&video, SIDE, SIDE, FPS, encoding);
    Dataset::open(root).expect("open")
}

#[test]
fn cached_frames_equal_the_decoded_ones_bit_for_bit() {
    if !indexed_video::ffmpeg_available("cached_frames_equal_the_decoded_ones_bit_for_bit") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for encoding in [Encoding::X264Defaults, Encoding::LeRobotH264] {
        let root = tmp.path().join(format!("{encoding:?}"));
        let mut decoded = ffmpeg_dataset(&root, &encoding);
        let cache = default_path(&root);
        let summary = decoded.write_frame_cache_file(&cache, 2).expect("write the frame cache");
        let total: usize = LENS.iter().sum();
        assert_eq!((summary.videos, summary.frames), (1, total), "{encoding:?}");
        assert_eq!(summary.bytes, std::fs::metadata(&cache).expect("the cache file").len());

        let mut cached = Dataset::open(&root).expect("open");
        cached.load_frame_cache_file(&cache).expect("load the frame cache");
        for i in 0..total {
            let from_video = decoded.image(i, CAMERA).expect("decoded frame");
            let from_cache = cached.image(i, CAMERA).expect("cached frame");
            assert!(from_video == from_cache, "{encoding:?}: frame {i} differs between the cache and the decode");
            assert_eq!(frame_index(from_cache, SIDE), Some(i), "{encoding:?}: cached frame {i}");
        }
    }
}

#[test]
fn a_cache_of_a_changed_video_or_cut_short_is_refused() {
    if !indexed_video::ffmpeg_available("a_cache_of_a_changed_video_or_cut_short_is_refused") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("ds");
    let mut ds = ffmpeg_dataset(&root, &Encoding::X264Defaults);
    let cache = default_path(&root);
    ds.write_frame_cache_file(&cache, 1).expect("write the frame cache");

    // Cut short: refused as truncated.
    let bytes = std::fs::read(&cache).expect("read the cache");
    let short = tmp.path().join("short.bin");
    std::fs::write(&short, &bytes[..bytes.len() - 5]).expect("write a short copy");
    let err = Dataset::open(&root).expect("open").load_frame_cache_file(&short).expect_err("a short cache");
    assert!(err.to_string().contains("truncated"), "{err}");

    // The video re-encoded after caching (same frame count, other bytes): stale.
    let (video, _) = ds.video_location(0, CAMERA).expect("the video");
    reencode(&video, SIDE, SIDE, FPS, &Encoding::X264NoBFrames);
    let mut reopened = Dataset::open(&root).expect("open");
    let err = reopened.load_frame_cache_file(&cache).expect_err("a stale cache");
    let msg = err.to_string();
    assert!(msg.contains("stale frame cache") && msg.contains("file-000.mp4"), "{msg}");
    assert!(reopened.image(0, CAMERA).is_err(), "nothing was loaded from the stale cache");
}
