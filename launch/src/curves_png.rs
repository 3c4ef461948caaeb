//! Learning-curve plots rendered to PNG with `plotters`, without system fonts.
//!
//! Text is drawn with plotters' `ab_glyph` feature using a font compiled into the binary
//! (`launch/assets/DejaVuSans-subset.ttf`). That file is DejaVu Sans 2.37 (Debian `fonts-dejavu-core`)
//! subset to Basic Latin, Latin-1, Greek and a few symbols (dashes, quotes, arrows, ≤ ≥ ≈ ≠ ∞ −); other
//! characters render as the `.notdef` box. Licence: Bitstream Vera / Arev font licence (permissive), DejaVu changes
//! public domain; the full text is in `launch/assets/DejaVuSans-LICENSE.txt` and in the font's own `name` table. It was made with
//! fontTools:
//!
//! ```text
//! pyftsubset DejaVuSans.ttf --output-file=DejaVuSans-subset.ttf --no-hinting --layout-features='' --legacy-kern \
//!   --drop-tables+=GSUB,GPOS,GDEF,MATH,FFTM --name-IDs='*' --name-languages='*' --notdef-outline \
//!   --recommended-glyphs --unicodes='U+0020-007E,U+00A0-00FF,U+0391-03A9,U+03B1-03C9,U+2013-2014,U+2018-201D,\
//!   U+2022,U+2026,U+2030,U+2032-2033,U+2190-2193,U+2212,U+2248,U+2260,U+2264-2265,U+221E,U+FFFD'
//! ```
//!
//! The full `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf` (about 760 KB) is a drop-in replacement.
//!
//! The image is drawn into an in-memory RGB buffer and encoded with the `png` crate, so plotters needs only its
//! `bitmap_backend` and `ab_glyph` features.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::chart::ChartBuilder;
use plotters::coord::Shift;
use plotters::drawing::{DrawingArea, IntoDrawingArea};
use plotters::element::{Circle, PathElement, Polygon};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, Color, FontStyle, HSLColor, IntoFont, RGBColor, TextStyle, BLACK, WHITE};

/// Width of one panel in pixels; the image is `PANEL_WIDTH * panels.len()` wide.
const PANEL_WIDTH: u32 = 640;
/// Height of the panels in pixels; the shared legend strip below them adds [`legend_height`] pixels.
const PANEL_HEIGHT: u32 = 480;
/// Font size of the legend labels.
const LEGEND_FONT_SIZE: f64 = 15.0;
/// Height of one legend row in pixels.
const LEGEND_ROW: u32 = 24;
/// Padding above and below the legend rows in pixels.
const LEGEND_PAD: u32 = 6;
/// Length of the line sample in front of a legend label, in pixels.
const LEGEND_LINE: i32 = 24;
/// Length of the line sample plus the gap to the label, in pixels.
const LEGEND_SWATCH: u32 = 32;
/// Horizontal gap between legend entries in pixels.
const LEGEND_GAP: u32 = 28;

