//! The files a run is asked to write, checked before the run starts, so that a typo in a path
//! or a format costs nothing rather than the run.

use crate::error::Error;
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// What an output file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A JSON report (`--json`).
    Json,
    /// A self-contained HTML page (`--html`).
    Html,
    /// A `.hgrm` percentile distribution (`--hgrm`).
    Hgrm,
    /// An HdrHistogram interval log (`--hlog`).
    Hlog,
    /// A plot, `.svg` or `.png` (`--plot`).
    Plot,
}

/// Checks that every file in `outputs` can be written, that no file is asked for twice and
/// that plots have a format and a font; nothing is left behind that was not there before.
pub fn check(outputs: &[(&Path, Output)]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for (path, kind) in outputs {
        let bad = |reason: &str| Error::Output {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        if !seen.insert(path.to_path_buf()) {
            return Err(bad("named for two outputs"));
        }
        if *kind == Output::Plot {
            crate::plot::format_of(path)?;
            crate::plot::ensure_font().map_err(|reason| Error::Plot {
                path: path.to_path_buf(),
                reason,
            })?;
        }
        if path.is_dir() {
            return Err(bad("is a directory"));
        }
        writable(path)?;
    }
    Ok(())
}

/// Opens `path` for writing without changing it, creating it only for the moment of the check.
fn writable(path: &Path) -> Result<(), Error> {
    let existed = path.exists();
    let failed = |source| Error::File {
        path: PathBuf::from(path),
        source,
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(failed)?;
    if !existed {
        std::fs::remove_file(path).map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_paths_and_formats_are_refused_and_good_ones_left_untouched() {
        let dir = std::env::temp_dir().join(format!("avp-loadgen-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kept = dir.join("kept.json");
        std::fs::write(&kept, "old").unwrap();
        let new = dir.join("new.html");
        check(&[(&kept, Output::Json), (&new, Output::Html)]).unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old");
        assert!(!new.exists(), "the check leaves nothing behind");
        let missing = dir.join("no/such/dir/x.json");
        assert!(matches!(
            check(&[(&missing, Output::Json)]),
            Err(Error::File { .. })
        ));
        let gif = dir.join("x.gif");
        assert!(matches!(
            check(&[(&gif, Output::Plot)]),
            Err(Error::Plot { .. })
        ));
        assert!(matches!(
            check(&[(&kept, Output::Json), (&kept, Output::Hlog)]),
            Err(Error::Output { .. })
        ));
        assert!(matches!(
            check(&[(&dir, Output::Json)]),
            Err(Error::Output { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
