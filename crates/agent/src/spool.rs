//! The agent's spool (`--spool PATH`): the unacknowledged reports and the agent's instance,
//! on disk, so that a restarted agent sends again what the collector never acknowledged and
//! goes on numbering where it stopped.
//!
//! Every report is written to the spool and synced (`fdatasync`) before it is sent, so a
//! report the collector may have seen is on disk first. Acknowledgements are written without
//! a sync: after a crash the last ones may be missing, and those reports are sent again, which
//! the collector recognises as resends (same NODE_ID, INSTANCE and SEQUENCE). The file only
//! grows by appending; once it holds many more records than reports pending, it is rewritten
//! (to a temporary file, synced, renamed over the old one). The layout is in [`record`].

pub mod record;

use crate::queue::Pending;
use record::{FormatError, Restored};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Records appended beyond those pending before the file is rewritten.
const REWRITE_AFTER: usize = 4096;

/// Why the spool cannot be used.
#[derive(Debug)]
pub enum SpoolError {
    /// The file could not be read, written or synced.
    Io {
        /// The spool file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a spool this version reads.
    Format {
        /// The spool file.
        path: PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Io { path, source } => write!(f, "spool {}: {source}", path.display()),
            SpoolError::Format { path, source } => {
                write!(f, "spool {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            SpoolError::Format { source, .. } => Some(source),
        }
    }
}

/// The open spool file.
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Records in the file beyond its header.
    records: usize,
    scratch: Vec<u8>,
}

impl Spool {
    /// Opens the spool at `path`, creating it (with `new_instance` as the agent's instance)
    /// when there is none, and returns it with what it held.
    pub fn open(path: &Path, new_instance: u64) -> Result<(Spool, Restored), SpoolError> {
        let io_err = |source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        };
        let restored = match std::fs::read(path) {
            Ok(bytes) => record::read(&bytes).map_err(|source| SpoolError::Format {
                path: path.to_path_buf(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Restored {
                instance: new_instance,
                next_seq: 1,
                pending: Vec::new(),
                valid_len: 0,
            },
            Err(e) => return Err(io_err(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        let mut spool = Spool {
            path: path.to_path_buf(),
            file,
            records: 0,
            scratch: Vec::new(),
        };
        // Start from a clean file: the pending reports only, a torn record gone.
        spool.rewrite(restored.instance, restored.next_seq, &restored.pending)?;
        Ok((spool, restored))
    }

    /// Writes newly taken reports and syncs them to disk; call before sending them.
    pub fn sampled(&mut self, reports: &[Pending]) -> Result<(), SpoolError> {
        if reports.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        for p in reports {
            record::sampled(p, &mut self.scratch);
        }
        self.append(reports.len())?;
        self.file.sync_data().map_err(|e| self.io_err(e))
    }

    /// Writes that reports left the buffer (acknowledged or dropped), without a sync.
    ///
    /// `state` gives the agent's state after it (the instance and SEQUENCE of its next
    /// report, the reports in its buffer), asked for when the file is due for a rewrite.
    pub fn removed(
        &mut self,
        removed: &[(u64, u32)],
        state: impl FnOnce() -> ((u64, u32), Vec<Pending>),
    ) -> Result<(), SpoolError> {
        if removed.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        for &(instance, seq) in removed {
            record::removed(instance, seq, &mut self.scratch);
        }
        self.append(removed.len())?;
        if self.records > REWRITE_AFTER {
            let ((instance, next_seq), pending) = state();
            if self.records > pending.len() + REWRITE_AFTER {
                self.rewrite(instance, next_seq, &pending)?;
            }
        }
        Ok(())
    }

    /// Appends the `records` encoded in the scratch buffer.
    fn append(&mut self, records: usize) -> Result<(), SpoolError> {
        self.file
            .write_all(&self.scratch)
            .map_err(|e| self.io_err(e))?;
        self.records += records;
        Ok(())
    }

    /// Replaces the file by one holding `pending` only, through a synced temporary file.
    fn rewrite(
        &mut self,
        instance: u64,
        next_seq: u32,
        pending: &[Pending],
    ) -> Result<(), SpoolError> {
        let mut bytes =
            Vec::with_capacity(record::HEADER_LEN + record::SAMPLED_LEN * pending.len());
        record::header(instance, next_seq, &mut bytes);
        for p in pending {
            record::sampled(p, &mut bytes);
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            OpenOptions::new().append(true).open(&self.path)
        };
        self.file = write().map_err(|e| self.io_err(e))?;
        self.records = pending.len();
        Ok(())
    }

    fn io_err(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::HostSample;

    fn p(seq: u32) -> Pending {
        Pending {
            instance: 5,
            seq,
            sample: HostSample {
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: 3,
            },
        }
    }

    #[test]
    fn reports_survive_a_reopen_and_the_instance_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (mut spool, first) = Spool::open(&path, 5).unwrap();
        assert_eq!((first.instance, first.next_seq), (5, 1));
        assert!(first.pending.is_empty());
        spool.sampled(&[p(1), p(2), p(3)]).unwrap();
        spool
            .removed(&[(5, 2)], || ((5, 4), vec![p(1), p(3)]))
            .unwrap();
        drop(spool);
        let (_, again) = Spool::open(&path, 77).unwrap();
        assert_eq!(again.instance, 5, "the instance comes from the file");
        assert_eq!((again.next_seq, again.pending), (4, vec![p(1), p(3)]));
    }

    #[test]
    fn the_file_is_rewritten_once_it_holds_many_more_records_than_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (mut spool, _) = Spool::open(&path, 5).unwrap();
        // In batches: each one is synced.
        for batch in (1..=REWRITE_AFTER as u32).collect::<Vec<_>>().chunks(256) {
            let taken: Vec<Pending> = batch.iter().map(|&seq| p(seq)).collect();
            spool.sampled(&taken).unwrap();
            let gone: Vec<(u64, u32)> = batch.iter().map(|&seq| (5, seq)).collect();
            let next = batch[batch.len() - 1] + 1;
            spool.removed(&gone, || ((5, next), vec![])).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(
            len < record::SAMPLED_LEN * REWRITE_AFTER,
            "rewritten: {len} bytes"
        );
        drop(spool);
        let (_, r) = Spool::open(&path, 0).unwrap();
        assert_eq!(
            r.next_seq,
            REWRITE_AFTER as u32 + 1,
            "the sequence survives a rewrite"
        );
        assert!(r.pending.is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_spool_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "shopping list").unwrap();
        let err = Spool::open(&path, 1).err().expect("refused");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert!(err.to_string().contains("not an avpd agent spool"), "{err}");
    }
}
