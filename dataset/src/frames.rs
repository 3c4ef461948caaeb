//! Decoded frames held in memory (the frame cache); plain data, no FFmpeg needed to read them.

/// Every frame of a video file, decoded once, in presentation order.
#[derive(Clone, Debug, Default)]
pub struct DecodedVideo {
    /// Frame width, px.
    pub width: usize,
    /// Frame height, px.
    pub height: usize,
    /// Presentation time of each frame, s.
    pub pts_s: Vec<f64>,
    /// Frames, interleaved RGB8, `width*height*3` bytes each, back to back.
    pub rgb: Vec<u8>,
}

impl DecodedVideo {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.pts_s.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.pts_s.is_empty()
    }

    /// Frame `i` as RGB8 bytes.
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.width * self.height * 3;
        &self.rgb[i * n..(i + 1) * n]
    }

    /// Index of the frame whose pts is nearest `t_s`, if within `tolerance_s`.
    pub fn index_at(&self, t_s: f64, tolerance_s: f64) -> Option<usize> {
        let i = self.pts_s.partition_point(|p| *p < t_s);
        let candidates = [i.checked_sub(1), Some(i)];
        candidates
            .into_iter()
            .flatten()
            .filter(|j| *j < self.pts_s.len())
            .min_by(|a, b| (self.pts_s[*a] - t_s).abs().total_cmp(&(self.pts_s[*b] - t_s).abs()))
            .filter(|j| (self.pts_s[*j] - t_s).abs() <= tolerance_s)
    }
}
