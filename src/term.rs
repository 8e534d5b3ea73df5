//! `avpd term`: command-line options of the admin terminal and the choice of its mode.

use crate::codec_arg::CodecArg;
use avp_endpoint::Endpoint;
use avpd_term::command::{parse_words, USAGE};
use avpd_term::links::LinkSet;
use avpd_term::oneshot::OneShot;
use avpd_term::{plain, screen};
use clap::Args;
use std::io::IsTerminal;
use std::time::Duration;

/// Command-line options of `avpd term`.
#[derive(Debug, Args)]
#[command(after_help = one_shot_help())]
pub struct TermArgs {
    /// Management endpoint to watch (repeat for several nodes): tcp://HOST:PORT or
    /// json+tcp://HOST:PORT.
    #[arg(long, default_value = "tcp://127.0.0.1:7701")]
    pub connect: Vec<Endpoint>,
    /// Force the wire form, whatever the URL scheme says.
    #[arg(long, value_enum)]
    pub codec: Option<CodecArg>,
    /// One line per pushed row on stdout instead of the full screen (automatic when stdout
    /// is not a terminal). Commands are then read from stdin, one a line.
    #[arg(long)]
    pub plain: bool,
    /// One-shot commands: how long to wait for the connections and every answer.
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub timeout: Duration,
    /// A one-shot command for scripts, after the options: `pause ws-17 200`,
    /// `pause --match 'lab-3-*' 10m`, `pause --all 60`, `resume ws-17`, `resume --match GLOB`,
    /// `resume --all`.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

fn one_shot_help() -> String {
    format!(
        "Commands (one-shot after the options, or typed on a plain terminal's stdin):\n{USAGE}\n\n\
         A one-shot command prints `NODE: CODE INFO` per node and `URL: CODE INFO` per link.\n\
         Exit status: 0 when every target answered 200; 1 when one did not, none matched, or\n\
         an answer did not come within --timeout; 2 for a command line that cannot be read."
    )
}

/// A command line that cannot be read: printed the way clap prints its own, exit status 2.
fn usage_error(message: impl std::fmt::Display) -> ! {
    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n")).exit()
}

/// Runs the terminal until the operator quits (or, for a one-shot command, until every
/// answer came).
pub fn run(args: TermArgs) -> anyhow::Result<()> {
    let one_shot = match args.command.as_slice() {
        [] => None,
        words => {
            let command = parse_words(words).unwrap_or_else(|e| usage_error(e));
            Some(OneShot::new(command).unwrap_or_else(|e| usage_error(e)))
        }
    };
    let links = LinkSet::spawn(&args.connect, args.codec.map(Into::into))?;
    match one_shot {
        Some(one_shot) => {
            crate::logging::init(None)?;
            Ok(one_shot.run(&links, args.timeout)?)
        }
        None if args.plain || !std::io::stdout().is_terminal() => {
            crate::logging::init(None)?;
            Ok(plain::run(&links)?)
        }
        None => Ok(screen::run(&links)?),
    }
}
