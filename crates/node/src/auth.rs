//! Agent keys: the key file, its reloading, the node-wide replay ledger, and the [`Verifier`]
//! each worker hands its sessions.
//!
//! The key file is TOML, one `"node-id" = "secret"` per line. [`AgentKeys`] holds its current
//! contents and the ledger of SEQUENCEs (shared by every worker, so that a report replayed on
//! another connection is still a replay); [`AgentKeys::reload`] reads the file again, and
//! [`AgentKeys::reload_if_changed`] does when its modification time moved (the status thread
//! polls it). Workers never read the file: each keeps a [`WorkerVerifier`] holding a snapshot
//! of the keys, refreshed when the generation changes. The rules themselves live in
//! [`avp_proto::auth`].

use crate::loglimit::LogLimit;
use avp_proto::auth::{AuthFailure, Key, Marks, NodeKey, Verifier};
use avp_proto::Attribute;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Why a key file could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    Read(PathBuf, std::io::Error),
    /// The file is not TOML.
    Toml(PathBuf, toml::de::Error),
    /// A node's secret is not a string.
    NotAString(PathBuf, String),
    /// A node's secret is empty.
    EmptySecret(PathBuf, String),
    /// A node id is not a valid NODE_ID (1 to 255 bytes, no control character).
    BadNodeId(PathBuf, String),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Read(p, e) => write!(f, "cannot read key file {}: {e}", p.display()),
            KeyFileError::Toml(p, e) => write!(f, "key file {} is not TOML: {e}", p.display()),
            KeyFileError::NotAString(p, n) => write!(
                f,
                "key file {}: the secret of {n:?} must be a string (\"node-id\" = \"secret\")",
                p.display()
            ),
            KeyFileError::EmptySecret(p, n) => {
                write!(f, "key file {}: the secret of {n:?} is empty", p.display())
            }
            KeyFileError::BadNodeId(p, n) => write!(
                f,
                "key file {}: {n:?} is not a NODE_ID (1 to 255 bytes of printable text)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// One node's replay marks, shared by every worker.
type SharedMarks = Arc<Mutex<Marks>>;

/// The keys of one version of the key file, each with its node's replay marks.
#[derive(Debug, Default)]
pub struct KeyRing {
    /// Fx hashing: the map is the operator's; a peer's NODE_ID only looks up in it. The
    /// number is the node's slot in `marks`.
    keys: FxHashMap<Box<str>, (Key, usize)>,
    marks: Vec<SharedMarks>,
}

impl KeyRing {
    /// Reads `text`, the contents of the key file at `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<KeyRing, KeyFileError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| KeyFileError::Toml(path.into(), e))?;
        let mut keys = FxHashMap::with_capacity_and_hasher(table.len(), FxBuildHasher);
        let mut marks = Vec::with_capacity(table.len());
        for (node, secret) in table {
            if !Attribute::NodeId.allows_text(&node) {
                return Err(KeyFileError::BadNodeId(path.into(), node));
            }
            let toml::Value::String(secret) = secret else {
                return Err(KeyFileError::NotAString(path.into(), node));
            };
            if secret.is_empty() {
                return Err(KeyFileError::EmptySecret(path.into(), node));
            }
            keys.insert(
                node.into_boxed_str(),
                (Key::new(secret.as_bytes()), marks.len()),
            );
            marks.push(SharedMarks::default());
        }
        Ok(KeyRing { keys, marks })
    }

    /// Reads the key file at `path`.
    pub fn read(path: &Path) -> Result<KeyRing, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::Read(path.into(), e))?;
        KeyRing::parse(path, &text)
    }

    /// How many nodes have a key.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no node has a key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The agent keys of a node: the key file's current contents, the replay ledger (every
/// node's [`Marks`]), and the TIMESTAMP window. Shared by every worker.
#[derive(Debug)]
pub struct AgentKeys {
    path: PathBuf,
    window: Duration,
    current: RwLock<Arc<KeyRing>>,
    /// Bumped by every successful reload, so that workers know to take the new keys.
    generation: AtomicU64,
    /// The key file's modification time when it was last read. Its lock is held through a
    /// reload, so that reloads (on SIGHUP and on a change) take turns and the keys in use are
    /// always those of the time recorded.
    last_read: Mutex<Option<SystemTime>>,
    /// The marks of every node that has had a key, kept across reloads (a key removed and
    /// given back does not make old reports new); a key ring shares its nodes' marks. It grows
    /// only with the names the key files give, which the operator writes, not the peers.
    ledger: Mutex<FxHashMap<Box<str>, SharedMarks>>,
}

