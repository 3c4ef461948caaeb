//! Ingest: video files (anything FFmpeg decodes) and the camera streams of LeRobot datasets into
//! a [`FrameStore`](crate::store::FrameStore), resampled to a fixed fps, resized and centre-cropped.
//!
//! Files decode in parallel (one per worker thread); episodes are written in input order, so the
//! same inputs give the same store. A file that does not decode is skipped with a warning naming
//! it and recorded in the manifest; a truncated file keeps the frames before the damage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::image_ops::resize_center_crop;
use crate::resample::FpsSampler;
use crate::store::{io_error, FrameStoreWriter, Manifest, StoreError};

/// Ingest settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IngestConfig {
    /// Output frame side, px.
    pub size: usize,
    /// Output frames per second.
    pub fps: f64,
    /// Decoding threads.
    pub threads: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { size: 128, fps: 5.0, threads: std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }
}

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestReport {
    /// Inputs that became episodes.
    pub episodes: usize,
    /// Inputs skipped.
    pub skipped: usize,
    /// Frames decoded (at the source rate).
    pub decoded_frames: u64,
    /// Frames written (at the target rate).
    pub written_frames: u64,
    /// Wall time, s.
    pub seconds: f64,
}

impl IngestReport {
    /// Decoded frames per second of wall time.
    pub fn decode_fps(&self) -> f64 {
        self.decoded_frames as f64 / self.seconds.max(1e-9)
    }
}

/// Expands `spec` into files: a directory (recursively, sorted), a glob whose last component has
/// `*`/`?` wildcards (`videos/*.mp4`), or a single file.
pub fn collect_inputs(spec: &str) -> Result<Vec<PathBuf>, StoreError> {
    let path = Path::new(spec);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.contains('*') || name.contains('?') {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| glob_match(name, n)))
            .collect();
        out.sort();
        return Ok(out);
    }
    if path.is_dir() {
        let mut out = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(io_error(&d))? {
                let p = e.map_err(io_error(&d))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        return Ok(out);
    }
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    Err(StoreError::Invalid { path: path.into(), reason: "no such file, directory or matching files".into() })
}

/// `*` and `?` matching of a whole file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Decodes one file into resampled, resized frames; returns (frames, decoded count).
pub fn decode_file(path: &Path, cfg: &IngestConfig) -> Result<(Vec<u8>, u64), StoreError> {
    let mut sampler = FpsSampler::new(cfg.fps);
    let mut out = Vec::new();
    let decoded = dataset::video::decode_each(path, true, |t, rgb, w, h| {
        let n = sampler.take(t);
        if n > 0 {
            let frame = resize_center_crop(rgb, w, h, cfg.size);
            for _ in 0..n {
                out.extend_from_slice(&frame);
            }
        }
        true
    })?;
    Ok((out, decoded as u64))
}

/// Ingests video files into a new store at `out`. `progress(done, total)` is called after each
/// file.
pub fn ingest_videos(
    files: &[PathBuf],
    out: &Path,
    cfg: &IngestConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Manifest, IngestReport), StoreError> {
    let t0 = Instant::now();
    let mut writer = FrameStoreWriter::create(out, cfg.size, cfg.fps)?;
    let mut report = IngestReport::default();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Result<(Vec<u8>, u64), StoreError>)>();
    let threads = cfg.threads.clamp(1, files.len().max(1));
    std::thread::scope(|s| -> Result<(), StoreError> {
        for _ in 0..threads {
            let (tx, next, done) = (tx.clone(), &next, &done);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let r = decode_file(f, cfg);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, files.len());
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Write in input order: hold results that finish early.
        let mut pending = std::collections::BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                let source = files[want].display().to_string();
                match r {
                    Ok((frames, decoded)) if !frames.is_empty() => {
                        report.decoded_frames += decoded;
                        report.written_frames += (frames.len() / (cfg.size * cfg.size * 3)) as u64;
                        report.episodes += 1;
                        writer.add_episode(&source, &frames)?;
                    }
                    Ok(_) => {
                        report.skipped += 1;
                        writer.skip(&source, "no frames");
                    }
                    Err(e) => {
                        tracing::warn!(file = %source, "skipped: {e}");
                        report.skipped += 1;
                        writer.skip(&source, &e.to_string());
                    }
                }
                want += 1;
            }
        }
        Ok(())
    })?;
    let manifest = writer.finish()?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok((manifest, report))
}

/// Ingests every camera of every episode of the LeRobot datasets at `roots` (actions dropped)
/// into a new store at `out`. Episodes are named `ROOT#CAMERA#EPISODE`. `progress(done,
/// total)` after each dataset.
pub fn ingest_dataset(
    roots: &[PathBuf],
    out: &Path,
    cfg: &IngestConfig,
    progress: &dyn Fn(usize, usize),
) -> Result<(Manifest, IngestReport), StoreError> {
    let t0 = Instant::now();
    let mut writer = FrameStoreWriter::create(out, cfg.size, cfg.fps)?;
    let mut report = IngestReport::default();
    for (k, root) in roots.iter().enumerate() {
        ingest_one_dataset(root, &mut writer, cfg, &mut report)?;
        progress(k + 1, roots.len());
    }
    let manifest = writer.finish()?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok((manifest, report))
}

fn ingest_one_dataset(
    root: &Path,
    writer: &mut FrameStoreWriter,
    cfg: &IngestConfig,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let mut ds = dataset::Dataset::open(root)?;
    let keys = ds.camera_keys();
    if keys.is_empty() {
        return Err(StoreError::Invalid { path: root.into(), reason: "the dataset has no camera streams".into() });
    }
    ds.load_frame_cache(cfg.threads.max(1))?;
    // LeRobot video features are shaped [height, width, channels].
    let side = |key: &str| -> (usize, usize) {
        let shape = ds.info().features.get(key).map(|f| f.shape.clone()).unwrap_or_default();
        (shape.get(1).copied().unwrap_or(0) as usize, shape.first().copied().unwrap_or(0) as usize)
    };
    for key in &keys {
        let (w, h) = side(key);
        for (e, ep) in ds.episodes().to_vec().iter().enumerate() {
            let mut sampler = FpsSampler::new(cfg.fps);
            let mut frames = Vec::new();
            for i in ep.from_index as usize..ep.to_index as usize {
                report.decoded_frames += 1;
                let n = sampler.take((i - ep.from_index as usize) as f64 / ds.fps());
                if n == 0 {
                    continue;
                }
                let img = ds.image(i, key)?;
                let (w, h) = if w * h * 3 == img.len() { (w, h) } else { square_side(img.len()) };
                let frame = resize_center_crop(img, w, h, cfg.size);
                for _ in 0..n {
                    frames.extend_from_slice(&frame);
                }
            }
            if frames.is_empty() {
                continue;
            }
            report.written_frames += (frames.len() / (cfg.size * cfg.size * 3)) as u64;
            report.episodes += 1;
            writer.add_episode(&format!("{}#{key}#{e}", root.display()), &frames)?;
        }
    }
    Ok(())
}

/// Side of a square RGB image of `bytes` bytes.
fn square_side(bytes: usize) -> (usize, usize) {
    let s = ((bytes / 3) as f64).sqrt().round() as usize;
    (s, s)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.mp4", "a.mp4"));
        assert!(!glob_match("*.mp4", "a.mkv"));
        assert!(glob_match("ep_??.*", "ep_01.webm"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
