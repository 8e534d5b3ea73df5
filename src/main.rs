//! The `avpd` command: `serve`, `agent` and `term`.
//!
//! This binary is glue: it parses the command line, sets up logging and signals, and hands
//! typed configurations to the library crates (`avpd-node`, `avpd-agent`, `avpd-term`).
#![forbid(unsafe_code)]

mod agent;
mod codec_arg;
mod logging;
mod serve;
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
    Serve(serve::ServeArgs),
    /// Sample this host and report to a collector.
    Agent(agent::AgentArgs),
    /// Watch the fleet live and pause or resume the stream.
    Term(term::TermArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Term(args) => term::run(args),
    }
}
