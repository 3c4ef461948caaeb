//! The frame cache on disk: a dataset's decoded camera frames in one file, so a build without
//! FFmpeg (the GPU build) can train on images. A `video` build writes it
//! ([`crate::reader::Dataset::write_frame_cache_file`], `armstack dataset cache`); any build reads
//! it ([`crate::reader::Dataset::load_frame_cache_file`]) with plain file reads.
//!
//! Layout, little-endian:
//!
//! ```text
//! magic  b"ARMFRMC\0"         8 bytes
//! format version  u32         (FORMAT_VERSION)
//! header length   u32         bytes of the JSON header that follows
//! header          JSON        fps, camera keys, and per video file: its path relative to the
//!                             dataset root, width, height, frame count, and the size and
//!                             content hash of the video file the frames were decoded from
//! per video file, in header order:
//!   pts           f64 × frames   presentation time of each frame, s
//!   rgb           u8 × frames·width·height·3   interleaved RGB8 frames, back to back
//! ```
//!
//! A cache whose video files changed since it was written (another size or content hash: an
//! appended episode, a re-encode) is refused, as is one for another camera set or file list.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{DatasetError, Result};
use crate::frames::DecodedVideo;

/// Where a dataset's frame cache lives, relative to the dataset root.
pub const CACHE_FILE: &str = "cache/frames.bin";
/// First bytes of a frame cache file.
pub const MAGIC: &[u8; 8] = b"ARMFRMC\0";
/// Version of the layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest JSON header accepted, bytes (a corrupt length must not allocate gigabytes).
const MAX_HEADER_BYTES: u32 = 16 << 20;
/// Bytes hashed per read of a video file.
const HASH_BLOCK_BYTES: usize = 1 << 20;

/// The default frame cache file of the dataset at `root`.
pub fn default_path(root: &Path) -> PathBuf {
    root.join(CACHE_FILE)
}

/// One decoded video file in the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CachedVideo {
    /// Path of the video file relative to the dataset root, `/`-separated.
    file: String,
    /// Frame width, px.
    width: usize,
    /// Frame height, px.
    height: usize,
    /// Frames stored.
    frames: usize,
    /// Size of the video file when it was decoded, bytes.
    video_bytes: u64,
    /// [`content_hash`] of the video file when it was decoded, hex.
    video_hash: String,
}

/// The JSON header.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CacheHeader {
    /// Dataset frames per second.
    fps: f64,
    /// The dataset's camera (video feature) keys.
    cameras: Vec<String>,
    /// The decoded video files, in the order their frames follow the header.
    videos: Vec<CachedVideo>,
}

/// What a frame cache file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameCacheSummary {
    /// The cache file.
    pub path: PathBuf,
    /// Video files decoded into it.
    pub videos: usize,
    /// Frames over all video files.
    pub frames: usize,
    /// Size of the cache file, bytes.
    pub bytes: u64,
}

/// A 64-bit hash of the content of `path` (not cryptographic: it tells a changed video file,
/// not a forged one). Reads the file in 1 MiB blocks, 8 bytes per mixing step.
pub fn content_hash(path: &Path) -> Result<u64> {
    let mut file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let mut block = vec![0u8; HASH_BLOCK_BYTES];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut total: u64 = 0;
    loop {
        let n = fill(&mut file, &mut block).map_err(|e| DatasetError::io(path, e))?;
        let words = block[..n].chunks_exact(8);
        let tail = words.remainder();
        for w in words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            hash = mix(hash, u64::from_le_bytes(word));
        }
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            hash = mix(hash, u64::from_le_bytes(word));
        }
        total += n as u64;
        if n < block.len() {
            return Ok(mix(hash, total));
        }
    }
}

fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29)
}

