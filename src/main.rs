//! The `avpd` command: `serve`, `agent`, `term` and `history`.
//!
//! This binary is glue: it parses the command line (with a configuration file, for `serve`
//! and `agent`), sets up logging and signals, and hands typed configurations to the library
//! crates (`avpd-node`, `avpd-metrics`, `avpd-agent`, `avpd-term`, `avpd-store`).
#![forbid(unsafe_code)]

mod agent;
mod codec_arg;
mod config;
mod history;
mod logging;
mod notify;
mod reload;
mod serve;
mod signals;
mod store_args;
mod term;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use config::{LoadError, Setting};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "avpd",
    version,
    about = "AVP resource-usage collector node and tools"
)]
struct Cli {
    /// Log line format on stderr: text (coloured only on a terminal, never with NO_COLOR) or
    /// json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector node.
    Serve(Box<serve::ServeArgs>),
    /// Sample this host and report to a collector.
    Agent(agent::AgentArgs),
    /// Watch the fleet live, and pause or resume its agents.
    Term(term::TermArgs),
    /// Print the reports a store holds, or a per-node summary.
    History(history::HistoryArgs),
}

/// How the process was started; read again when the configuration is reloaded.
#[derive(Debug, Clone)]
pub struct Invocation {
    argv: Vec<OsString>,
}

/// A command line with its configuration file, parsed.
pub struct Parsed {
    cli: Cli,
    /// Every option of the subcommand and its effective value.
    settings: Vec<Setting>,
    /// The configuration file, when there is one.
    file: Option<PathBuf>,
    /// True when `--print-config` was given.
    print_config: bool,
}

impl Invocation {
    /// Parses the command line and reads the subcommand's configuration file.
    fn parse(&self) -> Result<Parsed, LoadError> {
        let mut command = Cli::command();
        let (matches, file) = config::load(&command, &self.argv)?;
        let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Cli)?;
        command.build();
        let (name, sub) = matches.subcommand().expect("a subcommand is required");
        let settings = config::effective(
            command
                .find_subcommand(name)
                .expect("the parsed subcommand"),
            sub,
        );
        let print_config = sub
            .try_get_one::<bool>("print_config")
            .ok()
            .flatten()
            .is_some_and(|p| *p);
        Ok(Parsed {
            cli,
            settings,
            file,
            print_config,
        })
    }
}

fn main() -> Result<()> {
    let invocation = Invocation {
        argv: std::env::args_os().collect(),
    };
    let parsed = match invocation.parse() {
        Ok(parsed) => parsed,
        Err(LoadError::Cli(e)) => e.exit(),
        Err(LoadError::File(e)) => anyhow::bail!(e),
    };
    if parsed.print_config {
        print!("{}", config::render(&parsed.settings));
        return Ok(());
    }
    logging::set_format(parsed.cli.log_format);
    match parsed.cli.command {
        Command::Serve(args) => serve::run(*args, &invocation, parsed.settings, parsed.file),
        Command::Agent(args) => agent::run(args, &invocation, parsed.settings, parsed.file),
        Command::Term(args) => term::run(args),
        Command::History(args) => history::run(args),
    }
}
