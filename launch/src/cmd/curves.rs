//! `armstack curves`: learning curves of several runs (e.g. 3 seeds × methods × scenes) as one
//! PNG and one CSV, and a table of where each method starts, ends, and when it first reaches
//! the baseline's final success.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use policy::online::CURVE_FILE;

use crate::curves_png::{write_curves_png, Curve, Panel};
use crate::outln;
use crate::output_path::{prepare_output_dir, ExistingDir};

/// `armstack curves`.
#[derive(Args, Debug)]
pub struct CurvesArgs {
    /// A group of runs drawn as one curve (mean over runs, band from min to max):
    /// `PANEL/LABEL=DIR[,DIR…]`, e.g. `pick_cube/EXPO=runs/e0,runs/e1,runs/e2`. Repeat.
    /// A run with a single evaluation (e.g. `--online-steps 0`) is drawn flat.
    #[arg(long = "group", required = true)]
    pub groups: Vec<String>,
    /// The label whose final success the others are timed against (steps to reach it).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Output folder: `curves.csv` and `curves.png`.
    #[arg(long)]
    pub out: PathBuf,
}

/// One row of a run's `curve.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct CurveRow {
    /// Env steps before the evaluation.
    pub env_steps: u64,
    /// Success rate.
    pub success: f64,
    /// Wilson 95% interval.
    pub ci95: (f64, f64),
}

/// Reads a run's `curve.csv`.
pub fn read_curve(path: &Path) -> Result<Vec<CurveRow>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (steps, success, lo, hi) = (col("env_steps")?, col("success")?, col("ci95_low")?, col("ci95_high")?);
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize| -> Result<f64> {
            f.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("{} line {}: bad value in column {}", path.display(), i + 2, c + 1))
        };
        rows.push(CurveRow { env_steps: num(steps)? as u64, success: num(success)?, ci95: (num(lo)?, num(hi)?) });
    }
    if rows.is_empty() {
        bail!("{}: no evaluations", path.display());
    }
    Ok(rows)
}

/// Success of `rows` at `x` env steps: linear between evaluations, flat outside them.
fn at(rows: &[CurveRow], x: f64) -> f64 {
    let first = &rows[0];
    if x <= first.env_steps as f64 || rows.len() == 1 {
        return first.success;
    }
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if x <= b.env_steps as f64 {
            let t = (x - a.env_steps as f64) / ((b.env_steps - a.env_steps) as f64).max(1e-9);
            return a.success + t * (b.success - a.success);
        }
    }
    rows[rows.len() - 1].success
}

/// (env steps, mean, min, max) of a group at one point.
type Point = (f64, f64, f64, f64);

/// A group: its runs' curves.
struct Group {
    panel: String,
    label: String,
    runs: Vec<Vec<CurveRow>>,
}

/// (x, mean, min, max) over the group's runs at every evaluation step of any run, up to `x_max`.
fn aggregate(group: &Group, x_max: u64) -> Vec<Point> {
    let mut xs: Vec<u64> = group.runs.iter().flat_map(|r| r.iter().map(|p| p.env_steps)).collect();
    xs.push(x_max);
    xs.sort_unstable();
    xs.dedup();
    let longest = group.runs.iter().map(|r| r[r.len() - 1].env_steps).max().unwrap_or(0);
    let flat = longest == 0;
    xs.into_iter()
        .filter(|x| flat || *x <= longest)
        .map(|x| {
            let v: Vec<f64> = group.runs.iter().map(|r| at(r, x as f64)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), s| (a.min(*s), b.max(*s)));
            (x as f64, mean, lo, hi)
        })
        .collect()
}

fn parse_group(spec: &str) -> Result<Group> {
    let (name, dirs) =
        spec.split_once('=').with_context(|| format!("--group {spec}: expected PANEL/LABEL=DIR[,DIR…]"))?;
    let (panel, label) = name.split_once('/').unwrap_or(("", name));
    let runs = dirs
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| read_curve(&Path::new(d).join(CURVE_FILE)))
        .collect::<Result<Vec<_>>>()?;
    if runs.is_empty() {
        bail!("--group {spec}: no run folders");
    }
    Ok(Group { panel: panel.to_string(), label: label.to_string(), runs })
}