/// Reads until `buf` is full or the file ends; returns the bytes read (a short count: the end).
fn fill(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `file` relative to `root`, `/`-separated (how the header names it).
fn relative_name(root: &Path, file: &Path) -> Result<String> {
    let rel = file
        .strip_prefix(root)
        .map_err(|_| DatasetError::invalid(file, format!("video file outside the dataset {}", root.display())))?;
    Ok(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

/// The header entry of video file `file` decoded as `video`, hashing the file now.
fn describe(root: &Path, file: &Path, video: &DecodedVideo) -> Result<CachedVideo> {
    let video_bytes = std::fs::metadata(file).map_err(|e| DatasetError::io(file, e))?.len();
    Ok(CachedVideo {
        file: relative_name(root, file)?,
        width: video.width,
        height: video.height,
        frames: video.len(),
        video_bytes,
        video_hash: format!("{:016x}", content_hash(file)?),
    })
}

/// Writes `videos` (decoded video files of the dataset at `root`, in order, with the dataset's
/// `fps` and camera keys) to `out`, atomically (a temporary sibling renamed over it). Hashes each
/// video file as it is now. [`crate::reader::Dataset::write_frame_cache_file`] decodes and calls
/// this; it needs no FFmpeg itself.
pub fn write(
    out: &Path,
    root: &Path,
    fps: f64,
    cameras: &[String],
    videos: &[(&Path, &DecodedVideo)],
) -> Result<FrameCacheSummary> {
    let header = CacheHeader {
        fps,
        cameras: cameras.to_vec(),
        videos: videos.iter().map(|(file, video)| describe(root, file, video)).collect::<Result<_>>()?,
    };
    let json = serde_json::to_vec(&header).map_err(|e| DatasetError::invalid(out, e))?;
    let json_len = u32::try_from(json.len()).map_err(|_| DatasetError::invalid(out, "frame cache header too large"))?;
    durable::ensure_parent(out)?;
    let tmp = durable::temp_sibling(out);
    let io = |e| DatasetError::io(&tmp, e);
    {
        let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
        w.write_all(&json_len.to_le_bytes()).map_err(io)?;
        w.write_all(&json).map_err(io)?;
        for (_, video) in videos {
            for pts in &video.pts_s {
                w.write_all(&pts.to_le_bytes()).map_err(io)?;
            }
            w.write_all(&video.rgb).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
    }
    durable::commit(&tmp, out)?;
    let bytes = std::fs::metadata(out).map_err(|e| DatasetError::io(out, e))?.len();
    let frames = videos.iter().map(|(_, v)| v.len()).sum();
    Ok(FrameCacheSummary { path: out.to_path_buf(), videos: videos.len(), frames, bytes })
}

/// Reads the frame cache `path` of the dataset at `root`, which reads `expected` video files
/// (absolute paths) through `cameras` at `fps`. Refuses a cache written for other files or
/// cameras, or whose video files changed since (size or content hash), naming the difference.
pub(crate) fn read(
    path: &Path,
    root: &Path,
    fps: f64,
    cameras: &[String],
    expected: &[PathBuf],
) -> Result<HashMap<PathBuf, DecodedVideo>> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| DatasetError::io(path, e))?.len();
    let mut r = BufReader::new(file);
    let io = |e| DatasetError::io(path, e);
    let bad = |reason: String| DatasetError::invalid(path, format!("not a usable frame cache: {reason}"));
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| bad("shorter than its header".into()))?;
    if &magic != MAGIC {
        return Err(bad("wrong magic bytes".into()));
    }
    let version = read_u32(&mut r).map_err(|_| bad("shorter than its header".into()))?;
    if version != FORMAT_VERSION {
        return Err(bad(format!("format version {version}, this build reads {FORMAT_VERSION}")));
    }
    let json_len = read_u32(&mut r).map_err(|_| bad("shorter than its header".into()))?;
    if json_len > MAX_HEADER_BYTES {
        return Err(bad(format!("header of {json_len} bytes")));
    }
    let mut json = vec![0u8; json_len as usize];
    r.read_exact(&mut json).map_err(|_| bad("shorter than its header".into()))?;
    let header: CacheHeader = serde_json::from_slice(&json).map_err(|e| bad(format!("header: {e}")))?;
    check_header(&header, path, root, fps, cameras, expected)?;
    let mut payload: u64 = 0;
    for v in &header.videos {
        // Per frame: its pts (8 bytes) and its pixels.
        let frame_bytes = v.width.checked_mul(v.height).and_then(|px| px.checked_mul(3)).and_then(|b| b.checked_add(8));
        let video_bytes = frame_bytes.and_then(|b| b.checked_mul(v.frames)).and_then(|b| u64::try_from(b).ok());
        payload = video_bytes
            .and_then(|b| payload.checked_add(b))
            .ok_or_else(|| bad(format!("frame sizes of {} overflow", v.file)))?;
    }
    let expected_bytes = 16 + u64::from(json_len) + payload;
    if file_bytes != expected_bytes {
        return Err(bad(format!("{file_bytes} bytes where its header describes {expected_bytes} (truncated?)")));
    }
    let mut out = HashMap::new();
    for v in &header.videos {
        let mut pts = vec![0u8; v.frames * 8];
        r.read_exact(&mut pts).map_err(io)?;
        let pts_s = pts.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect();
        let mut rgb = vec![0u8; v.frames * v.width * v.height * 3];
        r.read_exact(&mut rgb).map_err(io)?;
        out.insert(root.join(&v.file), DecodedVideo { width: v.width, height: v.height, pts_s, rgb });
    }
    Ok(out)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Whether the header describes this dataset's video files as they are now.
fn check_header(
    header: &CacheHeader,
    path: &Path,
    root: &Path,
    fps: f64,
    cameras: &[String],
    expected: &[PathBuf],
) -> Result<()> {
    let stale = |reason: String| {
        DatasetError::invalid(path, format!("stale frame cache: {reason}; write it again from the dataset"))
    };
    if header.fps != fps {
        return Err(stale(format!("written at {} fps, the dataset has {fps}", header.fps)));
    }
    if header.cameras != cameras {
        return Err(stale(format!("cameras {:?}, the dataset has {cameras:?}", header.cameras)));
    }
    let names = expected.iter().map(|f| relative_name(root, f)).collect::<Result<Vec<_>>>()?;
    let cached: Vec<&str> = header.videos.iter().map(|v| v.file.as_str()).collect();
    if cached != names {
        return Err(stale(format!("video files {cached:?}, the dataset reads {names:?}")));
    }
    for (v, file) in header.videos.iter().zip(expected) {
        let bytes = std::fs::metadata(file).map_err(|e| DatasetError::io(file, e))?.len();
        if bytes != v.video_bytes {
            return Err(stale(format!("{} is {bytes} bytes, it was {} when cached", v.file, v.video_bytes)));
        }
        let hash = format!("{:016x}", content_hash(file)?);
        if hash != v.video_hash {
            return Err(stale(format!(
                "{} changed since it was cached (content hash {hash}, was {})",
                v.file, v.video_hash
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The format alone, on synthetic frames: these run in builds with and without `video`.

    use super::*;

    const CAMERA: &str = "observation.images.cam";

    /// A dataset root with one "video file" (any bytes: only its size and hash are read here)
    /// and three 4×2 frames decoded from it.
    fn fixture(dir: &Path) -> (PathBuf, DecodedVideo) {
        let file = dir.join("videos").join(CAMERA).join("chunk-000/file-000.mp4");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, (0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).expect("write");
        let rgb = (0..3 * 4 * 2 * 3).map(|i| (i * 7 % 256) as u8).collect();
        (file, DecodedVideo { width: 4, height: 2, pts_s: vec![0.0, 0.1, 0.2], rgb })
    }

    fn cameras() -> Vec<String> {
        vec![CAMERA.to_string()]
    }

    #[test]
    fn frames_and_times_read_back_as_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (file, video) = fixture(tmp.path());
        let out = default_path(tmp.path());
        let s = write(&out, tmp.path(), 10.0, &cameras(), &[(&file, &video)]).expect("write");
        assert_eq!((s.videos, s.frames), (1, 3));
        let back = read(&out, tmp.path(), 10.0, &cameras(), std::slice::from_ref(&file)).expect("read");
        let got = back.get(&file).expect("the video file's frames");
        assert_eq!((got.width, got.height, &got.pts_s, &got.rgb), (4, 2, &video.pts_s, &video.rgb));
    }

    #[test]
    fn a_changed_video_file_another_camera_set_or_foreign_bytes_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (file, video) = fixture(tmp.path());
        let out = default_path(tmp.path());
        write(&out, tmp.path(), 10.0, &cameras(), &[(&file, &video)]).expect("write");
        let expected = std::slice::from_ref(&file);

        let other = vec!["observation.images.wrist".to_string()];
        let err = read(&out, tmp.path(), 10.0, &other, expected).expect_err("other cameras");
        assert!(err.to_string().contains("stale frame cache: cameras"), "{err}");

        // Same size, one byte different: only the content hash tells.
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[500] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        let err = read(&out, tmp.path(), 10.0, &cameras(), expected).expect_err("a changed video");
        assert!(err.to_string().contains("file-000.mp4 changed since it was cached"), "{err}");

        let foreign = tmp.path().join("foreign.bin");
        std::fs::write(&foreign, b"PK\x03\x04 not a frame cache").expect("write");
        let err = read(&foreign, tmp.path(), 10.0, &cameras(), expected).expect_err("foreign bytes");
        assert!(err.to_string().contains("wrong magic bytes"), "{err}");
    }
}
