//! Video decoding: one core, [`FrameDecoder`], under every reader path: whole-file decodes
//! ([`decode_each`], [`decode_all`]: the frame cache and so the training loader, `video ingest`,
//! resume statistics) and keyframe seeks ([`KeyframeSeeker`]: `export-video`, cache-less reads).
//!
//! Frames come in presentation order with their presentation time (`pts` × the stream's time
//! base, s). Streams with B-frames (x264's defaults, LeRobot's `-g 2 -crf 30`) hold the last
//! frames back in the decoder: at the end of the stream the decoder is drained, and a drained
//! frame without a timestamp gets the previous one plus one frame period (from the stream's frame
//! rate). Any codec FFmpeg decodes works: H.264, AV1 (libdav1d), HEVC, VP9 …

use std::path::{Path, PathBuf};

use video_rs::ffmpeg::{self, codec, format, frame, media, software::scaling};

use crate::error::{DatasetError, Result};

/// Frame period assumed when neither the stream nor the frames tell one, s.
const FALLBACK_FRAME_PERIOD_S: f64 = 1.0 / 30.0;
/// Unreadable packets skipped in a row before a read counts as failed.
const MAX_SKIPPED_PACKETS: usize = 64;
/// How far before a target a retried seek goes when the first one landed after it, s.
const SEEK_BACKOFF_S: f64 = 1.0;

/// A decoded frame: presentation time and interleaved RGB8 pixels (row-major, contiguous).
#[derive(Clone, Copy, Debug)]
pub struct DecodedFrame<'a> {
    /// Presentation time, s.
    pub pts_s: f64,
    /// `width*height*3` bytes.
    pub rgb: &'a [u8],
}

/// Sequential decoder of a file's best video stream, with keyframe seeks.
pub struct FrameDecoder {
    path: PathBuf,
    input: format::context::Input,
    stream: usize,
    decoder: codec::decoder::Video,
    /// Converts decoded pictures to RGB8 at `width`×`height`; rebuilt if the input changes.
    scaler: Option<scaling::Context>,
    width: usize,
    height: usize,
    /// Seconds per tick of the stream's time base.
    tick_s: f64,
    /// Frame period from the stream's frame rate, s (`None` when the stream does not say).
    stream_period_s: Option<f64>,
    /// Spacing of the last two frames with their own timestamps, s.
    observed_period_s: Option<f64>,
    /// Presentation time of the last frame returned, s (`None` after open or a seek).
    last_pts_s: Option<f64>,
    /// The demuxer is exhausted and the decoder was told so: only held-back frames remain.
    draining: bool,
    rgb: Vec<u8>,
}

