//! Smoke test of the benchmark (short duration; the numbers are printed by the CLI, not checked).

use std::time::Duration;

use bus::bench::{run, BenchConfig};

#[test]
fn bench_runs_and_reports_every_case() {
    let rows = run(&BenchConfig { duration: Duration::from_millis(300) }).expect("bench");
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert!(row.sent > 0 && row.received > 0, "{row:?}");
        assert!(row.p50_us.is_finite() && row.p50_us > 0.0 && row.p99_us >= row.p50_us, "{row:?}");
        assert!(row.payload_bytes > 0);
    }
    assert!(rows.iter().any(|r| r.path == "bare zenoh") && rows.iter().any(|r| r.path == "typed"));
    assert!(rows[4].payload_bytes > 640 * 480 * 3);
}
