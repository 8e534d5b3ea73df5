//! A worker's part of a live reconfiguration ([`crate::live`]).

use super::Worker;
use crate::live::LiveWatch;
use std::sync::Arc;

impl Worker {
    /// Applies the live settings when they changed: the session timeouts of the connections
    /// accepted from now on, and the connection bound (data plane) or the push interval
    /// (management plane).
    pub(super) fn apply_live(&mut self) {
        let Some(live) = self.links.live.as_mut().and_then(LiveWatch::changed) else {
            return;
        };
        let management = self.push.is_some();
        for entry in &mut self.tcp {
            let mut session = (*entry.session).clone();
            session.frame_timeout = live.frame_timeout;
            session.slow_peer_timeout = live.slow_peer_timeout;
            if management {
                session.ack_timeout = live.ack_timeout;
            } else {
                session.idle_timeout = live.idle_timeout;
            }
            entry.session = Arc::new(session);
        }
        match self.push.as_mut() {
            Some(push) => push.set_interval(live.report_interval),
            None => self.limits.max_connections = live.max_connections,
        }
    }
}