impl AgentKeys {
    /// Reads the key file at `path`; reports' TIMESTAMPs must be within `window` of the node's
    /// clock.
    pub fn load(path: impl Into<PathBuf>, window: Duration) -> Result<AgentKeys, KeyFileError> {
        let path = path.into();
        let modified = modified(&path);
        let mut ring = KeyRing::read(&path)?;
        let ledger = Mutex::default();
        adopt_marks(&ledger, &mut ring);
        Ok(AgentKeys {
            path,
            window,
            current: RwLock::new(Arc::new(ring)),
            generation: AtomicU64::new(0),
            last_read: Mutex::new(modified),
            ledger,
        })
    }

    /// How far a report's TIMESTAMP may be from the node's clock, as loaded; each worker's
    /// [`WorkerVerifier::set_window`] changes its own.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The keys now.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the key file again and uses it from now on; returns how many nodes have a key.
    /// On error the keys in use stay as they were. The ledger is kept: a rotated key does not
    /// make old reports new.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let mut last_read = self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.reload_into(&mut last_read)
    }

    /// Reloads the key file when its modification time changed since it was last read;
    /// returns the number of keys when it did.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, KeyFileError> {
        let mut last_read = self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *last_read == modified(&self.path) {
            return Ok(None);
        }
        self.reload_into(&mut last_read).map(Some)
    }

    /// [`AgentKeys::reload`], holding the lock on `last_read` (the file's modification time
    /// when it was last read), which it updates.
    fn reload_into(&self, last_read: &mut Option<SystemTime>) -> Result<usize, KeyFileError> {
        let stamp = modified(&self.path);
        let mut ring = KeyRing::read(&self.path)?;
        adopt_marks(&self.ledger, &mut ring);
        let n = ring.len();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        *last_read = stamp;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(n)
    }

    /// Polls the key file (see [`AgentKeys::reload_if_changed`]) and logs what became of it.
    pub fn poll(&self) {
        match self.reload_if_changed() {
            Ok(None) => {}
            Ok(Some(n)) => tracing::info!("agent keys reloaded: {n} nodes have a key"),
            Err(e) => tracing::error!("agent keys not reloaded, the previous ones stay: {e}"),
        }
    }
}

