//! Named colours used by scene files, as linear RGB in [0, 1].

/// Looks up a colour name (`red`, `green`, `blue`, `yellow`, `orange`, `purple`, `cyan`,
/// `white`, `grey`, `black`, `brown`, `pink`). Returns `None` for an unknown name.
pub fn named_color(name: &str) -> Option<[f32; 3]> {
    Some(match name {
        "red" => [0.85, 0.12, 0.10],
        "green" => [0.15, 0.70, 0.20],
        "blue" => [0.12, 0.25, 0.85],
        "yellow" => [0.90, 0.82, 0.15],
        "orange" => [0.95, 0.50, 0.10],
        "purple" => [0.55, 0.20, 0.70],
        "cyan" => [0.15, 0.75, 0.80],
        "white" => [0.92, 0.92, 0.92],
        "grey" | "gray" => [0.50, 0.50, 0.50],
        "black" => [0.08, 0.08, 0.08],
        "brown" => [0.50, 0.32, 0.18],
        "pink" => [0.95, 0.55, 0.70],
        _ => return None,
    })
}

/// All colour names accepted by [`named_color`].
pub const COLOR_NAMES: &[&str] =
    &["red", "green", "blue", "yellow", "orange", "purple", "cyan", "white", "grey", "black", "brown", "pink"];
