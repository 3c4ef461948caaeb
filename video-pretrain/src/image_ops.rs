//! Image resizing for the frame store: scale so the shorter side is `size`, then centre-crop to
//! `size × size`. Each output pixel averages the source pixels it covers (area resampling), which
//! is what a large downscale needs to avoid aliasing; upscaling repeats the nearest pixel.

/// Resizes interleaved RGB8 `src` (`width × height`) to a centre-cropped `size × size` RGB8 image.
/// Odd sizes and any aspect ratio are fine; `width`, `height` and `size` must be positive.
pub fn resize_center_crop(src: &[u8], width: usize, height: usize, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size * size * 3];
    if width == 0 || height == 0 || size == 0 || src.len() < width * height * 3 {
        return out;
    }
    // Source pixels per output pixel (the shorter side maps to `size`).
    let scale = width.min(height) as f64 / size as f64;
    // Offset of the crop window in source pixels.
    let x0 = (width as f64 - size as f64 * scale) / 2.0;
    let y0 = (height as f64 - size as f64 * scale) / 2.0;
    let span = |start: f64, len: usize| -> (usize, usize) {
        let a = (start.floor().max(0.0) as usize).min(len - 1);
        let b = ((start + scale).ceil() as usize).clamp(a + 1, len);
        (a, b)
    };
    for oy in 0..size {
        let (sy0, sy1) = span(y0 + oy as f64 * scale, height);
        for ox in 0..size {
            let (sx0, sx1) = span(x0 + ox as f64 * scale, width);
            let mut acc = [0u32; 3];
            for sy in sy0..sy1 {
                let row = &src[(sy * width + sx0) * 3..(sy * width + sx1) * 3];
                for px in row.chunks_exact(3) {
                    acc[0] += px[0] as u32;
                    acc[1] += px[1] as u32;
                    acc[2] += px[2] as u32;
                }
            }
            let n = ((sy1 - sy0) * (sx1 - sx0)) as u32;
            let o = (oy * size + ox) * 3;
            for c in 0..3 {
                out[o + c] = ((acc[c] + n / 2) / n) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_2x2_blocks() {
        // 4×2 image → shorter side 2 → size 1? Use 4×4 → 2×2.
        let mut src = vec![0u8; 4 * 4 * 3];
        for y in 0..4 {
            for x in 0..4 {
                let v = (y * 4 + x) as u8 * 10;
                src[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3].copy_from_slice(&[v, 255 - v, 7]);
            }
        }
        let out = resize_center_crop(&src, 4, 4, 2);
        // Top-left block: 0, 10, 40, 50 → mean 25.
        assert_eq!(&out[0..3], &[25, 230, 7]);
        // Bottom-right block: 100, 110, 140, 150 → 125.
        assert_eq!(&out[9..12], &[125, 130, 7]);
    }

    #[test]
    fn wide_odd_image_is_centre_cropped() {
        // 7×3: left third red, middle green, right third blue → 3×3 keeps the middle 3 columns.
        let (w, h) = (7usize, 3usize);
        let mut src = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let c = if x < 2 {
                    [255, 0, 0]
                } else if x < 5 {
                    [0, 255, 0]
                } else {
                    [0, 0, 255]
                };
                src[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        let out = resize_center_crop(&src, w, h, 3);
        assert!(out.chunks(3).all(|p| p == [0, 255, 0]), "{out:?}");
        // Upscaling a 1×1 image fills the output.
        assert_eq!(resize_center_crop(&[1, 2, 3], 1, 1, 2), vec![1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    }
}
