//! `armstack video …`: action-free video for pre-training.

use std::path::PathBuf;

#[cfg(feature = "video")]
use anyhow::bail;
use anyhow::Result;
use clap::{Args, Subcommand};
#[cfg(feature = "video")]
use video_pretrain::ingest::{collect_inputs, ingest_dataset, ingest_videos, IngestConfig, IngestReport};

use super::arg_ranges;
#[cfg(feature = "video")]
use crate::outln;
#[cfg(feature = "video")]
use crate::output_path::{prepare_output_dir, ExistingDir};

/// `armstack video …`
#[derive(Subcommand, Debug)]
pub enum VideoCommand {
    /// Decode videos (any format FFmpeg reads) or a LeRobot dataset's cameras into a frame store.
    Ingest(IngestArgs),
}

/// Arguments of `armstack video ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// A folder (searched recursively), a glob like `videos/*.mp4`, or a file; repeatable.
    #[arg(long)]
    pub videos: Vec<String>,
    /// A LeRobot dataset whose camera streams are ingested (actions dropped); repeatable.
    #[arg(long)]
    pub dataset: Vec<PathBuf>,
    /// Output frame store folder (created; must be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Frame side after resize and centre crop, px.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(1usize, 4096))]
    pub size: usize,
    /// Frames per second after resampling.
    #[arg(long, default_value_t = 5.0, value_parser = arg_ranges::rate_hz())]
    pub fps: f64,
    /// Decoding threads (default: all cores).
    #[arg(long, value_parser = arg_ranges::at_least(1usize))]
    pub threads: Option<usize>,
}

#[cfg(feature = "video")]
fn print_report(what: &str, r: &IngestReport) -> Result<()> {
    outln!(
        "{what}: {} episodes, {} skipped; {} frames decoded, {} written in {:.1} s ({:.0} decoded frames/s)",
        r.episodes,
        r.skipped,
        r.decoded_frames,
        r.written_frames,
        r.seconds,
        r.decode_fps()
    )?;
    Ok(())
}

/// Runs `armstack video …`.
pub fn run(cmd: VideoCommand) -> Result<()> {
    let VideoCommand::Ingest(a) = cmd;
    #[cfg(not(feature = "video"))]
    {
        let _ = a;
        return Err(super::video_support::missing("video ingest"));
    }
    #[cfg(feature = "video")]
    ingest(a)
}

#[cfg(feature = "video")]
fn ingest(a: IngestArgs) -> Result<()> {
    if a.videos.is_empty() == a.dataset.is_empty() {
        bail!("pass --videos or --dataset (either one or more times), not both");
    }
    prepare_output_dir(
        &a.out,
        "--out",
        ExistingDir::Refuse { hint: "a frame store is written into a new or empty folder" },
    )?;
    let mut cfg = IngestConfig { size: a.size, fps: a.fps, ..Default::default() };
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    let bar = |len: usize, unit: &str| {
        let bar = indicatif::ProgressBar::new(len as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{bar:30}} {{pos}}/{{len}} {unit} {{elapsed_precise}} eta {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar
    };
    if !a.dataset.is_empty() {
        let pb = bar(a.dataset.len(), "datasets");
        let (m, r) = ingest_dataset(&a.dataset, &a.out, &cfg, &|done, _| pb.set_position(done as u64))?;
        pb.finish_and_clear();
        print_report(&format!("ingested {} datasets into {}", a.dataset.len(), a.out.display()), &r)?;
        outln!("{} frames of {}×{} at {} fps", m.frames, m.size, m.size, m.fps)?;
        return Ok(());
    }
    let mut files = Vec::new();
    for spec in &a.videos {
        files.extend(collect_inputs(spec)?);
    }
    if files.is_empty() {
        bail!("no files found in {:?}", a.videos);
    }
    let pb = bar(files.len(), "files");
    let (m, r) = ingest_videos(&files, &a.out, &cfg, &|done, _| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    print_report(&format!("ingested {} files into {}", files.len(), a.out.display()), &r)?;
    for s in &m.skipped {
        outln!("skipped {}: {}", s.source, s.reason)?;
    }
    if m.frames == 0 {
        bail!("no frames were ingested");
    }
    Ok(())
}
