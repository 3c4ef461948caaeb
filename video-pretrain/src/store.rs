//! The frame store: episodes of fixed-size RGB8 frames for pre-training on action-free video.
//!
//! Layout of a store folder:
//! - `frames.u8`: every frame back to back, `size × size × 3` bytes each (row-major RGB), the
//!   episodes one after another. A plain array: memory-map it and index.
//! - `manifest.json`: format and version, frame size, fps, and per episode its source (a video
//!   file, or a dataset camera and episode), first frame and length; plus the files skipped and why.
//!
//! [`FrameStoreWriter`] appends episodes and writes the manifest last (atomically), so a store with
//! a manifest is complete. [`FrameStore`] memory-maps a finished store.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Manifest `format` value.
pub const FORMAT: &str = "armstack-frames";
/// Manifest version.
pub const VERSION: u32 = 1;
/// Frame file name.
pub const FRAMES_FILE: &str = "frames.u8";
/// Manifest file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Errors of the frame store and ingest.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The store is malformed.
    #[error("{path}: {reason}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
}

/// Maps an I/O error to [`StoreError::Io`] on `path`.
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// One episode in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeEntry {
    /// Where the frames came from: a video path, or `DATASET#camera_key#episode`.
    pub source: String,
    /// Index of the first frame in `frames.u8`.
    pub start: u64,
    /// Number of frames.
    pub len: u64,
}

/// A file that was not ingested.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file.
    pub source: String,
    /// Why (the decoder's message).
    pub reason: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Frame width and height, px.
    pub size: usize,
    /// Frames per second of every episode.
    pub fps: f64,
    /// Total frames.
    pub frames: u64,
    /// Episodes in file order.
    pub episodes: Vec<EpisodeEntry>,
    /// Inputs that were skipped.
    #[serde(default)]
    pub skipped: Vec<SkippedFile>,
}

impl Manifest {
    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.size * self.size * 3
    }
}

/// Writes a store.
pub struct FrameStoreWriter {
    dir: PathBuf,
    out: BufWriter<File>,
    manifest: Manifest,
}

impl FrameStoreWriter {
    /// Creates `dir` (which must be empty or absent) for `size`-pixel frames at `fps`.
    pub fn create(dir: &Path, size: usize, fps: f64) -> Result<FrameStoreWriter, StoreError> {
        if dir.exists() && std::fs::read_dir(dir).map_err(io_error(dir))?.next().is_some() {
            return Err(StoreError::Invalid { path: dir.into(), reason: "exists and is not empty".into() });
        }
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(FRAMES_FILE);
        let out = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_error(&path))?);
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            size,
            fps,
            frames: 0,
            episodes: Vec::new(),
            skipped: Vec::new(),
        };
        Ok(FrameStoreWriter { dir: dir.into(), out, manifest })
    }

    /// Appends an episode of frames (`len × size × size × 3` bytes).
    pub fn add_episode(&mut self, source: &str, frames: &[u8]) -> Result<(), StoreError> {
        let fb = self.manifest.frame_bytes();
        if frames.is_empty() || !frames.len().is_multiple_of(fb) {
            return Err(StoreError::Invalid {
                path: self.dir.clone(),
                reason: format!("episode {source}: {} bytes is not a whole number of {fb}-byte frames", frames.len()),
            });
        }
        let path = self.dir.join(FRAMES_FILE);
        self.out.write_all(frames).map_err(io_error(&path))?;
        let len = (frames.len() / fb) as u64;
        self.manifest.episodes.push(EpisodeEntry { source: source.into(), start: self.manifest.frames, len });
        self.manifest.frames += len;
        Ok(())
    }

    /// Records a skipped input.
    pub fn skip(&mut self, source: &str, reason: &str) {
        self.manifest.skipped.push(SkippedFile { source: source.into(), reason: reason.into() });
    }

    /// Flushes the frames and writes the manifest (atomically, last).
    pub fn finish(mut self) -> Result<Manifest, StoreError> {
        let frames = self.dir.join(FRAMES_FILE);
        self.out.flush().map_err(io_error(&frames))?;
        self.out.get_ref().sync_all().map_err(io_error(&frames))?;
        let tmp = self.dir.join("manifest.json.tmp");
        let text = serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| StoreError::Invalid { path: tmp.clone(), reason: e.to_string() })?;
        std::fs::write(&tmp, text).map_err(io_error(&tmp))?;
        let path = self.dir.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        Ok(self.manifest)
    }
}

