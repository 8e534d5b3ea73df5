//! `--hlog FILE`: the run's time series as an HdrHistogram interval log, one histogram of
//! corrected latency (nanoseconds) per second, written by the hdrhistogram crate's interval
//! log writer, so that HdrHistogram's `HistogramLogProcessor` and `HistogramLogAnalyzer` read
//! it. Seconds of the warmup are tagged `warmup`: the processor leaves them out unless asked
//! for that tag.

use crate::report::RunReport;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

/// The tag of the warmup's seconds.
pub const WARMUP_TAG: &str = "warmup";

/// Writes `report`'s time series to `out` as an interval log.
pub fn write_hlog(report: &RunReport, out: &mut impl Write) -> io::Result<()> {
    let start = UNIX_EPOCH + Duration::from_millis(report.start_unix_ms);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "avp-loadgen: corrected latency in nanoseconds, one histogram per second; target {}",
            report.params.target
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(out, &mut serializer)?;
    let failed = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    for s in &report.timeline {
        let h = s.histogram.decode().map_err(failed)?;
        let begin = Duration::from_secs_f64((s.t_s - s.span_s).max(0.0));
        let tag = if s.warmup { Tag::new(WARMUP_TAG) } else { None };
        log.write_histogram(&h, begin, Duration::from_secs_f64(s.span_s), tag)
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}
