//! A program under test: started with piped stdio, its output lines collected as they come.

use crate::WAIT;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running program whose stdout and stderr lines are collected as they come.
pub struct Program {
    /// The process.
    pub child: Child,
    /// Its stdin, until the test closes it.
    pub stdin: Option<ChildStdin>,
    /// Its stdout lines.
    pub stdout: Lines,
    /// Its stderr lines.
    pub stderr: Lines,
}

/// The lines of one output stream, and everything seen so far for failure messages.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line read so far.
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

impl Program {
    /// Starts `exe ARGS` with debug logging and piped stdin, stdout and stderr.
    pub fn start(exe: &str, args: &[&str]) -> Program {
        let mut command = Command::new(exe);
        command.args(args).env("RUST_LOG", "debug");
        Program::spawn(command)
    }

    /// Starts `command` (its program, arguments and environment as set) with piped stdin,
    /// stdout and stderr. An error it exits with is printed without a backtrace, so that the
    /// lines a failing test shows are the log and the error.
    pub fn spawn(mut command: Command) -> Program {
        let mut child = command
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let stdout = Lines::spawn(child.stdout.take().unwrap(), "stdout");
        let stderr = Lines::spawn(child.stderr.take().unwrap(), "stderr");
        Program {
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
        self.signal("TERM");
    }

    /// Sends the signal `name` (`HUP`, `TERM`...).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
                "the program did not exit; stderr:\n{}",
                self.stderr.tail()
            );
            // Polling a child's exit has no event to wait on; this is not synchronisation.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Program {
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
