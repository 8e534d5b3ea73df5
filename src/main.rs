//! The `avpd` command: `serve`, `agent`, `term` and `history`.
//!
//! This binary is glue: it parses the command line, sets up logging and signals, and hands
//! typed configurations to the library crates (`avpd-node`, `avpd-agent`, `avpd-term`,
//! `avpd-store`).
#![forbid(unsafe_code)]

mod agent;
mod codec_arg;
mod history;
mod logging;
mod serve;
mod store_args;
mod term;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Watch the fleet live and pause or resume the stream.
    Term(term::TermArgs),
    /// Print the reports a store holds, or a per-node summary.
    History(history::HistoryArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::set_format(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Term(args) => term::run(args),
        Command::History(args) => history::run(args),
    }
}
