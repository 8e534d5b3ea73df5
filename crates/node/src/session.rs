//! What a connection means, free of IO: request in, answer out, pause state, push credit.
//!
//! One [`Session`] serves both planes. On the data plane the node only answers; on the
//! management plane ([`Session::new_pushing`]) it also pushes reports, which PAUSE/RESUME and
//! the count of unacknowledged pushes gate. The session never reads a clock or a socket: the
//! caller passes `now` and the decoded frames, encodes the answers it gets back, and asks
//! [`Session::may_push`] before pushing.
//!
//! Call order per frame: [`Session::handle`], then encode [`Outcome::answer`] (if any) and
//! record [`Outcome::report`] (if any). A valid report changes no session state and is always
//! answered with an ack of its SEQUENCE, so a connection may acknowledge runs of reports
//! without this call ([`avp_proto::Codec::ack_report_run`]). Before pushing:
//! [`Session::may_push`], then [`Session::on_pushed`] for each report sent.

use avp_proto::{result_code, Body, Decoded, Message, Report};
use std::time::{Duration, Instant};

/// What kind of input a frame was, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A valid STAT_REPORT (acknowledged).
    Report,
    /// A valid PAUSE or RESUME (answered 200).
    Command,
    /// An invalid message (answered 400).
    Invalid,
    /// An unknown message type (answered 501).
    Unsupported,
    /// A STAT_REPORT_ACK for a report this session pushed.
    PushAck,
    /// A COMMAND_RESPONSE or STAT_REPORT_ACK nobody asked for, or an invalid one (ignored).
    Unsolicited,
}

/// The result of handling one frame.
///
/// It borrows the report from the decoded frame rather than moving it: on the per-report path
/// this keeps the message where the decoder put it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<'d> {
    /// What the frame was.
    pub kind: Kind,
    /// The answer to send, in request order.
    pub answer: Option<Message<'static>>,
    /// A valid report to record in the fleet view.
    pub report: Option<&'d Report<'d>>,
}

/// Per-connection protocol state.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pushing: bool,
    paused_until: Option<Instant>,
    unacked: usize,
}

impl Session {
    /// A data-plane session: it answers and never pushes.
    pub fn new() -> Self {
        Session::default()
    }

    /// A management-plane session: it answers and pushes reports.
    pub fn new_pushing() -> Self {
        Session {
            pushing: true,
            ..Session::default()
        }
    }

    /// Handles one decoded frame received at `now`.
    #[inline(always)]
    pub fn handle<'d>(&mut self, now: Instant, decoded: &'d Decoded<'_>) -> Outcome<'d> {
        let msg = match decoded {
            Decoded::Message(msg) => msg,
            Decoded::Invalid(err) if err.is_answer() => return outcome(Kind::Unsolicited, None),
            Decoded::Invalid(err) => {
                let kind = if err.result_code() == result_code::UNSUPPORTED_TYPE {
                    Kind::Unsupported
                } else {
                    Kind::Invalid
                };
                let answer =
                    Message::command_response(err.sequence, err.result_code(), err.to_string());
                return outcome(kind, Some(answer));
            }
        };
        let seq = msg.sequence;
        match &msg.body {
            Body::StatReport(report) => Outcome {
                kind: Kind::Report,
                answer: Some(Message::ack(seq)),
                report: Some(report),
            },
            Body::Pause { duration_secs } => {
                self.paused_until = now.checked_add(Duration::from_secs(*duration_secs));
                let info = format!("paused for {duration_secs} s");
                let answer = Message::command_response(seq, result_code::OK, info);
                outcome(Kind::Command, Some(answer))
            }
            Body::Resume => {
                let info = if self.paused_until.take().is_some() {
                    "resumed"
                } else {
                    "not paused"
                };
                let answer = Message::command_response(seq, result_code::OK, info);
                outcome(Kind::Command, Some(answer))
            }
            Body::StatReportAck if self.pushing && self.unacked > 0 => {
                self.unacked -= 1;
                outcome(Kind::PushAck, None)
            }
            Body::StatReportAck | Body::CommandResponse { .. } => outcome(Kind::Unsolicited, None),
        }
    }

    /// True when a report may be pushed at `now`: the session pushes, is not paused, and has
    /// fewer than `max_unacked` pushes awaiting their ack.
    pub fn may_push(&mut self, now: Instant, max_unacked: usize) -> bool {
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        self.pushing && self.paused_until.is_none() && self.unacked < max_unacked
    }

