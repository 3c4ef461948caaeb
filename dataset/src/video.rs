//! Video files through video-rs (FFmpeg): per-episode H.264 encoding and appending an episode to
//! a many-episode file by remuxing (no re-encode). Decoding (whole-file frame caches, keyframe
//! seeks) is [`crate::decode`]'s, re-exported here.
//!
//! Timestamps are set by us: frame `k` of an episode has pts `k / fps` s within its segment, and
//! an appended episode is shifted by the file's duration so far (its `from_timestamp`).

use std::path::{Path, PathBuf};

use ndarray::Array3;
use video_rs::encode::Settings;
use video_rs::ffmpeg;
use video_rs::{Encoder, Options, Reader, Time};

use crate::durable;
use crate::error::{DatasetError, Result};

/// H.264 encoder settings for dataset videos.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSettings {
    /// x264 constant rate factor (lower is better quality; 18–23 is visually lossless for renders).
    pub crf: u8,
    /// x264 preset (`ultrafast` … `veryslow`).
    pub preset: String,
    /// A keyframe every this many frames (LeRobot uses 2 so random access decodes ≤ 2 frames).
    pub keyframe_interval: u64,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings { crf: 15, preset: "veryfast".into(), keyframe_interval: 2 }
    }
}

/// Initialises FFmpeg once per process (errors only in its log unless `ARMSTACK_FFMPEG_LOG` is set).
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = video_rs::init() {
            tracing::warn!("FFmpeg initialisation failed: {e}");
        }
        if std::env::var_os("ARMSTACK_FFMPEG_LOG").is_none() {
            ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        }
    });
}

/// Encodes one episode of one camera to its own segment file (H.264, yuv420p, no B-frames so
/// that decode order is presentation order and segments concatenate cleanly). Segments are
/// Matroska (`.mkv`): unlike mp4, it keeps the last frame without an explicit packet duration.
pub struct SegmentEncoder {
    encoder: Encoder,
    path: PathBuf,
    width: usize,
    height: usize,
    fps: f64,
    frames: u64,
}

impl SegmentEncoder {
    /// Creates `path` for `width`×`height` RGB frames at `fps`.
    pub fn create(path: &Path, width: usize, height: usize, fps: f64, settings: &VideoSettings) -> Result<Self> {
        init();
        durable::ensure_parent(path)?;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(DatasetError::video(path, format!("yuv420p needs even sizes, got {width}x{height}")));
        }
        let opts: std::collections::HashMap<String, String> = [
            ("preset", settings.preset.clone()),
            ("crf", settings.crf.to_string()),
            ("bf", "0".to_string()),
            ("tune", "zerolatency".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let s = Settings::preset_h264_custom(width, height, ffmpeg::format::Pixel::YUV420P, Options::from(opts))
            .with_keyframe_interval(settings.keyframe_interval.max(1));
        let encoder = video_rs::EncoderBuilder::new(path, s)
            .with_format("matroska")
            .build()
            .map_err(|e| DatasetError::video(path, e))?;
        Ok(SegmentEncoder { encoder, path: path.to_path_buf(), width, height, fps, frames: 0 })
    }

    /// Encodes the next frame (interleaved RGB8, `width*height*3` bytes).
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        if rgb.len() != self.width * self.height * 3 {
            return Err(DatasetError::video(
                &self.path,
                format!("frame has {} bytes, expected {}x{}x3", rgb.len(), self.width, self.height),
            ));
        }
        let frame = Array3::from_shape_vec((self.height, self.width, 3), rgb.to_vec())
            .map_err(|e| DatasetError::video(&self.path, e))?;
        let ts = Time::from_secs_f64(self.frames as f64 / self.fps);
        self.encoder.encode(&frame, ts).map_err(|e| DatasetError::video(&self.path, e))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes the encoder, writes the trailer and fsyncs. Returns the segment's path.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.encoder.finish().map_err(|e| DatasetError::video(&self.path, e))?;
        drop(self.encoder);
        durable::sync_file(&self.path)?;
        Ok(self.path)
    }
}