/// Gives `ring`'s nodes the marks `ledger` holds for them, and `ledger` the marks of the
/// nodes it had none for.
fn adopt_marks(ledger: &Mutex<FxHashMap<Box<str>, SharedMarks>>, ring: &mut KeyRing) {
    let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
    for (node, (_, slot)) in &ring.keys {
        let kept = ledger
            .entry(node.clone())
            .or_insert_with(|| ring.marks[*slot].clone());
        ring.marks[*slot] = kept.clone();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The file's modification time, `None` when it cannot be read (then the next poll retries).
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A worker's view of the agent keys: a snapshot of the key ring, the loop's clock, and the
/// shared ledger. Call [`WorkerVerifier::refresh`] once per loop iteration.
#[derive(Debug)]
pub struct WorkerVerifier {
    shared: Arc<AgentKeys>,
    keys: Arc<KeyRing>,
    generation: u64,
    now: Instant,
    now_ms: u64,
    window_ms: u64,
    log: LogLimit,
}

impl WorkerVerifier {
    /// A verifier over `shared`.
    pub fn new(shared: Arc<AgentKeys>) -> WorkerVerifier {
        let generation = shared.generation.load(Ordering::Acquire);
        WorkerVerifier {
            keys: shared.keys(),
            window_ms: millis(shared.window),
            shared,
            generation,
            now: Instant::now(),
            now_ms: 0,
            log: LogLimit::default(),
        }
    }

    /// Sets the clock to `now` and `now_ms` (ms since the Unix epoch) and takes reloaded keys.
    pub fn refresh(&mut self, now: Instant, now_ms: u64) {
        self.now = now;
        self.now_ms = now_ms;
        self.log.flush(now);
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.keys = self.shared.keys();
            self.generation = generation;
        }
    }
}

impl WorkerVerifier {
    /// The marks at `slot` of the keys in use, locked.
    fn marks(&self, slot: usize) -> Option<std::sync::MutexGuard<'_, Marks>> {
        let marks = self.keys.marks.get(slot)?;
        Some(marks.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes reports whose TIMESTAMP is within `window` of the node's clock from now on.
    pub fn set_window(&mut self, window: Duration) {
        self.window_ms = millis(window);
    }

    /// Logs that a report from `peer` failed authentication, within the log limit.
    pub fn log_failure(&mut self, peer: SocketAddr, failure: AuthFailure) {
        if self.log.allow(self.now) {
            tracing::info!(%peer, "report refused (401): {failure}");
        }
    }
}

impl Verifier for WorkerVerifier {
    #[inline]
    fn key(&self, node_id: &str) -> Option<NodeKey<'_>> {
        let (key, slot) = self.keys.keys.get(node_id)?;
        Some(NodeKey { key, slot: *slot })
    }

    #[inline]
    fn generation(&self) -> u64 {
        self.generation
    }

    #[inline]
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    #[inline]
    fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// False for a slot that is not one of the keys in use.
    #[inline]
    fn advance(&mut self, slot: usize, instance: Option<u64>, sequence: u64) -> bool {
        self.marks(slot)
            .is_some_and(|mut m| m.advance(instance, sequence))
    }

    fn withdraw(&mut self, slot: usize, instance: Option<u64>, sequence: u64) {
        if let Some(mut m) = self.marks(slot) {
            m.withdraw(instance, sequence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_toml_strings_of_printable_names() {
        let p = Path::new("keys.toml");
        let ring = KeyRing::parse(p, "\"ws-1\" = \"a\"\nws-2 = \"b\"\n").unwrap();
        assert_eq!(ring.len(), 2);
        let err = |text: &str| KeyRing::parse(p, text).unwrap_err().to_string();
        assert!(err("ws-1 = 5").contains("must be a string"));
        assert!(err("ws-1 = \"\"").contains("is empty"));
        assert!(err("\"ws\\u001b\" = \"x\"").contains("not a NODE_ID"));
        assert!(err("ws-1 = ").contains("not TOML"));
    }

    #[test]
    fn a_changed_file_is_reloaded_and_workers_take_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, "ws-1 = \"a\"\n").unwrap();
        let keys = Arc::new(AgentKeys::load(&path, Duration::from_secs(60)).unwrap());
        let mut v = WorkerVerifier::new(keys.clone());
        assert!(v.key("ws-1").is_some() && v.key("ws-2").is_none());
        let slot = |v: &WorkerVerifier, node: &str| v.key(node).expect("a key").slot;
        assert!(v.advance(slot(&v, "ws-1"), None, 1));
        assert_eq!(keys.reload_if_changed().unwrap(), None);
        std::fs::write(&path, "ws-2 = \"b\"\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        v.refresh(Instant::now(), 5);
        assert!(v.key("ws-1").is_none() && v.key("ws-2").is_some());
        std::fs::write(&path, "not toml =").unwrap();
        assert!(keys.reload().is_err());
        v.refresh(Instant::now(), 6);
        assert!(v.key("ws-2").is_some(), "a bad file keeps the keys in use");
        assert!(v.advance(slot(&v, "ws-2"), None, 3));
        let mut other = WorkerVerifier::new(keys.clone());
        let in_other = slot(&other, "ws-2");
        assert!(
            !other.advance(in_other, None, 3),
            "the ledger is the node's"
        );
        std::fs::write(&path, "ws-2 = \"b\"\nws-1 = \"a\"\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 2);
        v.refresh(Instant::now(), 7);
        assert!(
            !v.advance(slot(&v, "ws-1"), None, 1),
            "a key taken away and given back keeps its marks"
        );
        assert!(!v.advance(slot(&v, "ws-2"), None, 3), "a reload keeps them");
        assert!(v.advance(slot(&v, "ws-2"), None, 4));
        assert!(
            v.advance(slot(&v, "ws-1"), None, 2),
            "each node has marks of its own"
        );
    }
}
