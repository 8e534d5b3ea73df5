//! Log lines of every subcommand that logs: text without colour codes when stderr is not a
//! terminal, colour on a terminal unless NO_COLOR is set, and one JSON object per line with
//! `--log-format json`.

mod client_support;

use avp_proto::{Codec, Message};
use client_support::{accept, avpd, listener, Lines, Program, WAIT};

/// A subcommand run from start to exit with a peer played by the test.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// `avpd serve` on port 0, stopped with SIGTERM.
    Serve,
    /// `avpd agent --count 1` reporting to the test.
    Agent,
    /// `avpd term --plain` watching the test, stopped with SIGTERM.
    Term,
}

impl Run {
    const ALL: [Run; 3] = [Run::Serve, Run::Agent, Run::Term];

    /// A message this run always logs.
    fn expected(self) -> &'static str {
        match self {
            Run::Serve => "listening on",
            Run::Agent => "agent stopped:",
            Run::Term => ": connected",
        }
    }

    /// Runs the subcommand with `global` options before it and `local` ones after its name,
    /// through `start` (which spawns `avpd ARGS`), and returns every line it wrote to the
    /// stream `output` picks, once it has exited.
    fn lines(
        self,
        global: &[&str],
        local: &[&str],
        start: impl FnOnce(&[&str]) -> Program,
        output: fn(&mut Program) -> &mut Lines,
    ) -> Vec<String> {
        let (l, addr) = listener();
        let collector = format!("tcp://{addr}");
        let mut args = global.to_vec();
        match self {
            Run::Serve => args.extend([
                "serve",
                "--no-admin",
                "--workers",
                "1",
                "--listen",
                "tcp://127.0.0.1:0",
            ]),
            Run::Agent => args.extend([
                "agent",
                "--collector",
                &collector,
                "--interval",
                "50ms",
                "--count",
                "1",
                "--node-id",
                "logs",
            ]),
            Run::Term => args.extend(["term", "--plain", "--connect", &collector]),
        }
        args.extend_from_slice(local);
        let mut program = start(&args);
        match self {
            Run::Serve => {
                output(&mut program).wait_contains(self.expected());
                program.terminate();
            }
            Run::Term => {
                // The connection must be up before the terminal can log it.
                let _peer = accept(&l, Codec::Binary);
                output(&mut program).wait_contains(self.expected());
                program.terminate();
            }
            Run::Agent => {
                let mut peer = accept(&l, Codec::Binary);
                let report = peer.expect();
                peer.send_msg(&Message::ack(report.sequence));
            }
        }
        let code = program.wait_exit();
        if let Run::Agent = self {
            assert_eq!(code, 0, "{}", program.stderr.tail());
        }
        let lines = output(&mut program);
        while lines.next_within(WAIT).is_some() {}
        let seen = lines.seen.clone();
        assert!(
            seen.iter().any(|l| l.contains(self.expected())),
            "{self:?} never logged {:?}:\n{}",
            self.expected(),
            seen.join("\n")
        );
        seen
    }

    /// Every stderr line of this run of `avpd GLOBAL SUBCOMMAND … LOCAL`.
    fn stderr(self, global: &[&str], local: &[&str]) -> Vec<String> {
        self.lines(global, local, avpd, |p| &mut p.stderr)
    }

    /// Every line this run wrote to a terminal (a pseudo-terminal from `script`), with
    /// `env` set, stdout and stderr together.
    fn on_terminal(self, env: &str, global: &[&str]) -> Vec<String> {
        self.lines(
            global,
            &[],
            |args| {
                let command = format!(
                    "env {env} '{}' {}",
                    env!("CARGO_BIN_EXE_avpd"),
                    args.join(" ")
                );
                Program::start(
                    "script",
                    &["--quiet", "--return", "--command", &command, "/dev/null"],
                )
            },
            |p| &mut p.stdout,
        )
    }
}

fn has_escape(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains('\x1b'))
}

#[test]
fn text_lines_carry_no_colour_when_stderr_is_not_a_terminal() {
    for run in Run::ALL {
        let lines = run.stderr(&[], &[]);
        assert!(!has_escape(&lines), "{run:?}:\n{}", lines.join("\n"));
    }
}

#[test]
fn json_lines_are_objects_with_level_and_message() {
    for run in Run::ALL {
        // The option is global: it works before and after the subcommand's name.
        for (global, local) in [
            (&["--log-format", "json"][..], &[][..]),
            (&[][..], &["--log-format", "json"][..]),
        ] {
            let lines = run.stderr(global, local);
            for line in &lines {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{run:?}: not JSON ({e}): {line}"));
                assert!(value["level"].is_string(), "{run:?}: no level: {line}");
                assert!(value["message"].is_string(), "{run:?}: no message: {line}");
            }
        }
    }
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let coloured = Run::Agent.on_terminal("NO_COLOR=", &[]);
    assert!(has_escape(&coloured), "{}", coloured.join("\n"));
    let plain = Run::Agent.on_terminal("NO_COLOR=1", &[]);
    assert!(!has_escape(&plain), "{}", plain.join("\n"));
    let json = Run::Agent.on_terminal("NO_COLOR=", &["--log-format", "json"]);
    assert!(!has_escape(&json), "{}", json.join("\n"));
}
