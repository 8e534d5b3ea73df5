//! `--embedded`: an avpd node started in this process on an ephemeral loopback port.

use crate::error::Error;
use avp_endpoint::{Endpoint, Scheme};
use avpd_node::{Config, Node};
use std::net::SocketAddr;

/// Starts a node with `workers` threads listening on `127.0.0.1:0` for `scheme` (no management
/// plane) and returns it with the endpoint to target.
pub fn start(scheme: Scheme, workers: usize) -> Result<(Node, Endpoint), Error> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut config = Config {
        listen: vec![Endpoint::new(scheme, any)],
        workers: workers.max(1),
        ..Config::default()
    };
    config.admin.listen.clear();
    let node = Node::start(config).map_err(Error::Node)?;
    // The node bound the one endpoint it was given.
    let addr = node.local_addr(scheme).unwrap_or(any);
    Ok((node, Endpoint::new(scheme, addr)))
}
