//! Host sampling: CPU usage since the previous sample and memory used, read with sysinfo.
//!
//! Used by `avpd agent` (and, for its default collector id, by the node). This module only
//! reads the host; it knows nothing of the protocol or of time beyond stamping each sample.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Longest NODE_ID the protocol carries, in bytes.
const MAX_NODE_ID_LEN: usize = 255;

/// One reading of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSample {
    /// CPU usage over all cores since the previous sample, percent 0..=100.
    pub cpu_percent: u8,
    /// Memory in use, percent 0..=100 of the total.
    pub mem_percent: u8,
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Where samples come from: the host ([`HostSampler`]) or, in tests, a script.
pub trait Sampler {
    /// Reads the host now.
    fn sample(&mut self) -> HostSample;
}

/// Reads CPU and memory usage; keeps the previous CPU counters so each sample covers the time
/// since the one before.
pub struct HostSampler {
    system: System,
}

/// The host's CPU and memory figures cannot be read on this system.
#[derive(Debug)]
pub struct SamplerError(sysinfo::Error);

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read this host's CPU and memory usage: {}",
            self.0
        )
    }
}

impl std::error::Error for SamplerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl HostSampler {
    /// A sampler whose first [`sample`](Self::sample) covers the time since this call.
    pub fn new() -> Result<Self, SamplerError> {
        let kind = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        Ok(HostSampler {
            system: System::new_with_specifics(kind).map_err(SamplerError)?,
        })
    }

    /// Reads the host now.
    ///
    /// CPU usage is measured since the previous call (or since [`new`](Self::new)); a gap
    /// shorter than sysinfo's minimum update interval (about 200 ms on Linux) repeats the last
    /// figure.
    pub fn read(&mut self) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = self.system.total_memory();
        let mem = if total == 0 {
            0.0
        } else {
            self.system.used_memory() as f64 * 100.0 / total as f64
        };
        HostSample {
            cpu_percent: to_percent(f64::from(self.system.global_cpu_usage())),
            mem_percent: to_percent(mem),
            timestamp_ms: unix_millis(SystemTime::now()),
        }
    }
}

impl Sampler for HostSampler {
    fn sample(&mut self) -> HostSample {
        self.read()
    }
}

/// This host's name, usable as a NODE_ID: 1..=255 bytes, `"localhost"` when the system has
/// none.
pub fn host_name() -> String {
    let name = System::host_name().unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        return "localhost".to_string();
    }
    let mut end = name.len().min(MAX_NODE_ID_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Rounds a percentage and clamps it to 0..=100 (NaN counts as 0).
fn to_percent(v: f64) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 100.0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_rounded_and_clamped() {
        assert_eq!(to_percent(-3.0), 0);
        assert_eq!(to_percent(49.5), 50);
        assert_eq!(to_percent(130.0), 100);
        assert_eq!(to_percent(f64::NAN), 0);
    }

    #[test]
    fn samples_are_in_range_and_stamped_now() {
        let mut s = HostSampler::new().expect("this test host has CPU and memory figures");
        let before = unix_millis(SystemTime::now());
        let a = s.read();
        let after = unix_millis(SystemTime::now());
        assert!(a.cpu_percent <= 100 && a.mem_percent <= 100);
        assert!((before..=after).contains(&a.timestamp_ms));
        assert!(a.mem_percent > 0, "a running host uses some memory");
    }

    #[test]
    fn host_name_fits_a_node_id() {
        let n = host_name();
        assert!((1..=MAX_NODE_ID_LEN).contains(&n.len()));
    }
}