/// Font compiled into the binary and registered as plotters' `"sans-serif"` family.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Tableau 10 colours, used in order of first appearance of a curve label; later labels get generated hues.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One curve: a label and points (x, mean, low, high); low/high bound a shaded band (equal to mean for none).
pub struct Curve {
    /// Legend label; curves with the same label get the same colour in every panel.
    pub label: String,
    /// Points `(x, mean, low, high)`; points with a non-finite value are skipped, y values are clamped to 0..=1.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One panel (sub-plot): a title and its curves.
pub struct Panel {
    /// Title drawn above the panel.
    pub title: String,
    /// Curves drawn in the panel.
    pub curves: Vec<Curve>,
}

/// Draws panels side by side into a PNG at `path`: x axis label `x_label`, y axis `y_label`,
/// y range 0..=1 (success rate); legend; distinct colours per curve label consistent across panels.
///
/// Each panel is 640 × 480 pixels; one legend for all panels is drawn in a strip below them, one colour per distinct
/// label (in order of first appearance). Fails if `panels` is empty, or on a drawing or I/O error.
pub fn write_curves_png(path: &Path, panels: &[Panel], x_label: &str, y_label: &str) -> Result<()> {
    if panels.is_empty() {
        bail!("no panels to draw into {}", path.display());
    }
    register_embedded_font()?;
    let width = u32::try_from(panels.len())
        .ok()
        .and_then(|n| n.checked_mul(PANEL_WIDTH))
        .with_context(|| format!("too many panels ({}) for one image", panels.len()))?;
    let legend = legend_rows(&label_colours(panels), width)?;
    let height = PANEL_HEIGHT.checked_add(legend_height(legend.len())).context("legend too tall")?;
    let len = usize::try_from(u64::from(width) * u64::from(height) * 3).context("image too large")?;
    let mut rgb = vec![255u8; len];
    draw(&mut rgb, (width, height), panels, &legend, x_label, y_label)
        .with_context(|| format!("cannot draw learning curves for {}", path.display()))?;
    write_png(path, &rgb, width, height)
}

/// Registers [`FONT`] as `"sans-serif"` (the family plotters uses by default) once per process.
fn register_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        bail!("cannot register the embedded font with plotters (invalid font data)")
    }
}

/// Distinct curve labels over all panels, in order of first appearance, each with its colour.
fn label_colours(panels: &[Panel]) -> Vec<(&str, RGBColor)> {
    let mut labels: Vec<(&str, RGBColor)> = Vec::new();
    for curve in panels.iter().flat_map(|p| &p.curves) {
        if labels.iter().all(|(l, _)| *l != curve.label) {
            let colour = COLOURS.get(labels.len()).copied().unwrap_or_else(|| {
                // Golden-ratio hue steps keep further colours distinct from each other.
                let hue = (labels.len() as f64 * 0.618_033_988_75).fract();
                let (r, g, b) = HSLColor(hue, 0.65, 0.45).rgb();
                RGBColor(r, g, b)
            });
            labels.push((&curve.label, colour));
        }
    }
    labels
}

/// Text style of the legend labels.
fn legend_style() -> TextStyle<'static> {
    ("sans-serif", LEGEND_FONT_SIZE).into_font().into()
}

/// Height in pixels of a legend strip with `rows` rows (0 for none).
fn legend_height(rows: usize) -> u32 {
    match u32::try_from(rows) {
        Ok(0) => 0,
        Ok(n) => n.saturating_mul(LEGEND_ROW).saturating_add(2 * LEGEND_PAD),
        Err(_) => u32::MAX,
    }
}

/// One entry of the legend.
struct LegendEntry<'a> {
    /// Curve label.
    label: &'a str,
    /// Colour of the curves with this label.
    colour: RGBColor,
    /// Width in pixels of the line sample and the label.
    width: u32,
}

/// Legend entries flowed into rows no wider than `width` minus a margin.
fn legend_rows<'a>(labels: &[(&'a str, RGBColor)], width: u32) -> Result<Vec<Vec<LegendEntry<'a>>>> {
    let font = legend_style().font;
    let max = width.saturating_sub(2 * LEGEND_GAP);
    let mut rows: Vec<Vec<LegendEntry>> = Vec::new();
    let mut used = 0;
    for &(label, colour) in labels {
        let (text_w, _) = font.box_size(label).with_context(|| format!("cannot measure legend label {label:?}"))?;
        let entry = LegendEntry { label, colour, width: LEGEND_SWATCH.saturating_add(text_w) };
        match rows.last_mut() {
            Some(row) if used + LEGEND_GAP + entry.width <= max => {
                used += LEGEND_GAP + entry.width;
                row.push(entry);
            }
            _ => {
                used = entry.width;
                rows.push(vec![entry]);
            }
        }
    }
    Ok(rows)
}

