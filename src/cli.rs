//! `avpd serve` command-line options (being built).

use clap::Args;

/// Command-line options of `avpd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Runs the collector node until SIGINT or SIGTERM.
pub fn serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("avpd serve is not built yet")
}
