//! Exporting an episode as one mp4: every camera side by side, the instruction as a caption
//! drawn with a built-in 5×7 bitmap font (no font files, no extra crates).

use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};
use crate::reader::Dataset;
use crate::video::{append_segment, SegmentEncoder, VideoSettings};

/// 5×7 glyphs, one byte per row (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '!' => [4, 4, 4, 4, 4, 0, 4],
        '\'' => [4, 4, 8, 0, 0, 0, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        _ => [14, 17, 1, 2, 4, 0, 4],
    }
}

/// Splits `text` into lines of at most `max_chars` characters at spaces.
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().map_or(0, |l| l.chars().count());
        if cur > 0 && cur + 1 + word.chars().count() > max_chars {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

/// An RGB8 caption bar `width` px wide with `text` in white on black; height is even.
pub fn caption_bar(text: &str, width: usize) -> (Vec<u8>, usize) {
    let scale = if width >= 12 * text.chars().count().min(40) + 8 { 2 } else { 1 };
    let cw = 6 * scale;
    let lines = wrap(text, ((width.saturating_sub(8)) / cw).max(1));
    let line_h = 9 * scale;
    let mut height = lines.len() * line_h + 4;
    height += height % 2;
    let mut img = vec![0u8; width * height * 3];
    for (li, line) in lines.iter().enumerate() {
        for (ci, ch) in line.chars().enumerate() {
            let rows = glyph(ch);
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..5 {
                    if bits & (1 << (4 - rx)) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let x = 4 + ci * cw + rx * scale + sx;
                            let y = 2 + li * line_h + ry * scale + sy;
                            if x < width && y < height {
                                let p = (y * width + x) * 3;
                                img[p..p + 3].copy_from_slice(&[255, 255, 255]);
                            }
                        }
                    }
                }
            }
        }
    }
    (img, height)
}

/// Writes an mp4 (H.264) of several camera streams side by side with an optional caption bar
/// below: the layout of episode exports and of policy rollout videos.
pub struct ClipWriter {
    enc: SegmentEncoder,
    out: PathBuf,
    sizes: Vec<(usize, usize)>,
    width: usize,
    top: usize,
    canvas: Vec<u8>,
    fps: f64,
}

impl ClipWriter {
    /// Starts `out` for cameras of `sizes` (width, height) px at `fps`, captioned with `caption`
    /// when it is not empty.
    pub fn create(out: &Path, sizes: &[(usize, usize)], caption: &str, fps: f64) -> Result<ClipWriter> {
        let sum: usize = sizes.iter().map(|s| s.0).sum();
        let width = sum + sum % 2;
        let top: usize = sizes.iter().map(|s| s.1).max().unwrap_or(0);
        let (bar, bar_h) = if caption.is_empty() { (Vec::new(), 0) } else { caption_bar(caption, width) };
        let height = top + bar_h + (top + bar_h) % 2;
        let segment = out.with_extension("export.mkv");
        let enc = SegmentEncoder::create(&segment, width, height, fps, &VideoSettings::default())?;
        let mut canvas = vec![0u8; width * height * 3];
        canvas[top * width * 3..top * width * 3 + bar.len()].copy_from_slice(&bar);
        Ok(ClipWriter { enc, out: out.to_path_buf(), sizes: sizes.to_vec(), width, top, canvas, fps })
    }

    /// Appends one frame: one RGB8 image per camera, in the order of `sizes`.
    pub fn push(&mut self, images: &[&[u8]]) -> Result<()> {
        self.canvas[..self.top * self.width * 3].iter_mut().for_each(|b| *b = 0);
        let mut x0 = 0;
        for (img, (w, h)) in images.iter().zip(&self.sizes) {
            if img.len() < w * h * 3 {
                return Err(DatasetError::video(
                    &self.out,
                    format!("image has {} bytes, expected {w}x{h}x3", img.len()),
                ));
            }
            for y in 0..*h {
                let dst = (y * self.width + x0) * 3;
                self.canvas[dst..dst + w * 3].copy_from_slice(&img[y * w * 3..(y + 1) * w * 3]);
            }
            x0 += w;
        }
        self.enc.push(&self.canvas)
    }

    /// Finishes the file; returns the number of frames.
    pub fn finish(self) -> Result<u64> {
        let frames = self.enc.frames();
        let seg = self.enc.finish()?;
        if self.out.exists() {
            std::fs::remove_file(&self.out).map_err(|e| DatasetError::io(&self.out, e))?;
        }
        append_segment(&self.out, &seg, 0.0, self.fps)?;
        Ok(frames)
    }
}

/// Writes episode `episode` of `ds` to `out` (mp4, H.264): cameras side by side, the instruction
/// as a caption bar below when `caption`. Returns the number of frames.
pub fn export_episode(ds: &Dataset, episode: usize, out: &Path, caption: bool) -> Result<u64> {
    let e = ds
        .episodes()
        .get(episode)
        .ok_or_else(|| {
            DatasetError::invalid(ds.root(), format!("no episode {episode} ({} episodes)", ds.episodes().len()))
        })?
        .clone();
    let keys = ds.camera_keys();
    if keys.is_empty() {
        return Err(DatasetError::invalid(ds.root(), "the dataset has no cameras"));
    }
    let sizes: Vec<(usize, usize)> = keys
        .iter()
        .map(|k| {
            let f = &ds.info().features[k];
            (f.shape.get(1).copied().unwrap_or(0) as usize, f.shape.first().copied().unwrap_or(0) as usize)
        })
        .collect();
    let text = if caption { e.tasks.first().cloned().unwrap_or_default() } else { String::new() };
    let mut clip = ClipWriter::create(out, &sizes, &text, ds.fps())?;
    let mut seeker = ds.seeker();
    for i in e.from_index as usize..e.to_index as usize {
        let images = keys.iter().map(|k| seeker.image(ds, i, k)).collect::<Result<Vec<_>>>()?;
        clip.push(&images.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
    }
    clip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_draws_white_text_on_an_even_bar() {
        let (img, h) = caption_bar("pick up the red cube", 256);
        assert_eq!(h % 2, 0);
        assert_eq!(img.len(), 256 * h * 3);
        let lit = img.chunks_exact(3).filter(|p| p[0] == 255).count();
        // 16 non-space characters, each a few dozen lit pixels at scale 2.
        assert!(lit > 16 * 20 && lit < 16 * 35 * 4, "{lit}");
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
    }
}
