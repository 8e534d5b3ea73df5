use super::*;
use crate::{Cli, Command as Sub, Invocation, Parsed};
use clap::CommandFactory;

/// `avpd` with its subcommands built (global options propagated).
fn avpd() -> Command {
    let mut command = Cli::command();
    command.build();
    command
}

/// The keys of subcommand `name`.
fn keys(name: &str) -> Vec<String> {
    let command = avpd();
    let sub = command.find_subcommand(name).unwrap();
    effective(sub, &sub.clone().get_matches_from([name]))
        .into_iter()
        .map(|s| s.key)
        .collect()
}

fn file(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(Path::new("test.toml"), text)
}

/// A scratch file holding `text`, kept until the returned guard drops.
fn on_disk(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

fn parse(args: &[&str]) -> Result<Parsed, LoadError> {
    Invocation {
        argv: std::iter::once("avpd")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect(),
    }
    .parse()
}

#[test]
fn every_option_of_serve_and_agent_is_a_key() {
    let command = avpd();
    for name in ["serve", "agent"] {
        let sub = command.find_subcommand(name).unwrap();
        let none = sub.clone().get_matches_from([name]);
        let mut seen = 0;
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long().filter(|l| !NOT_KEYS.contains(l)) else {
                continue;
            };
            let value = match arg.get_action() {
                ArgAction::SetTrue => "true",
                _ => "\"v\"",
            };
            let f = file(&format!("{long} = {value}\n")).unwrap();
            let args = f
                .args(sub, &none)
                .unwrap_or_else(|e| panic!("{name}: {long} is not accepted: {e}"));
            assert_eq!(args.len(), 1, "{name} {long}");
            assert!(args[0].to_string_lossy().starts_with(&format!("--{long}")));
            seen += 1;
        }
        assert_eq!(seen, keys(name).len(), "{name}: every key is an option");
    }
    assert!(
        keys("serve").contains(&"log-format".to_string()),
        "global options too"
    );
}

#[test]
fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
    let f = on_disk(
        "max-connections = 1000\nlisten = [\"tcp://127.0.0.1:0\", \"udp://127.0.0.1:0\"]\n\
         idle-timeout = \"5m\"\nno-admin = true\nlog-format = \"json\"\n",
    );
    let path = f.path().to_str().unwrap();
    let parsed = parse(&["serve", "--config", path, "--max-connections", "7"]).unwrap();
    assert_eq!(parsed.file.as_deref(), Some(f.path()));
    assert_eq!(parsed.cli.log_format, crate::logging::LogFormat::Json);
    let Sub::Serve(args) = parsed.cli.command else {
        panic!("serve")
    };
    assert_eq!(args.max_connections, 7, "the flag wins");
    assert_eq!(args.idle_timeout, std::time::Duration::from_secs(300));
    assert_eq!(args.listen.len(), 2, "the file's list");
    assert!(args.no_admin);
    assert_eq!(args.backlog, 4096, "a default");
    let parsed = parse(&["serve", "--config", path, "--listen", "tcp://127.0.0.1:1"]).unwrap();
    let Sub::Serve(args) = parsed.cli.command else {
        panic!("serve")
    };
    assert_eq!(
        args.listen.len(),
        1,
        "a list on the command line replaces the file's"
    );
}

#[test]
fn errors_name_the_line_and_the_key() {
    let at = |text: &str| {
        let f = on_disk(text);
        let path = f.path().to_str().unwrap().to_string();
        match parse(&["serve", "--config", &path]) {
            Err(LoadError::File(e)) => {
                assert_eq!(e.path, f.path());
                (e.line, e.key, e.message)
            }
            Err(LoadError::Cli(e)) => panic!("{text:?}: a command-line error: {e}"),
            Ok(_) => panic!("{text:?} was accepted"),
        }
    };
    let (line, key, message) = at("backlog = 10\n\n# comment\nidle-timeout = \"5x\"\n");
    assert_eq!((line, key.as_deref()), (Some(4), Some("idle-timeout")));
    assert!(message.contains("unknown unit \"x\""), "{message}");
    let (line, key, message) = at("backlog = 10\nmax-conections = 1\n");
    assert_eq!((line, key.as_deref()), (Some(2), Some("max-conections")));
    assert_eq!(message, "not an option of `serve`");
    let (line, key, _) = at("backlog = 10\nworkers = = 2\n");
    assert_eq!((line, key), (Some(2), None), "a syntax error has a line");
    let (line, key, message) = at("workers = 2\n[store]\nurl = \"x\"\n");
    assert_eq!((line, key.as_deref()), (Some(2), Some("store")));
    assert_eq!(message, "expects a string or a number, not table");
    let (_, key, message) = at("no-admin = \"yes\"\n");
    assert_eq!(
        (key.as_deref(), message.as_str()),
        (Some("no-admin"), "expects true or false")
    );
    let (_, key, message) = at("workers = true\n");
    assert_eq!(
        (key.as_deref(), message.as_str()),
        (Some("workers"), "expects a value, not true or false")
    );
    let (_, key, message) = at("workers = [1, 2]\n");
    assert_eq!(
        (key.as_deref(), message.as_str()),
        (Some("workers"), "takes one value, not a list")
    );
    let (_, key, message) = at("config = \"other.toml\"\n");
    assert_eq!(
        (key.as_deref(), message.as_str()),
        (Some("config"), "not an option of `serve`")
    );
    let missing = parse(&["serve", "--config", "/nonexistent/avpd.toml"]);
    assert!(
        matches!(&missing, Err(LoadError::File(e)) if e.message.starts_with("cannot read it")),
        "{:?}",
        missing.err()
    );
}

