//! The `avpd` command: `serve`, `agent` and `term`.

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
    Serve(avpd::cli::ServeArgs),
    /// Sample this host and report to a collector.
    Agent(avpd::agent::AgentArgs),
    /// Watch the fleet live and pause or resume the stream.
    Term(avpd::term::TermArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => avpd::cli::serve(args),
        Command::Agent(args) => avpd::agent::run(args),
        Command::Term(args) => avpd::term::run(args),
    }
}
