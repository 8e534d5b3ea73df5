//! `avpd term`: command-line options of the admin terminal and the choice of its mode.

use crate::codec_arg::CodecArg;
use avp_endpoint::Endpoint;
use avpd_term::command::{parse_pause, Command};
use avpd_term::links::LinkSet;
use avpd_term::{oneshot, plain, screen};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::time::Duration;

/// Command-line options of `avpd term`.
#[derive(Debug, Args)]
pub struct TermArgs {
    /// Management endpoint to watch (repeat for several nodes): tcp://HOST:PORT,
    /// json+tcp://HOST:PORT, or tls://HOST:PORT (with --ca, and --cert and --key when the
    /// node asks for a client certificate).
    #[arg(long, default_value = "tcp://127.0.0.1:7701")]
    pub connect: Vec<Endpoint>,
    /// Force the wire form, whatever the URL scheme says.
    #[arg(long, value_enum)]
    pub codec: Option<CodecArg>,
    /// One line per report on stdout instead of the full screen (automatic when stdout is
    /// not a terminal). Commands are then read from stdin: `pause DURATION`, `resume`.
    #[arg(long)]
    pub plain: bool,
    /// One-shot commands: how long to wait for the connection and the answer.
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: avp_tls::ClientFiles,
    /// Send one command, print the answers, exit 0 only if every answer is 200.
    #[command(subcommand)]
    pub command: Option<TermCommand>,
}

/// One-shot commands of `avpd term`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum TermCommand {
    /// Ask the peer to stop pushing reports for DURATION.
    Pause {
        /// Pause length in whole seconds, up to 7d: 200, 90s, 5m, 1h30m.
        #[arg(value_name = "DURATION", value_parser = parse_pause)]
        seconds: u64,
    },
    /// Ask the peer to push reports again.
    Resume,
}

/// Runs the terminal until the operator quits (or, for a one-shot command, until it is
/// answered).
pub fn run(args: TermArgs) -> anyhow::Result<()> {
    let links = LinkSet::spawn(
        &args.connect,
        args.codec.map(Into::into),
        args.tls.config()?,
    )?;
    match args.command {
        Some(command) => {
            crate::logging::init(None);
            let command = match command {
                TermCommand::Pause { seconds } => Command::Pause(seconds),
                TermCommand::Resume => Command::Resume,
            };
            Ok(oneshot::run(&links, command, args.timeout)?)
        }
        None if args.plain || !std::io::stdout().is_terminal() => {
            crate::logging::init(None);
            Ok(plain::run(&links)?)
        }
        None => Ok(screen::run(&links)?),
    }
}
