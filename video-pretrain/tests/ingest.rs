//! Ingest of real files the `ffmpeg` CLI generates: odd frame sizes, a variable-frame-rate file,
//! truncated files, a file without a video stream and a non-video file; then the frame store is
//! memory-mapped and checked frame by frame.

use std::path::Path;
use std::process::Command;

use video_pretrain::ingest::{collect_inputs, ingest_videos, IngestConfig};
use video_pretrain::store::FrameStore;

fn ffmpeg(dir: &Path, args: &str) {
    let ok = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y"])
        .args(args.split(' '))
        .status()
        .expect("the ffmpeg CLI is needed to generate test videos (apt install ffmpeg)")
        .success();
    assert!(ok, "ffmpeg {args}");
}

fn truncate_copy(dir: &Path, from: &str, to: &str, fraction: f64) {
    let bytes = std::fs::read(dir.join(from)).expect("read");
    std::fs::write(dir.join(to), &bytes[..(bytes.len() as f64 * fraction) as usize]).expect("write");
}

#[test]
fn ingests_what_decodes_and_names_what_does_not() {
    let tmp = tempfile::tempdir().expect("tmp");
    let v = tmp.path().join("videos");
    std::fs::create_dir_all(v.join("sub")).expect("mkdir");
    // 97×61 solid red, 2 s at 30 fps, lossless.
    ffmpeg(&v, "-f lavfi -i color=c=red:s=97x61:r=30:d=2 -c:v ffv1 odd.mkv");
    // 160×90 test pattern, H.264 in mp4, 1 s at 25 fps.
    ffmpeg(&v, "-f lavfi -i testsrc=s=160x90:r=25:d=1 -c:v libx264 -pix_fmt yuv420p sub/wide.mp4");
    // Variable frame rate: 10 frames at 30 fps, then 10 at 10 fps (0 … 1.233 s).
    ffmpeg(&v, "-f lavfi -i color=c=blue:s=64x48:r=30:d=1 -frames:v 20 -vf setpts='if(lt(N,10),N/30,(N-10)/10+10/30)/TB' -fps_mode vfr -c:v ffv1 vfr.mkv");
    // 4 s, then cut in half: the frames before the cut are kept.
    ffmpeg(&v, "-f lavfi -i testsrc=s=64x48:r=30:d=4 -c:v ffv1 long.mkv");
    truncate_copy(&v, "long.mkv", "half.mkv", 0.5);
    std::fs::remove_file(v.join("long.mkv")).expect("rm");
    // An mp4 cut before its index (moov at the end): unreadable, skipped.
    truncate_copy(&v, "sub/wide.mp4", "cut.mp4", 0.6);
    ffmpeg(&v, "-f lavfi -i sine=d=1 -c:a aac audio.m4a");
    std::fs::write(v.join("notes.txt"), "not a video").expect("write");

    let files = collect_inputs(v.to_str().expect("utf-8")).expect("files");
    assert_eq!(files.len(), 7);
    assert_eq!(collect_inputs(&format!("{}/*.mkv", v.display())).expect("glob").len(), 3);
    let out = tmp.path().join("frames");
    let cfg = IngestConfig { size: 32, fps: 10.0, threads: 2 };
    let (m, r) = ingest_videos(&files, &out, &cfg, &|_, _| {}).expect("ingest");
    assert_eq!((r.episodes, r.skipped), (4, 3), "{m:?}");
    let skipped: Vec<&str> = m.skipped.iter().map(|s| s.source.rsplit('/').next().unwrap_or_default()).collect();
    assert_eq!(skipped, ["audio.m4a", "cut.mp4", "notes.txt"]);
    assert!(m.skipped.iter().all(|s| s.reason.contains(&s.source)), "reasons name the file: {:?}", m.skipped);
    let len = |name: &str| m.episodes.iter().find(|e| e.source.ends_with(name)).map(|e| e.len).expect(name);
    // Input order: half.mkv, odd.mkv, sub/wide.mp4, vfr.mkv.
    assert!(m.episodes[0].source.ends_with("half.mkv") && m.episodes[3].source.ends_with("vfr.mkv"));
    assert_eq!(len("odd.mkv"), 20, "2 s at 10 fps");
    assert_eq!(len("wide.mp4"), 10, "1 s at 10 fps");
    assert_eq!(len("vfr.mkv"), 13, "slots 0.0 … 1.2 s of the variable-rate file");
    let half = len("half.mkv");
    assert!((5..40).contains(&half), "the truncated file keeps its first frames: {half}");

    let store = FrameStore::open(&out).expect("open");
    assert_eq!(store.len() as u64, m.frames);
    // Every odd.mkv frame is red after resize and crop.
    let odd = m.episodes.iter().position(|e| e.source.ends_with("odd.mkv")).expect("odd");
    for px in store.episode(odd).chunks(3) {
        assert!(px[0] > 230 && px[1] < 25 && px[2] < 25, "{px:?}");
    }
    let vfr = m.episodes.iter().position(|e| e.source.ends_with("vfr.mkv")).expect("vfr");
    assert!(store.episode(vfr).chunks(3).all(|p| p[2] > 200 && p[0] < 40), "blue");
    // The same inputs give the same store (written in input order whatever the threads did).
    let out2 = tmp.path().join("frames2");
    ingest_videos(&files, &out2, &IngestConfig { threads: 1, ..cfg }, &|_, _| {}).expect("again");
    assert_eq!(std::fs::read(out.join("frames.u8")).expect("a"), std::fs::read(out2.join("frames.u8")).expect("b"));
}

