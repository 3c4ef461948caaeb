//! `armstack render`: both cameras, RGB and depth, side by side in one PNG.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sim::{Env, EnvConfig};

use super::arg_ranges;
use crate::outln;
use crate::output_path::check_output_file;

/// Arguments of `armstack render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Scene name or scene file path.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// Episode seed.
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Output PNG.
    #[arg(long, default_value = "frame.png")]
    pub out: PathBuf,
    /// Image width, pixels.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(1u32, 4096))]
    pub width: u32,
    /// Image height, pixels.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(1u32, 4096))]
    pub height: u32,
    /// Run the scripted expert for this many control steps before rendering.
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u32))]
    pub expert_steps: u32,
}

/// Renders the scene and writes the PNG.
pub fn run(args: RenderArgs) -> Result<()> {
    check_output_file(&args.out, "--out")?;
    let spec = sim::load_scene(&args.scene)?;
    let mut env = Env::new(EnvConfig::new(spec.clone()).with_cameras(args.width, args.height))?;
    let mut obs = env.reset(args.seed)?;
    let mut expert = sim::Expert::new(&spec, 0.0, args.seed);
    for _ in 0..args.expert_steps {
        let action = expert.act(&obs);
        obs = env.step(&action)?.obs;
    }
    let tiles: Vec<&sim::CameraImage> = obs.images.iter().collect();
    crate::png_out::write_rgbd_strip(&args.out, &tiles).with_context(|| format!("writing {}", args.out.display()))?;
    outln!("instruction: {}", obs.instruction)?;
    outln!(
        "wrote {} ({} cameras × RGB + depth, {}×{} each)",
        args.out.display(),
        tiles.len(),
        args.width,
        args.height
    )?;
    Ok(())
}
