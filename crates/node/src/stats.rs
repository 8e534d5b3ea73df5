//! Counters kept by each worker, and the status line built from all of them.
//!
//! Each worker owns its [`Counters`] (plain integers, no atomics on the hot path): what its
//! sessions handled ([`Tally`]) and what happened to its connections. It sends a cumulative
//! [`WorkerSnapshot`] over a crossbeam channel each tick; the status reporter sums the latest
//! snapshot of every worker and logs rates from the difference.

use avp_proto::server::Tally;
use avpd_store::StoreStatus;
use std::fmt;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Cumulative event counts of one worker (or, summed, of the node).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            /// What the sessions handled: messages by kind, answers, pushes.
            pub tally: Tally,
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Adds every count of `other` to `self`.
            pub fn add(&mut self, other: &Counters) {
                self.tally.add(&other.tally);
                $(self.$name += other.$name;)*
            }

            /// Every count minus the one in `earlier`.
            pub fn since(&self, earlier: &Counters) -> Counters {
                Counters {
                    tally: self.tally.since(&earlier.tally),
                    $($name: self.$name.saturating_sub(earlier.$name),)*
                }
            }
        }
    };
}

counters! {
    /// Connections accepted.
    accepted,
    /// Connections refused because `--max-connections` was reached.
    rejected,
    /// Connections closed for any reason.
    closed,
    /// Connections the peer closed (after every answer owed was sent).
    peer_closed,
    /// Connections closed after `--idle-timeout` without traffic.
    idle_closed,
    /// Connections closed because their stream could not be framed (length below 3, bad
    /// text header).
    framing_errors,
    /// Connections closed on a socket error (reset, broken pipe).
    io_errors,
    /// Connections closed because a frame stayed incomplete past `--frame-timeout`.
    frame_timeouts,
    /// Terminals closed because pushes stayed unacknowledged past the ack timeout.
    ack_timeouts,
    /// Peers closed because their unsent output stayed at its bound past
    /// `--slow-peer-timeout`.
    slow_peers,
    /// UDP datagrams that were not exactly one frame, dropped.
    udp_bad_datagrams,
    /// UDP datagrams dropped unanswered because their source is outside `--udp-allow`.
    udp_refused,
    /// UDP answers dropped because the socket would block.
    udp_send_dropped,
    /// Reports not recorded in the fleet view because it was full.
    fleet_dropped,
    /// accept() failures other than WouldBlock (EMFILE and the like).
    accept_errors,
    /// Reports answered 503 because the store buffer was full.
    store_refused,
    /// Bytes read from sockets (TCP reads, UDP datagrams).
    bytes_in,
    /// Bytes written to sockets (TCP writes, UDP datagrams sent).
    bytes_out,
    /// TLS handshakes refused: no client certificate, one the client CA did not issue, a
    /// peer that does not speak TLS.
    tls_refused,
    /// Fleet-command answers 404: a target not connected to any collector, or no node matched.
    command_not_found,
    /// Fleet-command answers 503: the node was starting or stopping.
    command_overloaded,
    /// Fleet-command answers 504: a target's agent did not answer in time.
    command_timed_out,
    /// Fleet-command answers with another error code: one an agent answered with.
    command_failed,
}

impl Counters {
    /// Messages received, of every kind.
    pub fn messages_in(&self) -> u64 {
        self.tally.received()
    }

    /// Messages sent: answers and pushes.
    pub fn messages_out(&self) -> u64 {
        self.tally.answers + self.tally.pushes
    }
}

/// What a worker serves: which plane, over which transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// Data-plane TCP connections (binary and JSON text).
    DataTcp,
    /// A data-plane UDP socket.
    DataUdp,
    /// The management plane's connections (terminals, over TCP).
    Management,
}

impl WorkerKind {
    /// The plane's name: `data` or `management`.
    pub fn plane(self) -> &'static str {
        match self {
            WorkerKind::DataTcp | WorkerKind::DataUdp => "data",
            WorkerKind::Management => "management",
        }
    }

    /// The transport's name: `tcp` or `udp`.
    pub fn transport(self) -> &'static str {
        match self {
            WorkerKind::DataTcp | WorkerKind::Management => "tcp",
            WorkerKind::DataUdp => "udp",
        }
    }
}

/// One worker's state as of its last report to the status reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Index of the worker.
    pub worker: usize,
    /// What it serves.
    pub kind: WorkerKind,
    /// Connections open on that worker.
    pub open: usize,
    /// Bytes of buffers its connections hold.
    pub buffered: usize,
    /// Its cumulative counters.
    pub counters: Counters,
}