/// Finite points of `curve`, sorted by x, with y values clamped to 0..=1.
fn clean_points(curve: &Curve) -> Vec<(f64, f64, f64, f64)> {
    let mut pts: Vec<_> = curve
        .points
        .iter()
        .filter(|(x, m, l, h)| x.is_finite() && m.is_finite() && l.is_finite() && h.is_finite())
        .map(|&(x, m, l, h)| (x, m.clamp(0.0, 1.0), l.clamp(0.0, 1.0), h.clamp(0.0, 1.0)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// X range covering all finite points of a panel (0..1 when empty, widened when a single x value).
fn x_range(curves: &[Vec<(f64, f64, f64, f64)>]) -> (f64, f64) {
    let xs = curves.iter().flatten().map(|p| p.0);
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Tick label for `v` on an axis whose largest magnitude is `max`: thousands as `k`, millions as `M`, etc.
fn format_tick(v: f64, max: f64) -> String {
    let (div, suffix) = match max {
        m if m >= 1e9 => (1e9, "G"),
        m if m >= 1e6 => (1e6, "M"),
        m if m >= 1e4 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let s = format!("{:.3}", v / div);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "0" | "-0" => "0".to_string(),
        _ => format!("{s}{suffix}"),
    }
}

/// Draws all panels and the legend into `rgb`, an RGB8 buffer of `size` pixels.
fn draw(
    rgb: &mut [u8],
    size: (u32, u32),
    panels: &[Panel],
    legend: &[Vec<LegendEntry>],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    let colours: HashMap<&str, RGBColor> = legend.iter().flatten().map(|e| (e.label, e.colour)).collect();
    let backend =
        BitMapBackend::<RGBPixel>::with_buffer_and_format(rgb, size).context("bitmap buffer has the wrong size")?;
    let root = backend.into_drawing_area();
    root.fill(&WHITE).context("cannot clear the image")?;
    let (top, bottom) = root.split_vertically(PANEL_HEIGHT);
    for (panel, area) in panels.iter().zip(top.split_evenly((1, panels.len()))) {
        let curves: Vec<_> = panel.curves.iter().map(clean_points).collect();
        let (x0, x1) = x_range(&curves);
        let x_max = x0.abs().max(x1.abs());
        let x_fmt = |v: &f64| format_tick(*v, x_max);
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 20))
            .margin(10)
            .margin_right(20)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, 0.0..1.0)
            .with_context(|| format!("cannot lay out panel {:?}", panel.title))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&x_fmt)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.1))
            .draw()
            .with_context(|| format!("cannot draw axes of panel {:?}", panel.title))?;
        for (curve, pts) in panel.curves.iter().zip(&curves) {
            let colour = colours.get(curve.label.as_str()).copied().unwrap_or(BLACK);
            if pts.iter().any(|p| p.2 != p.3) {
                let band: Vec<(f64, f64)> =
                    pts.iter().map(|p| (p.0, p.2)).chain(pts.iter().rev().map(|p| (p.0, p.3))).collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.2).filled())))
                    .with_context(|| format!("cannot draw band of {:?}", curve.label))?;
            }
            let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
            chart
                .draw_series(std::iter::once(PathElement::new(line.clone(), colour.stroke_width(2))))
                .with_context(|| format!("cannot draw curve {:?}", curve.label))?;
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .with_context(|| format!("cannot draw markers of {:?}", curve.label))?;
        }
    }
    draw_legend(&bottom, legend).context("cannot draw the legend")?;
    root.present().context("cannot finish the image")?;
    Ok(())
}

/// Draws the legend rows centred in `area`.
fn draw_legend(area: &DrawingArea<BitMapBackend<'_>, Shift>, rows: &[Vec<LegendEntry>]) -> Result<()> {
    let style = legend_style().pos(Pos::new(HPos::Left, VPos::Center));
    let width = i64::from(area.dim_in_pixel().0);
    let mut y = i64::from(LEGEND_PAD + LEGEND_ROW / 2);
    for row in rows {
        let row_w: i64 = row.iter().map(|e| i64::from(e.width) + i64::from(LEGEND_GAP)).sum::<i64>();
        let mut x = (width - row_w + i64::from(LEGEND_GAP)).max(0) / 2;
        for entry in row {
            let (px, py) = (to_i32(x)?, to_i32(y)?);
            area.draw(&PathElement::new(vec![(px, py), (px + LEGEND_LINE, py)], entry.colour.stroke_width(3)))?;
            area.draw_text(entry.label, &style, (to_i32(x + i64::from(LEGEND_SWATCH))?, py))?;
            x += i64::from(entry.width) + i64::from(LEGEND_GAP);
        }
        y += i64::from(LEGEND_ROW);
    }
    Ok(())
}

