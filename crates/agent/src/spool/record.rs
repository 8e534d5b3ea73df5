//! The spool file's layout, free of IO: a header, then records appended one after another.
//!
//! ```text
//! header   "AVPSPOOL" version:u8=1 instance:u64 next_seq:u32          (21 bytes)
//! sampled  tag:u8=1 instance:u64 seq:u32 cpu:u8 mem:u8 timestamp_ms:u64 (23 bytes)
//! removed  tag:u8=2 instance:u64 seq:u32                               (13 bytes)
//! ```
//!
//! Integers are big-endian. `sampled` is a report taken and not acknowledged yet; `removed`
//! says it was acknowledged (or dropped from a full buffer). `next_seq` is the SEQUENCE the
//! next report of `instance` gets, as of the last rewrite; records after it may go beyond, and
//! a report of the next instance (taken once SEQUENCE wrapped) makes that one current.
//! A record cut short at the end of the file (the agent died while writing it) is ignored.

use crate::queue::Pending;
use crate::sampler::HostSample;
use std::collections::BTreeMap;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"AVPSPOOL";
/// The layout version this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 21;
const SAMPLED: u8 = 1;
const REMOVED: u8 = 2;
/// Bytes of a `sampled` record.
pub const SAMPLED_LEN: usize = 23;
const REMOVED_LEN: usize = 13;

/// The identity the spool keeps and the reports it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The agent's instance.
    pub instance: u64,
    /// The SEQUENCE its next report gets: above every one it used.
    pub next_seq: u32,
    /// Reports taken and not acknowledged, oldest first.
    pub pending: Vec<Pending>,
    /// Bytes of the file that hold whole records (a torn last record lies beyond).
    pub valid_len: usize,
}

/// Why a spool file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// It does not start with the spool header.
    NotASpool,
    /// It was written by a version of avpd with another layout.
    Version(u8),
    /// A record has a tag this layout does not know.
    BadRecord {
        /// Where the record starts.
        offset: usize,
    },
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::NotASpool => f.write_str("not an avpd agent spool"),
            FormatError::Version(v) => {
                write!(f, "spool layout version {v}; this avpd reads {VERSION}")
            }
            FormatError::BadRecord { offset } => write!(f, "unreadable record at byte {offset}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// Appends a header.
pub fn header(instance: u64, next_seq: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&instance.to_be_bytes());
    out.extend_from_slice(&next_seq.to_be_bytes());
}

/// Appends a `sampled` record.
pub fn sampled(p: &Pending, out: &mut Vec<u8>) {
    out.push(SAMPLED);
    out.extend_from_slice(&p.instance.to_be_bytes());
    out.extend_from_slice(&p.seq.to_be_bytes());
    out.push(p.sample.cpu_percent);
    out.push(p.sample.mem_percent);
    out.extend_from_slice(&p.sample.timestamp_ms.to_be_bytes());
}

/// Appends a `removed` record.
pub fn removed(instance: u64, seq: u32, out: &mut Vec<u8>) {
    out.push(REMOVED);
    out.extend_from_slice(&instance.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Reads a whole spool file.
pub fn read(bytes: &[u8]) -> Result<Restored, FormatError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(FormatError::NotASpool);
    }
    if bytes[8] != VERSION {
        return Err(FormatError::Version(bytes[8]));
    }
    let mut instance = u64_at(bytes, 9);
    let mut next_seq = u32_at(bytes, 17);
    // Keyed by the order of appearance, so the pending reports come back oldest first.
    let mut order: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut index: std::collections::HashMap<(u64, u32), u64> = Default::default();
    let mut pos = HEADER_LEN;
    let mut n = 0u64;
    while pos < bytes.len() {
        let (len, tag) = match bytes[pos] {
            SAMPLED => (SAMPLED_LEN, SAMPLED),
            REMOVED => (REMOVED_LEN, REMOVED),
            _ => return Err(FormatError::BadRecord { offset: pos }),
        };
        if pos + len > bytes.len() {
            break;
        }
        let r = &bytes[pos..pos + len];
        let key = (u64_at(r, 1), u32_at(r, 9));
        if tag == SAMPLED {
            let p = Pending {
                instance: key.0,
                seq: key.1,
                sample: HostSample {
                    cpu_percent: r[13],
                    mem_percent: r[14],
                    timestamp_ms: u64_at(r, 15),
                },
            };
            if p.instance == instance.wrapping_add(1) {
                instance = p.instance;
                next_seq = 1;
            }
            if p.instance == instance {
                next_seq = next_seq.max(p.seq.saturating_add(1));
            }
            if let Some(old) = index.insert(key, n) {
                order.remove(&old);
            }
            order.insert(n, p);
            n += 1;
        } else if let Some(at) = index.remove(&key) {
            order.remove(&at);
        }
        pos += len;
    }
    Ok(Restored {
        instance,
        next_seq,
        pending: order.into_values().collect(),
        valid_len: pos,
    })
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(instance: u64, seq: u32) -> Pending {
        Pending {
            instance,
            seq,
            sample: HostSample {
                cpu_percent: seq as u8,
                mem_percent: 7,
                timestamp_ms: 1_700_000_000_000 + u64::from(seq),
            },
        }
    }

    #[test]
    fn pending_reports_and_the_next_sequence_come_back() {
        let mut file = Vec::new();
        header(42, 10, &mut file);
        for seq in 10..15 {
            sampled(&p(42, seq), &mut file);
        }
        removed(42, 10, &mut file);
        removed(42, 12, &mut file);
        removed(42, 99, &mut file);
        let r = read(&file).unwrap();
        assert_eq!(r.instance, 42);
        assert_eq!(r.next_seq, 15);
        assert_eq!(r.pending, vec![p(42, 11), p(42, 13), p(42, 14)]);
        assert_eq!(r.valid_len, file.len());
    }

    #[test]
    fn reports_of_an_earlier_instance_are_kept_but_do_not_move_the_sequence() {
        let mut file = Vec::new();
        header(2, 1, &mut file);
        sampled(&p(1, 900), &mut file);
        sampled(&p(2, 1), &mut file);
        let r = read(&file).unwrap();
        assert_eq!(r.next_seq, 2);
        assert_eq!(r.pending, vec![p(1, 900), p(2, 1)]);
    }

    #[test]
    fn a_report_of_the_next_instance_makes_it_current() {
        let mut file = Vec::new();
        header(2, u32::MAX, &mut file);
        sampled(&p(2, u32::MAX - 1), &mut file);
        sampled(&p(3, 1), &mut file);
        let r = read(&file).unwrap();
        assert_eq!((r.instance, r.next_seq), (3, 2));
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let mut file = Vec::new();
        header(1, 1, &mut file);
        sampled(&p(1, 1), &mut file);
        let whole = file.len();
        sampled(&p(1, 2), &mut file);
        file.truncate(file.len() - 5);
        let r = read(&file).unwrap();
        assert_eq!(r.pending, vec![p(1, 1)]);
        assert_eq!(r.valid_len, whole);
    }

    #[test]
    fn foreign_files_are_refused() {
        assert_eq!(read(b"hello"), Err(FormatError::NotASpool));
        let mut file = Vec::new();
        header(1, 1, &mut file);
        file[8] = 9;
        assert_eq!(read(&file), Err(FormatError::Version(9)));
        file[8] = VERSION;
        file.push(7);
        assert_eq!(
            read(&file),
            Err(FormatError::BadRecord { offset: HEADER_LEN })
        );
    }
}
