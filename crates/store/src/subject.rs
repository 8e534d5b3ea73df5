//! Node ids as subject tokens and key-value keys.
//!
//! A NODE_ID is any UTF-8 text; a NATS subject token may not hold `.`, `*`, `>` or white
//! space, and a key-value key only `-/_=.A-Za-z0-9`. [`token`] keeps ASCII letters, digits,
//! `-` and `_`, and writes every other byte as `=` and two upper-case hex digits, which is
//! valid in both and reversible ([`node_of`]): `ws-17` stays `ws-17`, `lab.3` is `lab=2E3`,
//! `é` is `=C3=A9`.

use std::fmt::Write as _;

/// The subject token (and key-value key) of a node id.
pub fn token(node: &str) -> String {
    let mut out = String::with_capacity(node.len());
    for b in node.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "={b:02X}");
        }
    }
    out
}

/// The node id of a token made by [`token`]; `None` when `token` is not one.
pub fn node_of(token: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Subjects of the stream of reports: `avp.reports.<node token>`.
pub(crate) const SUBJECTS: &str = "avp.reports.>";

/// The subject of a node's reports.
pub(crate) fn report_subject(node: &str) -> String {
    format!("avp.reports.{}", token(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_subject_and_key_safe_and_reversible() {
        for node in ["ws-17", "lab.3", "é", "a b*c>d", "10.1.2.3", "x=y", "_"] {
            let t = token(node);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{t}"
            );
            assert_eq!(node_of(&t).as_deref(), Some(node));
        }
        assert_eq!(token("lab.3"), "lab=2E3");
        assert_eq!(node_of("=Z1"), None);
        assert_eq!(node_of("=4"), None);
    }
}