/// Runs `armstack curves`.
pub fn run(args: CurvesArgs) -> Result<()> {
    let groups = args.groups.iter().map(|g| parse_group(g)).collect::<Result<Vec<_>>>()?;
    // curves.csv and curves.png of an earlier call are replaced; other files stay.
    prepare_output_dir(&args.out, "--out", ExistingDir::WriteInto)?;
    let mut panels: BTreeMap<String, Vec<&Group>> = BTreeMap::new();
    for g in &groups {
        panels.entry(g.panel.clone()).or_default().push(g);
    }
    let mut csv = String::from("panel,label,env_steps,mean_success,min_success,max_success,runs\n");
    let mut pngs = Vec::new();
    outln!(
        "{:<16} {:<12} {:>5} {:>9} {:>9} {:>9} {:>16}",
        "panel",
        "label",
        "runs",
        "start",
        "final",
        "final_min",
        "steps_to_baseline"
    )?;
    for (panel, members) in &panels {
        let x_max = members.iter().flat_map(|g| g.runs.iter().map(|r| r[r.len() - 1].env_steps)).max().unwrap_or(0);
        let curves: Vec<(&Group, Vec<Point>)> = members.iter().map(|g| (*g, aggregate(g, x_max))).collect();
        let target = args
            .baseline
            .as_ref()
            .and_then(|b| curves.iter().find(|(g, _)| &g.label == b))
            .map(|(_, c)| c[c.len() - 1].1);
        let mut drawn = Vec::new();
        for (g, points) in &curves {
            for (x, m, lo, hi) in points {
                csv.push_str(&format!("{panel},{},{x},{m:.4},{lo:.4},{hi:.4},{}\n", g.label, g.runs.len()));
            }
            let reach = target
                .and_then(|t| points.iter().find(|p| p.1 >= t - 1e-9))
                .map_or_else(|| "-".to_string(), |p| format!("{}", p.0 as u64));
            let (first, last) = (points[0], points[points.len() - 1]);
            outln!(
                "{:<16} {:<12} {:>5} {:>8.1}% {:>8.1}% {:>8.1}% {:>16}",
                panel,
                g.label,
                g.runs.len(),
                100.0 * first.1,
                100.0 * last.1,
                100.0 * last.2,
                reach
            )?;
            drawn.push(Curve { label: g.label.clone(), points: points.clone() });
        }
        pngs.push(Panel { title: panel.clone(), curves: drawn });
    }
    let csv_path = args.out.join("curves.csv");
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    let png_path = args.out.join("curves.png");
    write_curves_png(&png_path, &pngs, "env steps", "success rate")?;
    outln!("wrote {} and {}", csv_path.display(), png_path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: u64, s: f64) -> CurveRow {
        CurveRow { env_steps: x, success: s, ci95: (s, s) }
    }

    #[test]
    fn groups_average_runs_on_a_common_grid() {
        let g = Group {
            panel: "p".into(),
            label: "l".into(),
            runs: vec![vec![row(0, 0.2), row(100, 0.6)], vec![row(0, 0.4), row(50, 0.4), row(100, 0.8)]],
        };
        let pts = aggregate(&g, 100);
        let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        assert_eq!(xs, vec![0.0, 50.0, 100.0]);
        // At 50: run 1 interpolates to 0.4, run 2 is 0.4.
        assert!((pts[1].1 - 0.4).abs() < 1e-9 && (pts[2].1 - 0.7).abs() < 1e-9 && pts[2].2 == 0.6);
        // A single-evaluation run is drawn flat to the panel's end.
        let flat = Group { panel: "p".into(), label: "bc".into(), runs: vec![vec![row(0, 0.3)]] };
        let pts = aggregate(&flat, 400);
        assert_eq!(pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(), vec![(0.0, 0.3), (400.0, 0.3)]);
    }
}
