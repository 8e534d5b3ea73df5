//! Time as the terminal reads and writes it: one reading of both clocks ([`Now`]), ISO 8601
//! times for plain lines ([`iso_utc`]) and the operator's local wall time ([`LocalTime`]).
//!
//! Nothing here decides what a time means; the fleet and the screen do.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::time::{Instant, SystemTime};

/// Both clocks read at one moment: the monotonic one for intervals, the wall one (ms since the
/// Unix epoch) for comparing with the times peers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock.
    pub mono: Instant,
    /// The wall clock, ms since the Unix epoch.
    pub wall_ms: u64,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Now {
        Now {
            mono: Instant::now(),
            wall_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// `ms` (since the Unix epoch) in ISO 8601, UTC, with milliseconds:
/// `2025-03-01T12:00:00.123Z`. A time out of the calendar's range is written as the number.
pub fn iso_utc(ms: u64) -> String {
    match i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
    {
        Some(t) => format!("{t:.3}"),
        None => ms.to_string(),
    }
}

/// The operator's time zone, read once (TZ, else the system's).
#[derive(Debug, Clone)]
pub struct LocalTime(TimeZone);

impl LocalTime {
    /// The system's time zone (the `TZ` variable first, then `/etc/localtime`).
    pub fn system() -> LocalTime {
        LocalTime(TimeZone::system())
    }

    /// UTC, for tests and hosts without a zone.
    pub fn utc() -> LocalTime {
        LocalTime(TimeZone::UTC)
    }

    /// `ms` (since the Unix epoch) as `HH:MM:SS` in this zone; `?` when out of range.
    pub fn hms(&self, ms: u64) -> String {
        let Some(t) = i64::try_from(ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        else {
            return "?".into();
        };
        let civil = self.0.to_datetime(t);
        format!(
            "{:02}:{:02}:{:02}",
            civil.hour(),
            civil.minute(),
            civil.second()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_carry_milliseconds() {
        assert_eq!(iso_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_utc(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(iso_utc(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn local_times_follow_the_zone() {
        assert_eq!(LocalTime::utc().hms(1_700_000_000_123), "22:13:20");
        let india = LocalTime(TimeZone::posix("IST-5:30").unwrap());
        assert_eq!(india.hms(1_700_000_000_123), "03:43:20");
        assert_eq!(india.hms(u64::MAX), "?");
    }
}
