//! Checking one answer against the request it answers: type, SEQUENCE and result code.

use crate::request::RequestKind;
use avp_proto::{result_code, Body, Decoded};

/// The outcome of checking an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right type, the request's SEQUENCE, and result 200 where a code is carried.
    Ok,
    /// The answer is well framed but not a valid message.
    Invalid,
    /// The answer's SEQUENCE is missing or not the request's.
    SeqMismatch,
    /// A COMMAND_RESPONSE with a 4xx code.
    Status4xx,
    /// A COMMAND_RESPONSE with a 5xx code.
    Status5xx,
    /// A valid answer of the wrong type, or a COMMAND_RESPONSE with a code that is neither 200
    /// nor an error.
    WrongType,
}

/// Checks `answer` against a request of `kind` sent with `seq`.
pub fn check(kind: RequestKind, seq: u32, answer: &Decoded<'_>) -> Verdict {
    let msg = match answer {
        Decoded::Message(m) => m,
        Decoded::Invalid(_) => return Verdict::Invalid,
    };
    if msg.sequence != Some(u64::from(seq)) {
        return Verdict::SeqMismatch;
    }
    if let Body::CommandResponse { code, .. } = msg.body {
        match code {
            400..=499 => return Verdict::Status4xx,
            500..=599 => return Verdict::Status5xx,
            result_code::OK => {}
            _ => return Verdict::WrongType,
        }
    }
    if msg.msg_type() == kind.answer_type() {
        Verdict::Ok
    } else {
        Verdict::WrongType
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::{Codec, Message, Status};

    #[test]
    fn verdicts() {
        let ack = |s| Decoded::Message(Message::ack(Some(s)));
        let resp = |s, c| Decoded::Message(Message::command_response(Some(s), c, "x"));
        assert_eq!(check(RequestKind::Report, 5, &ack(5)), Verdict::Ok);
        assert_eq!(check(RequestKind::Report, 5, &ack(6)), Verdict::SeqMismatch);
        assert_eq!(
            check(
                RequestKind::Report,
                5,
                &Decoded::Message(Message::ack(None))
            ),
            Verdict::SeqMismatch
        );
        assert_eq!(
            check(RequestKind::Report, 5, &resp(5, 200)),
            Verdict::WrongType
        );
        assert_eq!(
            check(RequestKind::Report, 5, &resp(5, 503)),
            Verdict::Status5xx
        );
        assert_eq!(check(RequestKind::Pause, 5, &resp(5, 200)), Verdict::Ok);
        assert_eq!(
            check(RequestKind::Resume, 5, &resp(5, 400)),
            Verdict::Status4xx
        );
        assert_eq!(
            check(RequestKind::Resume, 5, &resp(5, 501)),
            Verdict::Status5xx
        );
        assert_eq!(
            check(RequestKind::Pause, 5, &resp(5, 302)),
            Verdict::WrongType
        );
        assert_eq!(check(RequestKind::Pause, 5, &ack(5)), Verdict::WrongType);
        // An ack carrying SEQUENCE twice is well framed but invalid.
        let bytes = [0, 15, 4, 6, 4, 0, 0, 0, 5, 6, 4, 0, 0, 0, 5];
        let Ok(Status::Complete((invalid, 15))) = Codec::Binary.decode(&bytes) else {
            panic!("one frame");
        };
        assert!(matches!(invalid, Decoded::Invalid(_)));
        assert_eq!(check(RequestKind::Report, 5, &invalid), Verdict::Invalid);
    }
}