    /// Records that one report was pushed and now awaits its ack.
    pub fn on_pushed(&mut self) {
        self.unacked += 1;
    }

    /// Reports pushed and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked
    }

    /// When the current pause ends, if the session is paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }
}

fn outcome<'d>(kind: Kind, answer: Option<Message<'static>>) -> Outcome<'d> {
    Outcome {
        kind,
        answer,
        report: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::{Codec, Status};

    fn decode(bytes: &[u8]) -> Decoded<'_> {
        match Codec::Binary.decode(bytes).unwrap() {
            Status::Complete((d, _)) => d,
            Status::Partial => panic!("partial"),
        }
    }

    fn info(answer: &Option<Message<'_>>) -> (u16, String, Option<u64>) {
        match answer {
            Some(Message {
                sequence,
                body: Body::CommandResponse { code, info },
            }) => (*code, info.as_deref().unwrap_or("").to_string(), *sequence),
            other => panic!("expected a command response, got {other:?}"),
        }
    }

    #[test]
    fn report_is_acked_with_its_sequence() {
        let mut s = Session::new();
        let decoded = decode(&[0, 15, 3, 1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 1, 2]);
        let out = s.handle(Instant::now(), &decoded);
        assert_eq!(out.kind, Kind::Report);
        assert_eq!(out.answer, Some(Message::ack(Some(258))));
        assert_eq!(out.report.unwrap().cpu_percent, 30);
    }

    #[test]
    fn invalid_and_unknown_are_answered() {
        let mut s = Session::new();
        let decoded = decode(&[0, 9, 3, 1, 1, 130, 2, 1, 53]);
        let out = s.handle(Instant::now(), &decoded);
        assert_eq!(out.kind, Kind::Invalid);
        assert_eq!(
            info(&out.answer),
            (400, "CPU_USAGE 130 is out of range 0..=100".into(), None)
        );
        let decoded = decode(&[0, 6, 9, 6, 1, 7]);
        let out = s.handle(Instant::now(), &decoded);
        assert_eq!(out.kind, Kind::Unsupported);
        assert_eq!(
            info(&out.answer),
            (501, "unsupported message type 9".into(), Some(7))
        );
    }

    #[test]
    fn answers_are_never_answered() {
        let mut s = Session::new();
        for frame in [&[0u8, 3, 4][..], &[0, 6, 2, 4, 1, 200], &[0, 5, 4, 1, 0]] {
            let decoded = decode(frame);
            let out = s.handle(Instant::now(), &decoded);
            assert_eq!((out.kind, out.answer), (Kind::Unsolicited, None));
        }
    }

    #[test]
    fn pause_gates_pushes_until_it_expires_or_resume() {
        let t0 = Instant::now();
        let mut s = Session::new_pushing();
        assert!(s.may_push(t0, 4));
        let decoded = decode(&[0, 9, 0, 3, 1, 2, 6, 1, 5]);
        let out = s.handle(t0, &decoded);
        assert_eq!(info(&out.answer), (200, "paused for 2 s".into(), Some(5)));
        assert!(!s.may_push(t0 + Duration::from_millis(1999), 4));
        assert!(s.may_push(t0 + Duration::from_secs(2), 4), "pause expires");
        s.handle(t0, &decode(&[0, 6, 0, 3, 1, 60]));
        assert!(!s.may_push(t0 + Duration::from_secs(3), 4));
        let decoded = decode(&[0, 3, 1]);
        let out = s.handle(t0, &decoded);
        assert_eq!(info(&out.answer).1, "resumed");
        assert!(
            s.may_push(t0 + Duration::from_secs(3), 4),
            "resume ends the pause early"
        );
    }

    #[test]
    fn unacked_pushes_are_bounded() {
        let t0 = Instant::now();
        let mut s = Session::new_pushing();
        s.on_pushed();
        s.on_pushed();
        assert!(!s.may_push(t0, 2));
        assert_eq!(s.handle(t0, &decode(&[0, 3, 4])).kind, Kind::PushAck);
        assert!(s.may_push(t0, 2));
        assert_eq!(s.unacked(), 1);
        assert!(!Session::new().may_push(t0, 2), "data plane never pushes");
    }
}
