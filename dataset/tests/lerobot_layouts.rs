//! Datasets laid out as LeRobot writes them: a v2.1 dataset (one parquet and one mp4 per
//! episode, JSON-lines metadata) whose videos are AV1, encoded by FFmpeg's libsvtav1 with
//! LeRobot's settings (`-g 2 -crf 30 -pix_fmt yuv420p`). Needs the `ffmpeg` CLI (CI installs it).

#[path = "support/lerobot_v21.rs"]
mod lerobot_v21;

use dataset::reader::Dataset;
use dataset::video::psnr_db;
use lerobot_v21::{frame, write_v21, KEY};

#[test]
fn reads_a_lerobot_v21_dataset_with_av1_videos() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let lens = [5usize, 7];
    write_v21(root, &lens);

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
