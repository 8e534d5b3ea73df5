//! Helpers for the client-program tests (`agent_*`, `term_*`, `fleet_*`): run `avpd` and wait
//! for lines of its output, and speak the protocol from a test thread through the library's
//! own codec. Every wait has a deadline; nothing sleeps to synchronise.
#![allow(dead_code)] // each test file uses its own subset

use avpd::proto::{Body, Codec, Decoded, Message, Report, Status};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the CI machine is a busy 2-core box.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running `avpd` whose stdout and stderr lines are collected as they come.
pub struct Avpd {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Lines,
    pub stderr: Lines,
}

/// The lines of one output stream, and everything seen so far for failure messages.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
    name: &'static str,
}

impl Lines {
    fn spawn(reader: impl Read + Send + 'static, name: &'static str) -> Lines {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            name,
        }
    }

    /// The next line within `timeout`, or `None` (at the deadline or at end of stream).
    pub fn next_within(&mut self, timeout: Duration) -> Option<String> {
        match self.rx.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the first line for which `f` returns `Some`, panicking after [`WAIT`].
    pub fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.next_within(left) else {
                panic!(
                    "no {} line {what} within {WAIT:?}; last lines:\n{}",
                    self.name,
                    self.tail()
                );
            };
            if let Some(v) = f(&line) {
                return v;
            }
        }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_contains(&mut self, needle: &str) -> String {
        self.wait_for(&format!("containing {needle:?}"), |l| {
            l.contains(needle).then(|| l.to_string())
        })
    }

    /// The last 40 lines seen.
    pub fn tail(&self) -> String {
        let start = self.seen.len().saturating_sub(40);
        self.seen[start..].join("\n")
    }
}

impl Avpd {
    /// Starts `avpd ARGS` with debug logging and piped stdin, stdout and stderr.
    pub fn start(args: &[&str]) -> Avpd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_avpd"))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start avpd");
        let stdout = Lines::spawn(child.stdout.take().unwrap(), "stdout");
        let stderr = Lines::spawn(child.stderr.take().unwrap(), "stderr");
        Avpd {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Writes one line to the program's stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().unwrap();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (up to [`WAIT`]) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "avpd did not exit; stderr:\n{}",
                self.stderr.tail()
            );
            // Polling a child's exit has no event to wait on; this is not synchronisation.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Avpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a `key=value` line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    line[start..].split_whitespace().next()
}

/// One protocol peer over a test socket, framing through the library's codec.
pub struct Peer {
    pub stream: TcpStream,
    codec: Codec,
    buf: Vec<u8>,
}

impl Peer {
    /// Wraps an accepted or connected stream.
    pub fn new(stream: TcpStream, codec: Codec) -> Peer {
        stream.set_nodelay(true).unwrap();
        Peer {
            stream,
            codec,
            buf: Vec::new(),
        }
    }

    /// Encodes and writes `msg`.
    pub fn send(&mut self, msg: &Message<'_>) {
        let mut out = Vec::new();
        self.codec.encode(msg, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// The next message, or `None` at end of stream or after `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Message<'static>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Status::Complete((decoded, used)) =
                self.codec.decode(&self.buf).expect("valid framing")
            {
                let msg = match decoded {
                    Decoded::Message(m) => m.into_owned(),
                    Decoded::Invalid(e) => panic!("invalid message from avpd: {e}"),
                };
                self.buf.drain(..used);
                return Some(msg);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next message, panicking after [`WAIT`].
    pub fn recv(&mut self) -> Message<'static> {
        self.recv_within(WAIT).expect("a message from avpd")
    }
}

/// A STAT_REPORT as a node pushes it to a terminal.
pub fn report(seq: u64, node: &str, cpu: u8, mem: u8, ts: u64) -> Message<'static> {
    Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            cpu_percent: cpu,
            mem_percent: mem,
            timestamp_ms: Some(ts),
            node_id: Some(node.to_string().into()),
        }),
    }
}

/// A listener on an ephemeral loopback port, and its `HOST:PORT`.
pub fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, format!("127.0.0.1:{port}"))
}

/// Accepts the next connection on `l` as a test peer speaking `codec`.
pub fn accept(l: &TcpListener, codec: Codec) -> Peer {
    Peer::new(l.accept().unwrap().0, codec)
}