/// Appends the segment at `segment` (its timestamps start at 0) to the mp4 file `dst`, shifted
/// to start at `offset_s`, by remuxing packets (no re-encode) into a temporary file that then
/// replaces `dst` atomically; `dst` is created when missing. Every appended packet gets an
/// explicit duration of one frame (`1/fps`): without it the mp4 edit list ends at the last
/// packet's start and players drop the last frame. The segment file is removed afterwards.
pub fn append_segment(dst: &Path, segment: &Path, offset_s: f64, fps: f64) -> Result<()> {
    init();
    durable::ensure_parent(dst)?;
    let tmp = durable::temp_sibling(dst);
    let _ = std::fs::remove_file(&tmp);
    {
        let mut head = if dst.exists() { Some(Reader::new(dst).map_err(vid(dst))?) } else { None };
        let mut tail = Reader::new(segment).map_err(vid(segment))?;
        let tail_stream = tail.best_video_stream_index().map_err(vid(segment))?;
        let (out_stream, stream_info) = match head.as_ref() {
            Some(h) => {
                let s = h.best_video_stream_index().map_err(vid(dst))?;
                (s, h.stream_info(s).map_err(vid(dst))?)
            }
            None => (tail_stream, tail.stream_info(tail_stream).map_err(vid(segment))?),
        };
        let writer = video_rs::WriterBuilder::new(tmp.as_path()).with_format("mp4").build().map_err(vid(&tmp))?;
        let mut muxer = video_rs::MuxerBuilder::new(writer).with_stream(stream_info).map_err(vid(&tmp))?.build();
        let mut out_tb = None;
        if let Some(h) = head.as_mut() {
            loop {
                match h.read(out_stream) {
                    Ok(p) => {
                        out_tb.get_or_insert(p.clone().into_inner_parts().1);
                        muxer.mux(p).map_err(vid(&tmp))?;
                    }
                    Err(video_rs::Error::ReadExhausted) => break,
                    Err(e) => return Err(DatasetError::video(dst, e)),
                }
            }
            if out_tb.is_none() {
                return Err(DatasetError::video(dst, "no video packets (truncated file?)"));
            }
        }
        loop {
            match tail.read(tail_stream) {
                Ok(p) => {
                    let (mut inner, src_tb) = p.into_inner_parts();
                    let tb = *out_tb.get_or_insert(src_tb);
                    let per_s = f64::from(tb.denominator()) / f64::from(tb.numerator());
                    let offset = (offset_s * per_s).round() as i64;
                    inner.rescale_ts(src_tb, tb);
                    // No B-frames: decode order is presentation order, so a missing dts is the pts.
                    let pts = inner.pts().or(inner.dts());
                    inner.set_pts(pts.map(|t| t + offset));
                    inner.set_dts(inner.dts().or(pts).map(|t| t + offset));
                    inner.set_duration((per_s / fps).round() as i64);
                    inner.set_stream(out_stream);
                    muxer.mux(video_rs::Packet::new(inner, tb)).map_err(vid(&tmp))?;
                }
                Err(video_rs::Error::ReadExhausted) => break,
                Err(e) => return Err(DatasetError::video(segment, e)),
            }
        }
        muxer.finish().map_err(vid(&tmp))?;
    }
    durable::sync_file(&tmp)?;
    durable::commit(&tmp, dst)?;
    std::fs::remove_file(segment).map_err(|e| DatasetError::io(segment, e))
}

fn vid(p: &Path) -> impl Fn(video_rs::Error) -> DatasetError + '_ {
    move |e| DatasetError::video(p, e)
}

pub use crate::decode::{decode_all, decode_each, KeyframeSeeker};
pub use crate::frames::DecodedVideo;

/// Peak signal-to-noise ratio of two 8-bit images, dB (∞ when identical).
pub fn psnr_db(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / n;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