impl FrameDecoder {
    /// Opens the best video stream of `path`.
    pub fn open(path: &Path) -> Result<FrameDecoder> {
        crate::video::init();
        if !path.exists() {
            return Err(DatasetError::video(path, "file not found"));
        }
        let err = |e: ffmpeg::Error| DatasetError::video(path, e);
        let input = format::input(&path).map_err(err)?;
        let st =
            input.streams().best(media::Type::Video).ok_or_else(|| DatasetError::video(path, "no video stream"))?;
        let stream = st.index();
        let tb = st.time_base();
        let rate = [st.avg_frame_rate(), st.rate()].into_iter().find(|r| r.numerator() > 0 && r.denominator() > 0);
        let mut decoder = codec::Context::from_parameters(st.parameters()).map_err(err)?.decoder();
        decoder.set_packet_time_base(tb);
        let decoder = decoder.video().map_err(err)?;
        let (width, height) = (decoder.width() as usize, decoder.height() as usize);
        if width == 0 || height == 0 {
            return Err(DatasetError::video(path, "the video stream has no frame size (missing codec parameters)"));
        }
        Ok(FrameDecoder {
            path: path.to_path_buf(),
            input,
            stream,
            decoder,
            scaler: None,
            width,
            height,
            tick_s: f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)),
            stream_period_s: rate.map(|r| f64::from(r.denominator()) / f64::from(r.numerator())),
            observed_period_s: None,
            last_pts_s: None,
            draining: false,
            rgb: Vec::new(),
        })
    }

    /// Frame width and height, px (every frame is converted to this size).
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Time between frames, s: the stream's frame rate, else the spacing seen so far.
    pub fn frame_period_s(&self) -> f64 {
        self.stream_period_s.or(self.observed_period_s).unwrap_or(FALLBACK_FRAME_PERIOD_S)
    }

    /// Presentation time of the last frame returned since open or the last seek, s.
    pub fn last_pts_s(&self) -> Option<f64> {
        self.last_pts_s
    }

    /// The next frame in presentation order, `None` after the last one (held-back frames
    /// included). Errors name the file.
    pub fn next_frame(&mut self) -> Result<Option<DecodedFrame<'_>>> {
        let mut picture = frame::Video::empty();
        let mut skipped = 0;
        loop {
            match self.decoder.receive_frame(&mut picture) {
                Ok(()) => break,
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN && !self.draining => {}
                Err(e) => return Err(self.error(e)),
            }
            let mut packet = codec::packet::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => {
                    self.decoder.send_packet(&packet).map_err(|e| self.error(e))?;
                    skipped = 0;
                }
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => {
                    self.decoder.send_eof().map_err(|e| self.error(e))?;
                    self.draining = true;
                }
                // The demuxer resyncs past a corrupt packet.
                Err(ffmpeg::Error::InvalidData) if skipped < MAX_SKIPPED_PACKETS => skipped += 1,
                Err(e) => return Err(self.error(e)),
            }
        }
        let pts_s = self.presentation_time_s(&picture);
        self.convert(&picture)?;
        Ok(Some(DecodedFrame { pts_s, rgb: &self.rgb }))
    }

    /// Moves to the last keyframe at or before `t_s` (the file's start when there is none); the
    /// next frame is that keyframe or, in files whose keyframes are indexed by decode time, one
    /// shortly after it.
    pub fn seek_keyframe_before(&mut self, t_s: f64) -> Result<()> {
        let target_us = (t_s * 1e6).floor() as i64;
        // max_ts = the target: the demuxer may not land after it.
        let landed = if t_s > 0.0 { self.input.seek(target_us, ..target_us) } else { Err(ffmpeg::Error::Eof) };
        if landed.is_err() {
            self.input.seek(i64::MIN, ..).map_err(|e| self.error(e))?;
        }
        self.decoder.flush();
        self.draining = false;
        self.last_pts_s = None;
        Ok(())
    }

    /// The frame's own pts (else FFmpeg's best-effort guess), or the previous frame's plus one
    /// period when it has none or it does not advance (frames drained at the end of a stream).
    fn presentation_time_s(&mut self, picture: &frame::Video) -> f64 {
        let own = picture.pts().or(picture.timestamp()).map(|p| p as f64 * self.tick_s);
        let t = match (own, self.last_pts_s) {
            (Some(t), Some(last)) if t > last => {
                self.observed_period_s = Some(t - last);
                t
            }
            (Some(t), None) => t,
            (_, Some(last)) => last + self.frame_period_s(),
            (None, None) => 0.0,
        };
        self.last_pts_s = Some(t);
        t
    }

    /// Converts `picture` to RGB8 at the stream's size into `self.rgb`.
    fn convert(&mut self, picture: &frame::Video) -> Result<()> {
        let input_changed = self.scaler.as_ref().is_none_or(|s| {
            let i = s.input();
            (i.format, i.width, i.height) != (picture.format(), picture.width(), picture.height())
        });
        if input_changed {
            let scaler = scaling::Context::get(
                picture.format(),
                picture.width(),
                picture.height(),
                format::Pixel::RGB24,
                self.width as u32,
                self.height as u32,
                scaling::Flags::AREA,
            )
            .map_err(|e| self.error(e))?;
            self.scaler = Some(scaler);
        }
        let mut rgb_picture = frame::Video::empty();
        if let Some(scaler) = self.scaler.as_mut() {
            scaler.run(picture, &mut rgb_picture).map_err(|e| DatasetError::video(&self.path, e))?;
        }
        let row = self.width * 3;
        let stride = rgb_picture.stride(0);
        let data = rgb_picture.data(0);
        self.rgb.clear();
        for y in 0..self.height {
            let line = data
                .get(y * stride..y * stride + row)
                .ok_or_else(|| DatasetError::video(&self.path, "converted frame is smaller than the stream"))?;
            self.rgb.extend_from_slice(line);
        }
        Ok(())
    }

    fn error(&self, e: impl ToString) -> DatasetError {
        DatasetError::video(&self.path, e)
    }
}

