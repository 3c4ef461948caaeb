//! Writing camera images as PNG: RGB and a colour-mapped depth per camera, side by side.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Result};

/// Maps depth (m) to grey: near = bright, far = dark; no hit = black.
fn depth_to_rgb(depth_m: &[f32]) -> Vec<u8> {
    let valid = depth_m.iter().copied().filter(|d| *d > 0.0);
    let (lo, hi) = valid.fold((f32::MAX, 0.0f32), |(lo, hi), d| (lo.min(d), hi.max(d)));
    let span = (hi - lo).max(1e-6);
    let mut out = Vec::with_capacity(depth_m.len() * 3);
    for d in depth_m {
        let v = if *d > 0.0 { (255.0 * (1.0 - (d - lo) / span) * 0.85 + 30.0) as u8 } else { 0 };
        out.extend_from_slice(&[v, v, v]);
    }
    out
}

/// Writes `[rgb₁ | depth₁ | rgb₂ | depth₂ | …]` as one PNG row of tiles.
pub fn write_rgbd_strip(path: &Path, images: &[&sim::CameraImage]) -> Result<()> {
    let Some(first) = images.first() else { bail!("no camera images to write") };
    let (w, h) = (first.width as usize, first.height as usize);
    if images.iter().any(|i| i.width as usize != w || i.height as usize != h) {
        bail!("all cameras must have the same size to be tiled");
    }
    let tiles: Vec<Vec<u8>> = images.iter().flat_map(|i| [i.rgb.clone(), depth_to_rgb(&i.depth_m)]).collect();
    let total_w = w * tiles.len();
    let mut pixels = vec![0u8; total_w * h * 3];
    for (t, tile) in tiles.iter().enumerate() {
        for y in 0..h {
            let dst = (y * total_w + t * w) * 3;
            pixels[dst..dst + w * 3].copy_from_slice(&tile[y * w * 3..(y + 1) * w * 3]);
        }
    }
    write_rgb_png(path, total_w as u32, h as u32, &pixels)
}

/// Writes an 8-bit RGB PNG.
pub fn write_rgb_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    let file = BufWriter::new(File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}
