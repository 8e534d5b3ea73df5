//! The `.hgrm` percentile distribution: HdrHistogram's standard text output
//! (`outputPercentileDistribution`, five ticks per half distance), values in milliseconds, as
//! read by HdrHistogram's online plotter.

use hdrhistogram::Histogram;
use std::io::{self, Write};

/// Ticks per half distance to 100%, as in HdrHistogram's own tools.
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Nanoseconds per output unit (milliseconds).
const SCALE: f64 = 1e6;

/// Writes `h` (nanoseconds) as a percentile distribution in milliseconds.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:>12.3} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / SCALE,
            h.stdev() / SCALE,
            h.highest_equivalent(h.max()) as f64 / SCALE,
        )
    };
    writeln!(
        out,
        "#[Mean    = {mean:>12.3}, StdDeviation   = {stdev:>12.3}]"
    )?;
    writeln!(
        out,
        "#[Max     = {max:>12.3}, Total count    = {:>12}]",
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets(h)
    )
}

/// HdrHistogram's sub-bucket count: the power of two that holds `2 * 10^sigfig` values.
fn sub_buckets(h: &Histogram<u64>) -> u64 {
    (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
}

/// One data line of an `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmLine {
    /// Latency in milliseconds.
    pub value_ms: f64,
    /// Quantile, 0..=1.
    pub quantile: f64,
    /// Samples at or below the value.
    pub total_count: u64,
}

/// Parses the data lines of an `.hgrm` file (header, blank and `#` lines are skipped).
pub fn parse_hgrm(text: &str) -> Result<Vec<HgrmLine>, String> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {}: {line:?}", n + 1);
        if !(3..=4).contains(&cols.len()) {
            return Err(bad());
        }
        lines.push(HgrmLine {
            value_ms: cols[0].parse().map_err(|_| bad())?,
            quantile: cols[1].parse().map_err(|_| bad())?,
            total_count: cols[2].parse().map_err(|_| bad())?,
        });
    }
    Ok(lines)
}