/// Decodes `path` frame by frame in presentation order, calling `on_frame(pts_s, rgb, width,
/// height)` for each (RGB8, row-major, contiguous); stops early when it returns `false`. Returns
/// the number of frames decoded. Errors name the file; a file with no decodable frame is an error.
/// With `keep_partial`, a read error after some good frames (a truncated file) ends the decode
/// with those frames and a warning instead of an error.
pub fn decode_each(
    path: &Path,
    keep_partial: bool,
    mut on_frame: impl FnMut(f64, &[u8], usize, usize) -> bool,
) -> Result<usize> {
    let mut decoder = FrameDecoder::open(path)?;
    let (w, h) = decoder.size();
    let mut n = 0;
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => {
                n += 1;
                if !on_frame(f.pts_s, f.rgb, w, h) {
                    break;
                }
            }
            Ok(None) => break,
            // A truncated file ends in a read error after its good frames: keep those.
            Err(e) if keep_partial && n > 0 => {
                tracing::warn!(file = %path.display(), frames = n, "decoding stopped early: {e}");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if n == 0 {
        return Err(DatasetError::video(path, "no decodable frames (truncated or empty file?)"));
    }
    Ok(n)
}

/// Decodes every frame of `path` (sequentially, once).
pub fn decode_all(path: &Path) -> Result<crate::frames::DecodedVideo> {
    let mut out = crate::frames::DecodedVideo::default();
    decode_each(path, false, |t, rgb, w, h| {
        (out.width, out.height) = (w, h);
        out.pts_s.push(t);
        out.rgb.extend_from_slice(rgb);
        true
    })?;
    Ok(out)
}

/// Random access to frames by seeking to the keyframe before a timestamp and decoding forward.
pub struct KeyframeSeeker {
    decoder: FrameDecoder,
    frame_period_s: f64,
}

impl KeyframeSeeker {
    /// Opens `path`; `fps` tells how far apart frames are.
    pub fn open(path: &Path, fps: f64) -> Result<KeyframeSeeker> {
        Ok(KeyframeSeeker { decoder: FrameDecoder::open(path)?, frame_period_s: 1.0 / fps })
    }

    /// The frame at `t_s` (nearest pts within half a frame period), RGB8.
    pub fn frame_at(&mut self, t_s: f64) -> Result<Vec<u8>> {
        let half = 0.5 * self.frame_period_s;
        // Decoding forward is cheaper than seeking when the target is just ahead.
        let ahead = self.decoder.last_pts_s().is_some_and(|p| t_s > p && t_s - p < 4.0 * self.frame_period_s);
        // Where the last seek went (`None`: decoding on from an earlier read).
        let mut sought_s = None;
        if !ahead {
            sought_s = Some(t_s - half);
            self.decoder.seek_keyframe_before(t_s - half)?;
        }
        loop {
            let first_after_seek = sought_s.is_some() && self.decoder.last_pts_s().is_none();
            let Some(f) = self.decoder.next_frame()? else {
                let last = self.decoder.last_pts_s().map_or(String::new(), |p| format!(", last frame at {p:.4} s"));
                return Err(self.decoder.error(format!("no frame at {t_s:.4} s (past the end{last})")));
            };
            if (f.pts_s - t_s).abs() <= half {
                return Ok(f.rgb.to_vec());
            }
            if f.pts_s > t_s + half {
                let pts_s = f.pts_s;
                // Keyframes indexed by decode time (B-frames) can put the seek after the target:
                // go back further, down to the start of the file.
                match sought_s {
                    Some(s) if first_after_seek && s > 0.0 => {
                        let back_s = if s - SEEK_BACKOFF_S > 0.0 { s - SEEK_BACKOFF_S } else { 0.0 };
                        sought_s = Some(back_s);
                        self.decoder.seek_keyframe_before(back_s)?;
                    }
                    _ => {
                        return Err(self.decoder.error(format!("no frame at {t_s:.4} s (next frame at {pts_s:.4} s)")))
                    }
                }
            }
        }
    }
}
