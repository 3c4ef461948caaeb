//! `armstack calibrate`: homing offsets and joint ranges of a WidowX-style arm, like
//! `lerobot-calibrate`. With torque off, the operator puts the arm in its home pose and then moves
//! every joint through its range; the result is a servo map to pass to `--config`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use robot_driver::calibrate::{calibrate, CalibrationConfig, CalibrationOperator, CalibrationReport, EmulatedOperator};

use super::arg_ranges;
use crate::outln;
use crate::robots::widowx::{uncalibrated_mount_offsets, DriverArgs};
use crate::stdout::StdoutError;

/// Arguments of `armstack calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub conn: DriverArgs,
    /// Where to write the calibrated servo map (TOML).
    #[arg(long)]
    pub out: PathBuf,
    /// Longest range sweep, s (with --emulate: the emulated hand's sweep period).
    #[arg(long, default_value_t = 60.0, value_parser = arg_ranges::duration_s())]
    pub sweep_s: f64,
    /// Each joint must cover at least this fraction of its configured range.
    #[arg(long, default_value_t = 0.8, value_parser = arg_ranges::fraction())]
    pub min_coverage: f64,
    /// Overwrite `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Prompts on the terminal and waits for Enter.
struct TerminalOperator {
    done: Arc<AtomicBool>,
}

fn wait_for_enter() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

impl CalibrationOperator for TerminalOperator {
    fn place_at_home(&mut self) {
        eprintln!("Torque is off. Put the arm in its home pose: every joint at 0 rad (upper arm vertical,");
        eprintln!("forearm and wrist horizontal, pointing forward; wrist and forearm rolls centred). Press Enter.");
        wait_for_enter();
    }

    fn start_sweep(&mut self) {
        eprintln!("Now move every joint slowly through its full range, end stop to end stop, and open and");
        eprintln!("close the gripper fully. Press Enter when done.");
        let done = self.done.clone();
        std::thread::spawn(move || {
            wait_for_enter();
            done.store(true, Ordering::SeqCst);
        });
    }

    fn sweep_finished(&mut self, _elapsed: Duration) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// Checks that the calibrated map can be written to `out` before any servo is touched (the
/// calibration writes homing offsets into the servos): its folder exists, it is not a folder,
/// it exists only with `force`, and it can be created (or opened for writing) there.
fn check_output(out: &Path, force: bool) -> Result<()> {
    let shown = out.display();
    if out.is_dir() {
        bail!("--out {shown} is a directory; give the path of the servo map file to write");
    }
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        bail!("--out {shown}: the folder {} does not exist", folder.display());
    }
    if out.exists() {
        if !force {
            bail!("{shown} exists; pass --force to overwrite it");
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(out)
            .with_context(|| format!("--out {shown} exists but cannot be written"))?;
    } else {
        // Create and remove it: proves the folder takes new files without leaving one behind.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("--out {shown} cannot be created"))?;
        std::fs::remove_file(out).with_context(|| format!("removing the probe file {shown}"))?;
    }
    Ok(())
}

/// Runs `armstack calibrate`.
pub fn run(args: CalibrateArgs) -> Result<()> {
    check_output(&args.out, args.force)?;
    let map = args.conn.map()?;
    // The emulated arm has encoders mounted off-centre, so there is something to find.
    let conn_args = DriverArgs { emulate_uncalibrated: args.conn.emulate, ..args.conn.clone() };
    let mount = uncalibrated_mount_offsets(&map);
    let mut conn = conn_args.connect()?;
    let cfg =
        CalibrationConfig { max_sweep_s: args.sweep_s * 1.1, min_coverage: args.min_coverage, ..Default::default() };
    let mut op: Box<dyn CalibrationOperator> = match &conn.emulator {
        Some(emu) => Box::new(EmulatedOperator::new(emu.clone(), map.clone(), args.sweep_s.min(10.0))),
        None => Box::new(TerminalOperator { done: Arc::new(AtomicBool::new(false)) }),
    };
    let report = calibrate(&mut conn.arm, op.as_mut(), &cfg)?;
    // The emulator knows the true mount offsets: the largest error of a recovered homing offset.
    let worst_offset_error_ticks = conn.emulator.is_some().then(|| {
        map.joints
            .iter()
            .zip(&report.joints)
            .map(|(j, c)| (c.homing_offset_ticks + mount[&j.id]).abs())
            .max()
            .unwrap_or(0)
    });
    // The homing offsets are already in the servos: a reader that closed standard output
    // (`| head`) must not cost the map, so a print error is returned only after it is written.
    let printed = print_report(&report, worst_offset_error_ticks);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !report.problems.is_empty() {
        bail!("calibration failed, nothing written:\n  - {}", report.problems.join("\n  - "));
    }
    let text = format!(
        "# Calibrated by `armstack calibrate` from {}.\n{}",
        args.conn.config.as_ref().map_or("the built-in WidowX 250 map".to_string(), |p| p.display().to_string()),
        report.map.to_toml()
    );
    // Without --force, a file that appeared during the calibration is not overwritten.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(args.force)
        .create_new(!args.force)
        .open(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", args.out.display()))?;
    printed?;
    outln!("wrote {} (homing offsets are also stored in the servos); use it with --config", args.out.display())?;
    Ok(())
}

/// Prints the calibration table (offsets, observed ranges, coverage), the gripper's range and,
/// against the emulator, the largest homing-offset error in ticks.
fn print_report(report: &CalibrationReport, worst_offset_error_ticks: Option<i32>) -> Result<(), StdoutError> {
    outln!("{:<14} {:>8} {:>8} {:>9} {:>9} {:>9}", "joint", "offset", "shadow", "min rad", "max rad", "coverage")?;
    for j in &report.joints {
        outln!(
            "{:<14} {:>8} {:>8} {:>9.3} {:>9.3} {:>8.0}%",
            j.name,
            j.homing_offset_ticks,
            j.shadow_homing_offset_ticks.map_or("-".to_string(), |o| o.to_string()),
            j.observed_min_rad,
            j.observed_max_rad,
            j.coverage * 100.0
        )?;
    }
    outln!(
        "gripper range {:.3} … {:.3} rad; {} samples",
        report.gripper_range_rad.0,
        report.gripper_range_rad.1,
        report.samples
    )?;
    if let Some(worst) = worst_offset_error_ticks {
        outln!("emulator: largest error of a recovered homing offset against the true mount offset: {worst} ticks")?;
    }
    Ok(())
}
