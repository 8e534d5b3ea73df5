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
    match Cli::parse().command {
        Command::Serve(args) => serve::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Term(args) => term::run(args),
        Command::History(args) => history::run(args),
    }
}
