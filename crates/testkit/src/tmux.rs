//! A full-screen program checked as a person would see it: run under tmux (on a server socket
//! of its own), typed at with `send-keys`, read with `capture-pane -p`. Needs tmux installed.

use crate::WAIT;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A tmux session that is killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached 130x30 session.
    pub fn start(command: &str) -> Tmux {
        Tmux::start_sized(command, 130, 30)
    }

    /// Starts `command` in a detached session of `width` x `height` cells.
    pub fn start_sized(command: &str, width: u16, height: u16) -> Tmux {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "avpd-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status()
            .expect("tmux must be installed (apt-get install -y tmux)")
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux { socket }
    }

    /// The name of the session's server socket (`tmux -L NAME`), for commands run inside it.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// What the screen shows now.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", &self.socket, "send-keys"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(args).status().unwrap().success());
    }

    /// Waits until the screen satisfies `ok`; returns it.
    pub fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{screen}"
            );
            // The screen has no event to wait on: look again shortly.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to [`WAIT`]) until a command in the session runs
    /// `tmux -L <socket> wait-for -S <channel>`.
    pub fn wait_for(&self, channel: &str) {
        let mut child = Command::new("tmux")
            .args(["-L", &self.socket, "wait-for", channel])
            .spawn()
            .expect("tmux wait-for");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("tmux wait-for") {
                assert!(status.success(), "tmux wait-for {channel} failed");
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("no signal on {channel} within {WAIT:?}:\n{}", self.screen());
            }
            // Polling a child's exit has no event to wait on; this is not synchronisation.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