#[test]
fn the_printed_configuration_reads_back_to_the_same_settings() {
    let f = on_disk("listen = [\"tcp://127.0.0.1:0\"]\nstore-buffer = \"64MiB\"\n");
    let path = f.path().to_str().unwrap();
    let first = parse(&[
        "serve",
        "--config",
        path,
        "--workers",
        "3",
        "--log",
        "debug",
    ])
    .unwrap();
    let printed = render(&first.settings);
    assert!(printed.contains("workers = 3\n"), "{printed}");
    assert!(
        printed.contains("# backlog = 4096 (default)\n"),
        "{printed}"
    );
    let again = on_disk(&printed);
    let second = parse(&["serve", "--config", again.path().to_str().unwrap()]).unwrap();
    assert_eq!(second.settings, first.settings);
}

#[test]
fn secrets_are_not_printed() {
    let parsed = parse(&[
        "serve",
        "--store",
        "nats://x:4222",
        "--store-token",
        "s3cret",
    ])
    .unwrap();
    let printed = render(&parsed.settings);
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(
        printed.contains("# store-token is set (not shown)\n"),
        "{printed}"
    );
}

/// The rows (key, default, on SIGHUP) of the table under `heading` in docs/OPERATIONS.md.
/// The rows of the reference table under `heading`: key, default, reload and meaning cells.
fn documented_rows(heading: &str) -> Vec<[String; 4]> {
    let doc = include_str!("../../docs/OPERATIONS.md");
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.splitn(4, " | ").collect();
            let key = cells[0].trim_start_matches("| ").trim_matches('`');
            let meaning = cells[3].trim_end_matches(" |");
            [key, cells[1], cells[2], meaning].map(str::to_string)
        })
        .collect()
}

fn documented(heading: &str) -> Vec<(String, String, String)> {
    documented_rows(heading)
        .into_iter()
        .map(|[k, d, r, _]| (k, d, r))
        .collect()
}

#[test]
fn the_configuration_reference_is_the_code() {
    for (name, heading, live) in [
        ("serve", "### `avpd serve` keys", &crate::serve::LIVE[..]),
        ("agent", "### `avpd agent` keys", &crate::agent::LIVE[..]),
    ] {
        let command = avpd();
        let sub = command.find_subcommand(name).unwrap();
        let expected: Vec<(String, String, String)> =
            effective(sub, &sub.clone().get_matches_from([name]))
                .into_iter()
                .map(|s| {
                    let default = match (&s.value, s.default) {
                        (Some(v), true) => format!("`{v}`"),
                        _ => "-".into(),
                    };
                    let reload = if live.contains(&s.key.as_str()) {
                        "live"
                    } else {
                        "restart"
                    };
                    (s.key, default, reload.to_string())
                })
                .collect();
        assert_eq!(
            documented(heading),
            expected,
            "docs/OPERATIONS.md, {heading}"
        );
        // The meaning of each key is its option's help, as `avpd NAME --help` shows it.
        let stale: Vec<String> = documented_rows(heading)
            .into_iter()
            .filter_map(|[key, _, _, meaning]| {
                let arg = sub
                    .get_arguments()
                    .find(|a| a.get_long() == Some(key.as_str()))?;
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let help = help.trim_end_matches('.');
                (meaning != help).then(|| format!("{key}\t{help}"))
            })
            .collect();
        assert!(
            stale.is_empty(),
            "docs/OPERATIONS.md, {heading}: meanings that are not the help:\n{}",
            stale.join("\n")
        );
    }
}

#[test]
fn a_collector_id_a_stored_report_cannot_carry_is_refused() {
    let long = "c".repeat(256);
    for bad in [long.as_str(), "", "lab\u{1b}[2J"] {
        let err = parse(&["serve", "--collector-id", bad])
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("1 to 255 bytes")),
            "{bad:?}: {err:?}"
        );
    }
    assert!(parse(&["serve", "--collector-id", &"c".repeat(255)]).is_ok());
}
