//! `avpd term`: the admin terminal (being built).

use clap::Args;

/// Command-line options of `avpd term`.
#[derive(Debug, Args)]
pub struct TermArgs {}

/// Runs the terminal until the operator quits.
pub fn run(_args: TermArgs) -> anyhow::Result<()> {
    anyhow::bail!("avpd term is not built yet")
}