#[test]
fn ingests_the_camera_streams_of_a_lerobot_dataset() {
    use dataset::{CameraFeature, DatasetSpec, DatasetWriter, FrameRecord};
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("ds");
    let spec = DatasetSpec {
        scene: None,
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: vec!["q".into()],
        action_names: vec!["a".into()],
        env_state_names: vec![],
        cameras: vec![
            CameraFeature { key: "observation.images.front".into(), width: 32, height: 32 },
            CameraFeature { key: "observation.images.wrist".into(), width: 32, height: 32 },
        ],
    };
    let mut w = DatasetWriter::create(&root, &spec).expect("create");
    // Episode e is solid grey level 60 + 120·e on the front camera, black on the wrist camera.
    for (e, len) in [(0usize, 10usize), (1, 7)] {
        w.begin_episode("pick").expect("begin");
        for k in 0..len {
            let grey = vec![(60 + 120 * e) as u8; 32 * 32 * 3];
            w.add_frame(&FrameRecord {
                state: vec![k as f32],
                action: vec![0.0],
                env_state: vec![],
                reward: 0.0,
                done: k + 1 == len,
                truncated: false,
                success: false,
                images: vec![grey, vec![0; 32 * 32 * 3]],
            })
            .expect("frame");
        }
        w.end_episode(Some(e as u64), Some(false)).expect("end");
    }
    w.finish().expect("finish");
    let out = tmp.path().join("frames");
    let cfg = IngestConfig { size: 16, fps: 5.0, threads: 2 };
    // The same dataset twice stands for two datasets: their episodes follow each other.
    let (m, r) =
        video_pretrain::ingest::ingest_dataset(&[root.clone(), root.clone()], &out, &cfg, &|_, _| {}).expect("ingest");
    // Per dataset, 2 cameras × 2 episodes; 10 frames at 10 fps → 5 at 5 fps, 7 → 4.
    assert_eq!(r.episodes, 8);
    let lens: Vec<u64> = m.episodes.iter().map(|e| e.len).collect();
    assert_eq!(lens, [5, 4, 5, 4, 5, 4, 5, 4]);
    assert!(m.episodes[1].source.ends_with("observation.images.front#1"), "{:?}", m.episodes[1]);
    let store = FrameStore::open(&out).expect("open");
    let mean = |e: usize| store.episode(e).iter().map(|&b| b as f64).sum::<f64>() / store.episode(e).len() as f64;
    assert!(
        (mean(0) - 60.0).abs() < 6.0 && (mean(1) - 180.0).abs() < 6.0 && mean(2) < 6.0,
        "{} {} {}",
        mean(0),
        mean(1),
        mean(2)
    );
}

#[path = "../../dataset/tests/support/indexed_video.rs"]
mod indexed_video;

/// Files with B-frames (x264's defaults, LeRobot's settings), without (`-bf 0`) and AV1 are
/// ingested whole at their own rate, the last frames (drained from the decoder at the end of
/// the stream) included; so is a dataset whose many-episode mp4 was re-encoded that way.
#[test]
fn ingest_keeps_every_frame_of_each_encoding() {
    use indexed_video::{encode, encodings, frame_index, indexed_frame, reencode, write_indexed_dataset, SIDE};
    let encodings = encodings("ingest_keeps_every_frame_of_each_encoding");
    let tmp = tempfile::tempdir().expect("tmp");
    let videos = tmp.path().join("videos");
    std::fs::create_dir_all(&videos).expect("mkdir");
    let frames: Vec<Vec<u8>> = (0..33).map(indexed_frame).collect();
    let mut roots = Vec::new();
    for (n, encoding) in encodings.iter().enumerate() {
        encode(&videos.join(format!("{n}.mp4")), &frames, SIDE, SIDE, 10.0, encoding);
        let root = tmp.path().join(format!("ds{n}"));
        write_indexed_dataset(&root, &[9, 11, 13], 10.0);
        let ds = dataset::Dataset::open(&root).expect("open");
        let (video, _) = ds.video_location(0, indexed_video::CAMERA).expect("the video");
        reencode(&video, SIDE, SIDE, 10.0, encoding);
        roots.push(root);
    }
    if encodings.is_empty() {
        return;
    }
    let cfg = IngestConfig { size: SIDE, fps: 10.0, threads: 2 };
    let files = collect_inputs(videos.to_str().expect("utf-8")).expect("files");
    let (m, _) = ingest_videos(&files, &tmp.path().join("from_files"), &cfg, &|_, _| {}).expect("ingest files");
    let store = FrameStore::open(&tmp.path().join("from_files")).expect("open");
    for (e, encoding) in encodings.iter().enumerate() {
        assert_eq!(m.episodes[e].len, 33, "{encoding:?}: every frame");
        for (k, frame) in store.episode(e).chunks_exact(SIDE * SIDE * 3).enumerate() {
            assert_eq!(frame_index(frame, SIDE), Some(k), "{encoding:?}: frame {k}");
        }
    }
    let out = tmp.path().join("from_datasets");
    let (m, _) = video_pretrain::ingest::ingest_dataset(&roots, &out, &cfg, &|_, _| {}).expect("ingest datasets");
    let store = FrameStore::open(&out).expect("open");
    assert_eq!(m.episodes.len(), 3 * encodings.len(), "3 episodes per dataset");
    for (e, episode) in m.episodes.iter().enumerate() {
        let first = [0, 9, 20][e % 3];
        assert_eq!(episode.len, [9, 11, 13][e % 3], "{}", episode.source);
        for (k, frame) in store.episode(e).chunks_exact(SIDE * SIDE * 3).enumerate() {
            assert_eq!(frame_index(frame, SIDE), Some(first + k), "{}: frame {k}", episode.source);
        }
    }
}
