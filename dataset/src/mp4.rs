//! MP4 (ISO base media file) facts read from box headers: how many frames a file's video track
//! holds and how long it lasts. Nothing is decoded and FFmpeg is not needed, so opening a dataset
//! can check its video spans cheaply (only `moov` is read into memory, never `mdat`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{DatasetError, Result};

/// The video track of an MP4 file, from its sample tables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoTrack {
    /// Frames (samples) in the track.
    pub frames: u64,
    /// Sum of the frames' durations, s (the end of the last frame on the track's timeline).
    pub duration_s: f64,
}

/// `moov` larger than this is taken for a corrupt size field, bytes.
const MAX_MOOV_BYTES: u64 = 512 << 20;

/// A box: its four-character type and its payload.
type Mp4Box<'a> = ([u8; 4], &'a [u8]);

/// The video track of `path`. `Ok(None)` when the file is not an MP4 (no leading `ftyp` box,
/// e.g. Matroska) or keeps its samples outside `moov` (fragmented MP4): nothing to tell then.
/// An MP4 without a complete `moov` (truncated, or still being written) is an error naming it.
pub fn probe_video_track(path: &Path) -> Result<Option<VideoTrack>> {
    let err = |reason: &str| DatasetError::video(path, reason);
    let mut file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let len = file.metadata().map_err(|e| DatasetError::io(path, e))?.len();
    let mut pos = 0u64;
    let mut moov = None;
    while pos + 8 <= len {
        file.seek(SeekFrom::Start(pos)).map_err(|e| DatasetError::io(path, e))?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).map_err(|e| DatasetError::io(path, e))?;
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        if pos == 0 && &kind != b"ftyp" {
            return Ok(None);
        }
        let (size, header) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
            0 => (len - pos, 8),
            1 => {
                file.read_exact(&mut head[8..16]).map_err(|e| DatasetError::io(path, e))?;
                (u64::from_be_bytes([head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15]]), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header {
            return Err(err(&format!("malformed MP4: box {:?} at byte {pos} has size {size}", fourcc(&kind))));
        }
        if pos + size > len {
            break;
        }
        if &kind == b"moov" {
            if size - header > MAX_MOOV_BYTES {
                return Err(err(&format!("malformed MP4: moov box of {size} bytes")));
            }
            let mut payload = vec![0u8; (size - header) as usize];
            file.read_exact(&mut payload).map_err(|e| DatasetError::io(path, e))?;
            moov = Some(payload);
            break;
        }
        pos += size;
    }
    let moov = moov.ok_or_else(|| err("MP4 without a complete moov box (truncated file?)"))?;
    video_track(&moov).map_err(|reason| err(&format!("malformed MP4: {reason}")))
}

fn fourcc(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The boxes inside a container box's payload.
fn children(payload: &[u8]) -> std::result::Result<Vec<Mp4Box<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = payload;
    while rest.len() >= 8 {
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (size, header) = match u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) {
            0 => (rest.len(), 8),
            1 if rest.len() >= 16 => {
                let big =
                    u64::from_be_bytes([rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15]]);
                (usize::try_from(big).map_err(|_| format!("box {} too large", fourcc(&kind)))?, 16)
            }
            n => (n as usize, 8),
        };
        if size < header || size > rest.len() {
            return Err(format!("box {} has size {size} with {} bytes left", fourcc(&kind), rest.len()));
        }
        out.push((kind, &rest[header..size]));
        rest = &rest[size..];
    }
    Ok(out)
}

fn child<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, p)| *p)
}

fn be_u32(b: &[u8], at: usize) -> std::result::Result<u64, String> {
    b.get(at..at + 4)
        .map(|s| u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])))
        .ok_or_else(|| format!("box too short for a field at byte {at}"))
}

/// The first track of `moov` whose handler is `vide`.
fn video_track(moov: &[u8]) -> std::result::Result<Option<VideoTrack>, String> {
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let trak = children(trak)?;
        let Some(mdia) = child(&trak, b"mdia") else { continue };
        let mdia = children(mdia)?;
        // hdlr: version/flags, pre_defined, then the handler type.
        if child(&mdia, b"hdlr").and_then(|h| h.get(8..12)) != Some(b"vide".as_slice()) {
            continue;
        }
        let mdhd = child(&mdia, b"mdhd").ok_or("video track without mdhd")?;
        // mdhd: version 0 has 32-bit creation/modification times, version 1 64-bit ones.
        let timescale = be_u32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
        if timescale == 0 {
            return Err("video track with timescale 0".into());
        }
        let minf = children(child(&mdia, b"minf").ok_or("video track without minf")?)?;
        let stbl = children(child(&minf, b"stbl").ok_or("video track without stbl")?)?;
        let stts = child(&stbl, b"stts").ok_or("video track without stts")?;
        // stts: version/flags, entry count, then (sample count, sample delta) pairs.
        let entries = be_u32(stts, 4)? as usize;
        let (mut frames, mut ticks) = (0u64, 0u64);
        for i in 0..entries {
            let count = be_u32(stts, 8 + 8 * i)?;
            frames += count;
            ticks += count * be_u32(stts, 12 + 8 * i)?;
        }
        if frames == 0 {
            // Fragmented MP4: the samples are described in moof boxes.
            return Ok(None);
        }
        return Ok(Some(VideoTrack { frames, duration_s: ticks as f64 / timescale as f64 }));
    }
    Err("no video track".into())
}
