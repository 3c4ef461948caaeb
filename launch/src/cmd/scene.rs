//! `armstack scene list | show NAME`.

use anyhow::Result;
use clap::Subcommand;

use super::arg_ranges;
use crate::outln;

/// `armstack scene …`
#[derive(Subcommand, Debug)]
pub enum SceneCommand {
    /// List the built-in scenes.
    List,
    /// Show a scene: its file, and one sampled episode.
    Show {
        /// Scene name or scene file path.
        name: String,
        /// Seed of the sampled episode.
        #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
        seed: u64,
    },
}

/// Runs a scene subcommand.
pub fn run(cmd: SceneCommand) -> Result<()> {
    match cmd {
        SceneCommand::List => {
            outln!("{:<16} {:>9}  description", "scene", "max steps")?;
            for (name, _) in sim::scene::BUILTIN_SCENES {
                let spec = sim::load_scene(name)?;
                outln!("{:<16} {:>9}  {}", spec.name, spec.max_steps, spec.description)?;
            }
        }
        SceneCommand::Show { name, seed } => {
            let spec = sim::load_scene(&name)?;
            if let Some((_, text)) = sim::scene::BUILTIN_SCENES.iter().find(|(n, _)| *n == name) {
                outln!("# built-in scene `{name}`\n{text}")?;
            }
            let inst = sim::SceneInstance::sample(&spec, seed);
            outln!("# episode sampled with seed {seed}")?;
            outln!("instruction: {}", inst.instruction)?;
            outln!(
                "friction {:.2}, motor gain ×{:.2}, latency {:.0} ms",
                inst.friction,
                inst.motor_gain_scale,
                inst.latency_ms
            )?;
            for o in &inst.objects {
                outln!(
                    "  {:<8} {:?} {} at ({:.3}, {:.3}, {:.3}) m, yaw {:.2} rad, {:.3} kg",
                    o.name,
                    o.kind,
                    o.color_name,
                    o.position_m[0],
                    o.position_m[1],
                    o.position_m[2],
                    o.yaw_rad,
                    o.mass_kg
                )?;
            }
        }
    }
    Ok(())
}
