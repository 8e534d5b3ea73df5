//! `avpd agent`: samples the host and reports to a collector (being built).

use clap::Args;

/// Command-line options of `avpd agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {}

/// Runs the agent until interrupted.
pub fn run(_args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("avpd agent is not built yet")
}
