//! A worker's part of a live reconfiguration ([`crate::live`]).

use super::Worker;
use crate::live::LiveWatch;
use std::sync::Arc;

impl Worker {
    /// Applies the live settings when they changed: the session settings of the connections
    /// accepted from now on, the output bound and memory budget, the fleet bound and the
    /// TIMESTAMP window, and the connection bound (data plane) or the push interval and fleet
    /// rules (management plane).
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
                session.max_unacked = live.max_unacked;
            } else {
                session.idle_timeout = live.idle_timeout;
            }
            entry.session = Arc::new(session);
        }
        self.budget
            .set_limits(live.max_buffer_memory, live.max_output);
        if let Some(fleet) = self.fleet.as_mut() {
            fleet.set_max_nodes(live.fleet.max_nodes);
        }
        if let (Some(verifier), Some(window)) = (self.verifier.as_mut(), live.auth_window) {
            verifier.set_window(window);
        }
        match self.push.as_mut() {
            Some(push) => {
                push.set_interval(live.report_interval);
                push.view.set_rules(live.fleet);
            }
            None => self.limits.max_connections = live.max_connections,
        }
    }
}
