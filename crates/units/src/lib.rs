//! Durations and byte sizes as every option of `avpd` and `avp-loadgen` writes them, with the
//! same errors everywhere.
//!
//! - A duration is a bare number of seconds (`90`, `1.5`) or numbers with units, largest
//!   first: `250ms`, `90s`, `5m`, `1h30m`, `2h15m30s`, `50us` (units `us`, `ms`, `s`, `m`,
//!   `h`, `d`).
//! - A byte size is a bare number of bytes or a number with a unit: `256MiB`, `64KiB`,
//!   `2GiB`, `500MB` (`B`, `KiB`, `MiB`, `GiB`, `TiB`, and the decimal `KB`, `MB`, `GB`,
//!   `TB`).
//! - Text from the network shown to an operator goes through [`printable`], so that a node id
//!   holding terminal escape codes cannot forge output.
//! - A set of nodes is a glob over their ids ([`glob`]): `*` any run of characters, `?` one.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// A duration or size that could not be read; the text says what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

const DURATION_HELP: &str = "expected a duration such as 90, 90s, 250ms, 5m or 1h30m";
const SIZE_HELP: &str = "expected a size such as 4096, 64KiB, 256MiB or 2GiB";

/// Reads a duration (see the crate documentation).
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let s = text.trim();
    let bad = || ParseError(format!("{s:?}: {DURATION_HELP}"));
    if s.is_empty() {
        return Err(bad());
    }
    // A bare number is seconds: digits with at most one decimal point (no sign, no exponent).
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = s.parse().map_err(|_| bad())?;
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    const UNITS: [(&str, f64); 6] = [
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86_400.0),
    ];
    let mut total = 0.0;
    let mut last_scale = f64::INFINITY;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| ParseError(format!("{s:?}: unknown unit {unit:?}; {DURATION_HELP}")))?;
        // Largest unit first, each at most once: 1h30m, not 30m1h.
        if scale >= last_scale {
            return Err(bad());
        }
        last_scale = scale;
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Reads a byte size (see the crate documentation).
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    let s = text.trim();
    let bad = || ParseError(format!("{s:?}: {SIZE_HELP}"));
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(ParseError(format!(
                "{s:?}: unknown unit {other:?}; {SIZE_HELP}"
            )))
        }
    };
    let bytes = value * scale as f64;
    if !(0.0..=u64::MAX as f64).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// True when `text` matches `pattern`: `*` stands for any run of characters, `?` for one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative match with backtracking to the last `*` (linear in practice).
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `text` with every control character (C0, DEL, C1: terminal escapes among them) and every
/// invisible character that changes how a line reads (bidirectional overrides and isolates,
/// zero-width characters, the line and paragraph separators, the byte-order mark) written as
/// a Rust-style escape (`\u{1b}`, `\u{202e}`); borrowed when there is none.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(hides_itself) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hides_itself(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// True for a character that does not show as itself on a terminal: a control character, or
/// an invisible formatting one that can reorder, join or break what is around it.
fn hides_itself(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Writes a byte size in the syntax [`parse_size`] reads, in the largest binary unit that
/// leaves at least 1, with one decimal when it is not whole: `512B`, `64KiB`, `12.5MiB`.
pub fn format_size(bytes: u64) -> String {
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, scale) in units {
        if bytes >= scale {
            let tenths = (bytes as u128 * 10 + scale as u128 / 2) / scale as u128;
            return if tenths.is_multiple_of(10) {
                format!("{}{unit}", tenths / 10)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes}B")
}

/// Writes a duration in the syntax [`parse_duration`] reads, shortest first: `250ms`, `90s`,
/// `1h30m`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 && d < Duration::from_secs(1) {
        let us = d.as_micros();
        return if us.is_multiple_of(1000) {
            format!("{}ms", us / 1000)
        } else {
            format!("{us}us")
        };
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let millis = d.subsec_millis();
    match (secs, millis) {
        (0, 0) => {}
        (s, 0) => out.push_str(&format!("{s}s")),
        (s, ms) => out.push_str(&format!("{s}.{ms:03}s")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_form() {
        let ok = [
            ("90", 90_000),
            ("1.5", 1_500),
            ("90s", 90_000),
            ("250ms", 250),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("2h15m30s", 8_130_000),
            ("1d", 86_400_000),
            (" 10s ", 10_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        for bad in [
            "", "ten", "5x", "30m1h", "1h1h", "-1", "s", "1.2.3s", "1e3", "+5", "-0", "inf",
            "1.2.3",
        ] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("expected a duration"), "{bad}: {e}");
        }
        assert!(parse_duration("5d3").is_err(), "a bare number after a unit");
    }

    #[test]
    fn sizes_in_every_form() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        for bad in ["", "lots", "1.5", "10Mb", "-5"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("expected a size"), "{bad}: {e}");
        }
    }

    #[test]
    fn formatted_durations_read_back() {
        for d in [
            Duration::from_millis(250),
            Duration::from_micros(50),
            Duration::from_secs(90),
            Duration::from_secs(5_400),
            Duration::from_millis(1_500),
            Duration::ZERO,
        ] {
            assert_eq!(
                parse_duration(&format_duration(d)),
                Ok(d),
                "{}",
                format_duration(d)
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
    }

    #[test]
    fn sizes_are_written_in_the_largest_unit() {
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(64 << 10), "64KiB");
        assert_eq!(format_size(256 << 20), "256MiB");
        assert_eq!(format_size((12 << 20) + (1 << 19)), "12.5MiB");
        assert_eq!(parse_size(&format_size(3 << 30)), Ok(3 << 30));
    }

    #[test]
    fn control_characters_are_escaped_for_display() {
        assert!(matches!(
            printable("ws-17"),
            std::borrow::Cow::Borrowed("ws-17")
        ));
        assert_eq!(printable("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(printable("caf\u{e9}"), "caf\u{e9}");
        assert_eq!(
            printable("ws-1\u{202e}71-sw\u{200b}\u{2028}"),
            "ws-1\\u{202e}71-sw\\u{200b}\\u{2028}"
        );
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("lab-3-*", "lab-3-17", true),
            ("lab-3-*", "lab-4-17", false),
            ("*", "", true),
            ("ws-?", "ws-7", true),
            ("ws-?", "ws-17", false),
            ("*-17", "lab-3-17", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
    }
}