/// The figures of one status line: totals over all workers and rates over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusLine {
    /// Connections open now.
    pub open: usize,
    /// Bytes of buffers the connections hold now, and the budget they must stay within.
    pub buffered: (usize, usize),
    /// Messages received per second over the interval.
    pub in_per_sec: f64,
    /// Messages sent per second over the interval.
    pub out_per_sec: f64,
    /// Counts during the interval.
    pub delta: Counters,
    /// Counts since start.
    pub total: Counters,
    /// The store's state, when the node stores reports.
    pub store: Option<StoreLine>,
}

/// The store's part of a status line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreLine {
    /// The store's state now.
    pub now: StoreStatus,
    /// Reports stored per second over the interval.
    pub stored_per_sec: f64,
    /// Resends found already stored during the interval.
    pub duplicates: u64,
    /// Publishes retried during the interval.
    pub retries: u64,
}

impl StoreLine {
    /// The store's part from its state now, at the previous line, and the seconds between.
    pub fn new(now: StoreStatus, previous: &StoreStatus, secs: f64) -> StoreLine {
        let stored = now.stored.saturating_sub(previous.stored);
        StoreLine {
            now,
            stored_per_sec: if secs > 0.0 {
                stored as f64 / secs
            } else {
                0.0
            },
            duplicates: now.duplicates.saturating_sub(previous.duplicates),
            retries: now.retries.saturating_sub(previous.retries),
        }
    }
}

impl fmt::Display for StoreLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.now;
        write!(
            f,
            "store: {} stored={:.0}/s buffer={}/{} ({:.1}%) duplicates={} retries={}",
            if s.connected {
                "connected"
            } else {
                "unavailable"
            },
            self.stored_per_sec,
            avp_units::format_size(s.buffered as u64),
            avp_units::format_size(s.buffer_limit as u64),
            100.0 * s.buffered as f64 / s.buffer_limit.max(1) as f64,
            self.duplicates,
            self.retries,
        )
    }
}

impl StatusLine {
    /// Builds the line from the totals now, the totals at the previous line, and the seconds
    /// between them.
    pub fn new(
        open: usize,
        buffered: (usize, usize),
        total: Counters,
        previous: &Counters,
        secs: f64,
        store: Option<StoreLine>,
    ) -> Self {
        let delta = total.since(previous);
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        StatusLine {
            open,
            buffered,
            in_per_sec: per_sec(delta.messages_in()),
            out_per_sec: per_sec(delta.messages_out()),
            delta,
            total,
            store,
        }
    }
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.delta;
        write!(
            f,
            "status: conns={} buffered={}/{} in={:.0}/s out={:.0}/s accepted={} rejected={} closed={} \
             | errors: \
             invalid={} unsupported={} unsolicited={} unauthorized={} framing={} io={} idle={} \
             frame_timeout={} ack_timeout={} slow_peer={} udp_bad={} udp_refused={} \
             udp_send_dropped={} \
             udp_oversize_dropped={} fleet_dropped={} accept={} store_refused={} tls_refused={}",
            self.open,
            avp_units::format_size(self.buffered.0 as u64),
            avp_units::format_size(self.buffered.1 as u64),
            self.in_per_sec,
            self.out_per_sec,
            d.accepted,
            d.rejected,
            d.closed,
            d.tally.invalid,
            d.tally.unsupported,
            d.tally.unsolicited,
            d.tally.unauthorized,
            d.framing_errors,
            d.io_errors,
            d.idle_closed,
            d.frame_timeouts,
            d.ack_timeouts,
            d.slow_peers,
            d.udp_bad_datagrams,
            d.udp_refused,
            d.udp_send_dropped,
            d.tally.oversize_dropped,
            d.fleet_dropped,
            d.accept_errors,
            d.store_refused,
            d.tls_refused,
        )?;
        match &self.store {
            Some(store) => write!(f, " | {store}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_rates_come_from_the_interval() {
        let tally = |reports, answers, invalid| Tally {
            reports,
            answers,
            invalid,
            ..Tally::default()
        };
        let previous = Counters {
            tally: tally(100, 100, 0),
            ..Counters::default()
        };
        let total = Counters {
            tally: tally(1100, 1100, 5),
            ..Counters::default()
        };
        let line = StatusLine::new(3, (2048, 1 << 20), total, &previous, 10.0, None);
        assert_eq!((line.in_per_sec, line.out_per_sec), (100.5, 100.0));
        let text = line.to_string();
        assert!(
            text.starts_with("status: conns=3 buffered=2KiB/1MiB in=100/s out=100/s"),
            "{text}"
        );
        assert!(text.contains("invalid=5"), "{text}");
    }
}