/// A finished store, memory-mapped.
pub struct FrameStore {
    /// The manifest.
    pub manifest: Manifest,
    map: memmap2::Mmap,
}

impl FrameStore {
    /// Opens the store in `dir`, checking the manifest against the frame file.
    pub fn open(dir: &Path) -> Result<FrameStore, StoreError> {
        let mpath = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&mpath).map_err(io_error(&mpath))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| StoreError::Invalid { path: mpath.clone(), reason: e.to_string() })?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            return Err(StoreError::Invalid {
                path: mpath,
                reason: format!("format {} v{}, expected {FORMAT} v{VERSION}", manifest.format, manifest.version),
            });
        }
        let fpath = dir.join(FRAMES_FILE);
        let file = File::open(&fpath).map_err(io_error(&fpath))?;
        // SAFETY: the store is written once and only read afterwards; a concurrent writer
        // truncating the file is outside the contract (documented in the module).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(&fpath))?;
        let want = manifest.frames as usize * manifest.frame_bytes();
        if map.len() != want {
            return Err(StoreError::Invalid {
                path: fpath,
                reason: format!("{} bytes, the manifest says {} frames = {want} bytes", map.len(), manifest.frames),
            });
        }
        let mut next = 0;
        for e in &manifest.episodes {
            if e.start != next || e.len == 0 {
                return Err(StoreError::Invalid {
                    path: mpath,
                    reason: format!("episode {} is out of place", e.source),
                });
            }
            next += e.len;
        }
        Ok(FrameStore { manifest, map })
    }

    /// Total frames.
    pub fn len(&self) -> usize {
        self.manifest.frames as usize
    }

    /// Whether the store has no frames.
    pub fn is_empty(&self) -> bool {
        self.manifest.frames == 0
    }

    /// Frame `i` (global index) as RGB8.
    pub fn frame(&self, i: usize) -> &[u8] {
        let fb = self.manifest.frame_bytes();
        &self.map[i * fb..(i + 1) * fb]
    }

    /// Episode `e`'s frames, back to back.
    pub fn episode(&self, e: usize) -> &[u8] {
        let fb = self.manifest.frame_bytes();
        let ep = &self.manifest.episodes[e];
        &self.map[ep.start as usize * fb..(ep.start + ep.len) as usize * fb]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_map_and_reject_a_short_frame_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let mut w = FrameStoreWriter::create(&dir, 2, 5.0).expect("create");
        w.add_episode("a.mp4", &[1u8; 12 * 3]).expect("3 frames");
        w.add_episode("b.mp4", &[2u8; 12]).expect("1 frame");
        assert!(w.add_episode("c.mp4", &[0u8; 13]).is_err());
        w.skip("c.txt", "not a video");
        let m = w.finish().expect("finish");
        assert_eq!((m.frames, m.episodes[1].start), (4, 3));
        let s = FrameStore::open(&dir).expect("open");
        assert_eq!(s.frame(3), &[2u8; 12]);
        assert_eq!(s.episode(0).len(), 36);
        assert_eq!(s.manifest.skipped[0].source, "c.txt");
        assert!(FrameStoreWriter::create(&dir, 2, 5.0).is_err(), "not empty");
        let f = std::fs::OpenOptions::new().write(true).open(dir.join(FRAMES_FILE)).expect("open");
        f.set_len(40).expect("truncate");
        let e = FrameStore::open(&dir).err().expect("short file").to_string();
        assert!(e.contains("40 bytes") && e.contains("4 frames"), "{e}");
    }
}
