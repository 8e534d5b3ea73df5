//! A node played by a test for a terminal: pushes rows of the fleet view, reads the
//! terminal's commands (past the acks of the pushed rows) and answers them as a relaying node
//! does, with each node's result and then the command's own answer.

use crate::frames::{node_result, pushed_row};
use crate::peer::Peer;
use crate::unix_millis;
use avp_proto::{Body, Codec, FleetState, Message};
use std::net::TcpListener;

/// The terminal's connection, seen from the node. See the module documentation.
pub struct FakeNode {
    /// The connection, for tests that read or write it directly.
    pub peer: Peer,
    seq: u64,
}

impl FakeNode {
    /// Accepts the terminal's next connection on `l` (binary form).
    pub fn accept(l: &TcpListener) -> FakeNode {
        FakeNode {
            peer: Peer::new(l.accept().unwrap().0, Codec::Binary),
            seq: 0,
        }
    }

    /// Pushes a row for `node` sampled now, in state `fleet`.
    pub fn push(&mut self, node: &str, cpu: u8, mem: u8, fleet: FleetState) {
        self.seq += 1;
        let row = pushed_row(self.seq, node, cpu, mem, unix_millis(), fleet);
        self.peer.send_msg(&row);
    }

    /// The terminal's next message that is not an ack of a pushed row.
    pub fn command(&mut self) -> Message<'static> {
        loop {
            let msg = self.peer.expect();
            if msg.body != Body::StatReportAck {
                return msg;
            }
        }
    }

    /// Answers `command`: one result per `(node, code, info)`, then `code` and `info`.
    pub fn answer(
        &mut self,
        command: &Message<'_>,
        results: &[(&str, u16, &str)],
        code: u16,
        info: &str,
    ) {
        for (node, code, info) in results {
            self.peer
                .send_msg(&node_result(command.sequence, node, *code, info));
        }
        self.peer
            .send_msg(&Message::command_response(command.sequence, code, info));
    }
}