/// Converts a pixel coordinate to `i32`, failing when it does not fit.
fn to_i32(v: i64) -> Result<i32> {
    i32::try_from(v).context("legend coordinate out of range")
}

/// Encodes an RGB8 buffer as a PNG file at `path`.
fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer =
        encoder.write_header().with_context(|| format!("cannot write PNG header to {}", path.display()))?;
    writer.write_image_data(rgb).with_context(|| format!("cannot write PNG data to {}", path.display()))?;
    writer.finish().with_context(|| format!("cannot finish PNG {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn curve(label: &str, scale: f64, band: f64) -> Curve {
        let points = (0..=20)
            .map(|i| {
                let x = f64::from(i) * 500.0;
                let m = scale * (1.0 - (-x / 3000.0).exp());
                (x, m, m - band, m + band)
            })
            .collect();
        Curve { label: label.to_string(), points }
    }

    fn panels() -> Vec<Panel> {
        (0..2)
            .map(|p| Panel {
                title: format!("Task {p} — success rate"),
                curves: vec![
                    curve("baseline", 0.6, 0.0),
                    curve("ours (β=0.5)", 0.9 - 0.1 * f64::from(p), 0.05),
                    curve("random", 0.2, 0.02),
                ],
            })
            .collect()
    }

    #[test]
    fn draws_two_panels_to_png() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("curves.png");
        write_curves_png(&path, &panels(), "environment steps", "success rate")?;

        let decoder = png::Decoder::new(BufReader::new(File::open(&path)?));
        let mut reader = decoder.read_info()?;
        let size = reader.output_buffer_size().context("PNG too large")?;
        let mut buf = vec![0; size];
        let info = reader.next_frame(&mut buf)?;
        // Three short labels fit in one legend row.
        assert_eq!((info.width, info.height), (2 * PANEL_WIDTH, PANEL_HEIGHT + legend_height(1)));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let pixels = &buf[..info.buffer_size()];
        assert!(pixels.chunks_exact(3).any(|px| px != &pixels[..3]), "image is a single colour");
        Ok(())
    }

    #[test]
    fn colours_are_per_label() {
        let panels = panels();
        let colours = label_colours(&panels);
        let expected = [("baseline", COLOURS[0]), ("ours (β=0.5)", COLOURS[1]), ("random", COLOURS[2])];
        assert_eq!(colours, expected);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(format_tick(0.0, 10_000.0), "0");
        assert_eq!(format_tick(2500.0, 10_000.0), "2.5k");
        assert_eq!(format_tick(2500.0, 5000.0), "2500");
        assert_eq!(format_tick(1.5e6, 2e6), "1.5M");
        assert_eq!(format_tick(0.25, 1.0), "0.25");
    }

    #[test]
    fn handles_empty_and_degenerate_panels() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let panels = [
            Panel { title: "empty".to_string(), curves: vec![] },
            Panel {
                title: "one point, NaN, out of range".to_string(),
                curves: vec![Curve {
                    label: "x".to_string(),
                    points: vec![(3.0, 1.5, -1.0, 2.0), (f64::NAN, 0.5, 0.5, 0.5)],
                }],
            },
        ];
        write_curves_png(&dir.path().join("degenerate.png"), &panels, "x", "y")
    }

    #[test]
    fn rejects_no_panels() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write_curves_png(&dir.path().join("x.png"), &[], "x", "y").is_err());
    }
}
