//! Signed reports: the AUTHENTICATOR attribute, how a frame is signed and checked, and the
//! replay rule.
//!
//! A signed report carries an AUTHENTICATOR (attribute 14, 32 bytes): an HMAC-SHA256 over the
//! whole frame, header included, with the authenticator's own value taken as zeros (the idea of
//! RADIUS's Message-Authenticator), keyed by the secret of the report's NODE_ID. In the text
//! form the value is `"auth"`, 64 hexadecimal digits, the last member of the object; the HMAC
//! covers the whole text frame with those digits taken as `0` characters.
//!
//! A node that holds keys accepts a report only when, in this order: it names a NODE_ID that
//! has a key, it is signed with that key, its TIMESTAMP is within the node's window of the
//! node's clock, and its SEQUENCE is above every SEQUENCE accepted before from the same
//! NODE_ID and INSTANCE ([`Marks`]). Otherwise it is answered 401 and goes no further.
//!
//! The session runs the check ([`crate::ServerSession`]); the keys, the clock and the replay
//! marks come from its caller through [`Verifier`], so that nothing here reads a file or a clock.

use crate::avp::{Attribute, AvpIter, AVP_HEADER_LEN};
use crate::canonical::ACK_FRAME_LEN;
use crate::codec::Codec;
use crate::frame::{HEADER_LEN, MAX_FRAME_LEN};
use crate::json::MAX_HEADER_DIGITS;
use crate::message::Report;
use crate::rules::AUTHENTICATOR_LEN;
use hmac_sha256::{same_mac, HmacKey, DIGEST, LANES};
use std::fmt;

mod hmac_sha256;
mod marks;

pub use marks::{Marks, INSTANCES_PER_NODE};

/// One node's secret, ready to sign and check (the HMAC's keyed state, computed once).
#[derive(Clone)]
pub struct Key(HmacKey);

impl Key {
    /// The key of `secret`.
    pub fn new(secret: &[u8]) -> Key {
        Key(HmacKey::new(secret))
    }

    /// The key of a secret file's contents (`avpd agent --key-file`): the file's bytes
    /// without one trailing line end. `None` when that leaves nothing.
    pub fn from_secret_file(contents: &[u8]) -> Option<Key> {
        let secret = contents
            .strip_suffix(b"\n")
            .map_or(contents, |s| s.strip_suffix(b"\r").unwrap_or(s));
        (!secret.is_empty()).then(|| Key::new(secret))
    }

    /// The HMAC of `frame` with the `AUTHENTICATOR_LEN` (binary) or twice that (text) bytes
    /// from `at` taken as `fill`.
    fn mac(&self, frame: &[u8], at: usize, len: usize, fill: u8) -> [u8; AUTHENTICATOR_LEN] {
        self.0.mac(frame, at, len, fill)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a frame could not be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The bytes are not one complete frame of the codec.
    NotAFrame,
    /// The frame already carries an AUTHENTICATOR.
    AlreadySigned,
    /// With the AUTHENTICATOR the frame would exceed the largest frame.
    TooLong,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::NotAFrame => f.write_str("not one complete frame"),
            SignError::AlreadySigned => f.write_str("the frame is signed already"),
            SignError::TooLong => f.write_str("the signed frame would be too long"),
        }
    }
}

impl std::error::Error for SignError {}

/// Signs the frame that fills `out[start..]` (as `codec` writes it) with `key`: appends an
/// AUTHENTICATOR and fixes the frame's length. On error `out` is unchanged.
pub fn sign(codec: Codec, out: &mut Vec<u8>, start: usize, key: &Key) -> Result<(), SignError> {
    let frame = &out[start..];
    if authenticator_at(codec, frame).is_some() {
        return Err(SignError::AlreadySigned);
    }
    match codec {
        Codec::Binary => sign_binary(out, start, key),
        Codec::Json => sign_json(out, start, key),
    }
}

fn sign_binary(out: &mut Vec<u8>, start: usize, key: &Key) -> Result<(), SignError> {
    let frame = &out[start..];
    let declared = frame
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    if frame.len() < HEADER_LEN || declared != Some(frame.len()) {
        return Err(SignError::NotAFrame);
    }
    let len = frame.len() + AVP_HEADER_LEN + AUTHENTICATOR_LEN;
    if len > MAX_FRAME_LEN {
        return Err(SignError::TooLong);
    }
    out[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[Attribute::Authenticator as u8, AUTHENTICATOR_LEN as u8]);
    let at = out.len() - start;
    out.extend_from_slice(&[0; AUTHENTICATOR_LEN]);
    let len = out.len() - start;
    resign_binary(&mut out[start..], len, at, key);
    Ok(())
}

/// Writes `key`'s AUTHENTICATOR into each of the binary frames that fill `frames`, all of
/// `len` bytes with their AUTHENTICATOR's value at `at` (copies of a frame [`sign`] signed,
/// changed since outside that value), a few frames at a time ([`HmacKey::macs`]).
pub(crate) fn resign_binary(frames: &mut [u8], len: usize, at: usize, key: &Key) {
    for group in frames.chunks_mut(len * LANES) {
        let (each, n) = lanes(group.chunks_exact(len));
        let macs = key.macs(&each[..n], at);
        for (frame, mac) in group.chunks_exact_mut(len).zip(&macs) {
            frame[at..at + AUTHENTICATOR_LEN].copy_from_slice(mac);
        }
    }
}

/// The first [`LANES`] (or fewer) of `frames`, side by side, and how many there are.
#[inline(always)]
fn lanes<'f>(frames: impl Iterator<Item = &'f [u8]>) -> ([&'f [u8]; LANES], usize) {
    let mut each: [&[u8]; LANES] = [&[]; LANES];
    let n = frames
        .zip(each.iter_mut())
        .map(|(frame, lane)| *lane = frame)
        .count();
    (each, n)
}

impl Key {
    /// The HMACs of `frames` (at most [`LANES`], of one length), each with its
    /// AUTHENTICATOR's value at `at` taken as zeros, computed together; the first
    /// `frames.len()` are theirs.
    #[inline(always)]
    fn macs(&self, frames: &[&[u8]], at: usize) -> [[u8; DIGEST]; LANES] {
        let mut macs = [[0; DIGEST]; LANES];
        self.0
            .macs(frames, at, AUTHENTICATOR_LEN, 0, &mut macs[..frames.len()]);
        macs
    }
}

/// The member a signed text body ends with, before the digits.
const JSON_MEMBER: &[u8] = b",\"auth\":\"";
/// What follows the digits: the closing quote and brace.
const JSON_TAIL: &[u8] = b"\"}";

fn sign_json(out: &mut Vec<u8>, start: usize, key: &Key) -> Result<(), SignError> {
    let frame = &out[start..];
    let newline = frame
        .iter()
        .take(MAX_HEADER_DIGITS + 1)
        .position(|&b| b == b'\n')
        .ok_or(SignError::NotAFrame)?;
    let body = &frame[newline + 1..];
    let declared = std::str::from_utf8(&frame[..newline])
        .ok()
        .and_then(|d| d.parse::<usize>().ok());
    if declared != Some(body.len()) || body.last() != Some(&b'}') || body.len() < 2 {
        return Err(SignError::NotAFrame);
    }
    let mut signed = body[..body.len() - 1].to_vec();
    signed.extend_from_slice(JSON_MEMBER);
    signed.extend_from_slice(&[b'0'; 2 * AUTHENTICATOR_LEN]);
    signed.extend_from_slice(JSON_TAIL);
    if signed.len() > MAX_FRAME_LEN {
        return Err(SignError::TooLong);
    }
    out.truncate(start);
    out.extend_from_slice(signed.len().to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&signed);
    let at = out.len() - start - JSON_TAIL.len() - 2 * AUTHENTICATOR_LEN;
    let mac = key.mac(&out[start..], at, 2 * AUTHENTICATOR_LEN, b'0');
    for (i, b) in mac.iter().enumerate() {
        let digits = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]];
        out[start + at + 2 * i..start + at + 2 * i + 2].copy_from_slice(&digits);
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Where the AUTHENTICATOR's value starts in `frame` (one complete frame of `codec`), if it
/// carries one: the first AVP 14 of 32 bytes of a binary frame, or the digits of a text body
/// that ends with the `"auth"` member.
pub(crate) fn authenticator_at(codec: Codec, frame: &[u8]) -> Option<usize> {
    match codec {
        Codec::Binary => {
            let mut at = HEADER_LEN;
            for avp in AvpIter::new(frame.get(HEADER_LEN..)?) {
                let avp = avp.ok()?;
                if avp.attribute == Attribute::Authenticator as u8
                    && avp.value.len() == AUTHENTICATOR_LEN
                {
                    return Some(at + AVP_HEADER_LEN);
                }
                at += AVP_HEADER_LEN + avp.value.len();
            }
            None
        }
        Codec::Json => {
            let digits = 2 * AUTHENTICATOR_LEN;
            let tail = frame.len().checked_sub(JSON_TAIL.len())?;
            let at = tail.checked_sub(digits)?;
            let member = at.checked_sub(JSON_MEMBER.len())?;
            let shaped = frame[tail..] == *JSON_TAIL
                && frame[member..at] == *JSON_MEMBER
                && frame[at..tail].iter().all(u8::is_ascii_hexdigit);
            shaped.then_some(at)
        }
    }
}

/// True when the AUTHENTICATOR whose value starts at `at` in `frame` is `key`'s signature.
fn signed_by(codec: Codec, frame: &[u8], at: usize, key: &Key) -> bool {
    match codec {
        Codec::Binary => same_mac(
            &key.mac(frame, at, AUTHENTICATOR_LEN, 0),
            &frame[at..at + AUTHENTICATOR_LEN],
        ),
        Codec::Json => {
            let mut value = [0u8; AUTHENTICATOR_LEN];
            let digits = &frame[at..at + 2 * AUTHENTICATOR_LEN];
            for (v, pair) in value.iter_mut().zip(digits.chunks_exact(2)) {
                *v = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
            }
            same_mac(&key.mac(frame, at, 2 * AUTHENTICATOR_LEN, b'0'), &value)
        }
    }
}

/// The value of an ASCII hexadecimal digit (checked by the caller).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'A').wrapping_add(10) & 0xF,
    }
}

/// A node's key, as a [`Verifier`] gives it, with the slot of the node's replay [`Marks`].
#[derive(Debug, Clone, Copy)]
pub struct NodeKey<'a> {
    /// The node's key.
    pub key: &'a Key,
    /// The verifier's number for the node's [`Marks`], given back to [`Verifier::advance`]
    /// and [`Verifier::withdraw`]; it holds while [`Verifier::generation`] stays the same.
    pub slot: usize,
}

/// What a session checks signed reports against; its caller provides it through
/// [`crate::server::ReportSink::verifier`].
pub trait Verifier {
    /// The key of `node_id`, if it has one.
    fn key(&self, node_id: &str) -> Option<NodeKey<'_>>;
    /// Changes whenever the keys may have changed (a reload): a session keeps the key it
    /// looked up last, for its next reports, only while this stays the same.
    fn generation(&self) -> u64;
    /// The caller's clock, ms since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// How far a report's TIMESTAMP may be from [`Verifier::now_ms`], in ms.
    fn window_ms(&self) -> u64;
    /// Records `sequence` for `instance` in the node's [`Marks`] at `slot` (see
    /// [`Marks::advance`]); true when it is above every SEQUENCE recorded for them.
    fn advance(&mut self, slot: usize, instance: Option<u64>, sequence: u64) -> bool;
    /// Takes back the `sequence` just recorded for `instance` in the [`Marks`] at `slot` (see
    /// [`Marks::withdraw`]): the report was refused after its check (503), so that its resend
    /// is not a replay.
    fn withdraw(&mut self, slot: usize, instance: Option<u64>, sequence: u64);
}

/// Why a report is not authenticated (answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The report names no NODE_ID.
    Unnamed,
    /// The report carries no AUTHENTICATOR.
    Unsigned,
    /// The NODE_ID has no key on this node.
    UnknownNode,
    /// The AUTHENTICATOR is not the NODE_ID's signature of the frame.
    BadSignature,
    /// The report carries no TIMESTAMP or no SEQUENCE, which the replay rule needs.
    Unordered,
    /// The TIMESTAMP is outside the node's window of its clock.
    Stale,
    /// The SEQUENCE is not above the last one accepted from this NODE_ID and INSTANCE.
    Replayed,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Unnamed => "unauthorized: a signed report needs a NODE_ID",
            AuthFailure::Unsigned => "unauthorized: the report carries no AUTHENTICATOR",
            AuthFailure::UnknownNode => "unauthorized: no key for this NODE_ID",
            AuthFailure::BadSignature => "unauthorized: the AUTHENTICATOR does not match",
            AuthFailure::Unordered => "unauthorized: a signed report needs TIMESTAMP and SEQUENCE",
            AuthFailure::Stale => "unauthorized: TIMESTAMP is outside the node's window",
            AuthFailure::Replayed => "unauthorized: SEQUENCE was seen already (a replay)",
        })
    }
}

impl std::error::Error for AuthFailure {}

/// A session's copy of the key it checked its last signed report with: a connection's
/// reports come from one node, and its next ones need no look-up while the verifier's
/// [`Verifier::generation`] stays the same.
#[derive(Debug)]
pub(crate) struct KeyCache {
    node: String,
    generation: u64,
    key: Key,
    /// The node's slot ([`NodeKey::slot`]).
    slot: usize,
}

impl KeyCache {
    /// The key and slot of `node` from `cache` (then true), or else from `v` (then kept in
    /// `cache`, whose memory is reused, so that a session whose reports alternate between
    /// nodes does not allocate).
    fn key<'c>(
        cache: &'c mut Option<Box<KeyCache>>,
        v: &dyn Verifier,
        node: &str,
    ) -> Option<(&'c KeyCache, bool)> {
        let generation = v.generation();
        let hit = cache
            .as_ref()
            .is_some_and(|c| c.generation == generation && c.node == node);
        if !hit {
            let found = v.key(node)?;
            let (key, slot) = (found.key.clone(), found.slot);
            match cache {
                Some(c) => {
                    c.node.clear();
                    c.node.push_str(node);
                    (c.generation, c.key, c.slot) = (generation, key, slot);
                }
                None => {
                    *cache = Some(Box::new(KeyCache {
                        node: node.to_string(),
                        generation,
                        key,
                        slot,
                    }))
                }
            }
        }
        cache.as_deref().map(|c| (c, hit))
    }
}

/// A frame to check the signature of.
pub(crate) enum SignedFrame<'a> {
    /// A frame by itself, with where its AUTHENTICATOR's value starts if it carries one.
    One {
        /// The frame.
        frame: &'a [u8],
        /// Where its AUTHENTICATOR's value starts.
        at: Option<usize>,
    },
    /// The binary frame of `len` bytes at the run's position, whose AUTHENTICATOR's value
    /// starts at `at`: its signature may be checked with those of the frames like it that
    /// follow it ([`RunVerdicts`]).
    InRun {
        /// Where the frame is.
        run: Run<'a>,
        /// Its length.
        len: usize,
        /// Where its AUTHENTICATOR's value starts, from the frame's start.
        at: usize,
    },
}

/// Where a session reads: the input of one [`crate::ServerSession::handle_input`] call, the
/// position of the next frame, the output bytes still free before the call's limit (so as many
/// frames may be answered now as their acks fill), and the verdicts on the signatures after it
/// checked already.
pub(crate) struct Run<'a> {
    pub(crate) input: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) room: usize,
    pub(crate) verdicts: &'a mut RunVerdicts,
}

impl SignedFrame<'_> {
    fn authenticator(&self) -> Option<usize> {
        match self {
            SignedFrame::One { at, .. } => *at,
            SignedFrame::InRun { at, .. } => Some(*at),
        }
    }
}

/// Verdicts on the signatures of frames of one length that follow each other in an input,
/// checked a few at a time with one key: a frame's HMAC is a chain of SHA-256 compressions,
/// each waiting for the one before, and the chains of a few frames overlap in the processor.
/// Only for the input of one call and the key a session keeps ([`KeyCache`]): it is cleared
/// when that key changes.
#[derive(Debug, Default)]
pub(crate) struct RunVerdicts {
    /// Where the next frame with a verdict starts in the input.
    next: usize,
    /// Its length, and where its AUTHENTICATOR's value starts.
    len: usize,
    at: usize,
    /// How many verdicts are left, and the verdicts, the next one in the lowest bit.
    left: usize,
    authentic: u32,
}

impl RunVerdicts {
    /// Whether the frame of `len` bytes at `pos` in `input`, AUTHENTICATOR at `at`, is signed
    /// by `key`: a verdict taken earlier, or else checked now with the frames of its length
    /// and header after it, up to `most` (at least 1) and [`LANES`] in all.
    fn verdict(
        &mut self,
        key: &Key,
        input: &[u8],
        (pos, len, at): (usize, usize, usize),
        most: usize,
    ) -> bool {
        if self.left > 0 && (self.next, self.len, self.at) == (pos, len, at) {
            let authentic = self.authentic & 1 == 1;
            self.left -= 1;
            self.authentic >>= 1;
            self.next += len;
            return authentic;
        }
        let first = &input[pos..pos + len];
        // Like the first frame: its length, type and AUTHENTICATOR header. A frame that turns
        // out not to be of the first one's layout is checked again when it comes, on its own.
        let alike = |f: &&[u8]| {
            f[..HEADER_LEN] == first[..HEADER_LEN]
                && f[at - AVP_HEADER_LEN..at] == first[at - AVP_HEADER_LEN..at]
        };
        let run = input[pos..].chunks_exact(len).take(most.clamp(1, LANES));
        let (frames, n) = lanes(run.take_while(alike));
        let macs = key.macs(&frames[..n], at);
        let authentic =
            frames[..n]
                .iter()
                .zip(&macs)
                .enumerate()
                .fold(0u32, |bits, (i, (f, mac))| {
                    bits | u32::from(same_mac(mac, &f[at..at + AUTHENTICATOR_LEN])) << i
                });
        *self = RunVerdicts {
            next: pos + len,
            len,
            at,
            left: n - 1,
            authentic: authentic >> 1,
        };
        authentic & 1 == 1
    }
}

/// Checks the report `report` with SEQUENCE `sequence`, received as `signed`, against `v`,
/// looking its key up through the session's `cache`; the AUTHENTICATOR's place in the frame
/// is [`authenticator_at`]'s, or what a fast path knows of its layout. The signature is
/// checked before the replay marks are touched, so that a forged report cannot advance them.
pub(crate) fn check(
    v: &mut dyn Verifier,
    cache: &mut Option<Box<KeyCache>>,
    codec: Codec,
    signed: SignedFrame<'_>,
    report: &Report<'_>,
    sequence: Option<u64>,
) -> Result<(), AuthFailure> {
    let node = report.node_id.as_deref().ok_or(AuthFailure::Unnamed)?;
    let at = signed.authenticator().ok_or(AuthFailure::Unsigned)?;
    let (kept_key, kept) = KeyCache::key(cache, v, node).ok_or(AuthFailure::UnknownNode)?;
    let (key, slot) = (&kept_key.key, kept_key.slot);
    let authentic = match signed {
        SignedFrame::One { frame, .. } => signed_by(codec, frame, at, key),
        SignedFrame::InRun { run, len, .. } => {
            if !kept {
                *run.verdicts = RunVerdicts::default();
            }
            run.verdicts.verdict(
                key,
                run.input,
                (run.pos, len, at),
                run.room.div_ceil(ACK_FRAME_LEN),
            )
        }
    };
    if !authentic {
        return Err(AuthFailure::BadSignature);
    }
    let (Some(ts), Some(seq)) = (report.timestamp_ms, sequence) else {
        return Err(AuthFailure::Unordered);
    };
    if ts.abs_diff(v.now_ms()) > v.window_ms() {
        return Err(AuthFailure::Stale);
    }
    if !v.advance(slot, report.instance, seq) {
        return Err(AuthFailure::Replayed);
    }
    Ok(())
}

/// Takes back what a successful [`check`] of `report` (through the session's `cache`)
/// recorded in its node's marks: the report was refused after it, and its resend must not be
/// a replay.
pub(crate) fn withdraw(
    v: &mut dyn Verifier,
    cache: &Option<Box<KeyCache>>,
    report: &Report<'_>,
    sequence: Option<u64>,
) {
    let checked = cache.as_deref().filter(|c| {
        c.generation == v.generation() && report.node_id.as_deref() == Some(c.node.as_str())
    });
    if let (Some(c), Some(seq)) = (checked, sequence) {
        v.withdraw(c.slot, report.instance, seq);
    }
}

/// A verifier for tests: one node's key, a clock that stands still, a minute's window.
#[cfg(test)]
pub(crate) struct OneKey {
    pub(crate) node: &'static str,
    pub(crate) key: Key,
    pub(crate) generation: u64,
    pub(crate) now_ms: u64,
    pub(crate) marks: Marks,
}

#[cfg(test)]
impl OneKey {
    /// `node`'s key made of `secret`, the clock at `now_ms`.
    pub(crate) fn new(node: &'static str, secret: &[u8], now_ms: u64) -> OneKey {
        OneKey {
            node,
            key: Key::new(secret),
            generation: 0,
            now_ms,
            marks: Marks::default(),
        }
    }
}

#[cfg(test)]
impl Verifier for OneKey {
    fn key(&self, node_id: &str) -> Option<NodeKey<'_>> {
        (node_id == self.node).then_some(NodeKey {
            key: &self.key,
            slot: 7,
        })
    }
    fn generation(&self) -> u64 {
        self.generation
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn window_ms(&self) -> u64 {
        60_000
    }
    fn advance(&mut self, slot: usize, instance: Option<u64>, sequence: u64) -> bool {
        assert_eq!(slot, 7, "the node's slot");
        self.marks.advance(instance, sequence)
    }
    fn withdraw(&mut self, slot: usize, instance: Option<u64>, sequence: u64) {
        assert_eq!(slot, 7, "the node's slot");
        self.marks.withdraw(instance, sequence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Message};

    /// A verifier and the key cache of the session it checks for.
    struct Fixed {
        v: OneKey,
        cache: Option<Box<KeyCache>>,
    }

    fn fixed(secret: &[u8]) -> Fixed {
        Fixed {
            v: OneKey::new("host-1", secret, 1_000_000),
            cache: None,
        }
    }

    fn report(node: &str, seq: u64, ts: u64) -> Message<'_> {
        Message {
            sequence: Some(seq),
            body: Body::StatReport(Report {
                cpu_percent: 10,
                mem_percent: 20,
                timestamp_ms: Some(ts),
                node_id: Some(node.into()),
                instance: Some(7),
                fleet: None,
            }),
        }
    }

    fn signed(codec: Codec, msg: &Message<'_>, key: &Key) -> Vec<u8> {
        let mut out = vec![0xEE];
        codec.encode(msg, &mut out).unwrap();
        sign(codec, &mut out, 1, key).unwrap();
        out.remove(0);
        out
    }

    fn verify(v: &mut Fixed, codec: Codec, frame: &[u8]) -> Result<(), AuthFailure> {
        let crate::Status::Complete((crate::Decoded::Message(msg), used)) =
            codec.decode(frame).unwrap()
        else {
            panic!("a valid signed frame");
        };
        assert_eq!(used, frame.len());
        let Body::StatReport(r) = &msg.body else {
            panic!("a report")
        };
        let signed = SignedFrame::One {
            frame,
            at: authenticator_at(codec, frame),
        };
        check(&mut v.v, &mut v.cache, codec, signed, r, msg.sequence)
    }

    #[test]
    fn signed_reports_pass_once_and_tampering_fails() {
        for codec in [Codec::Binary, Codec::Json] {
            let key = Key::new(b"s3cret");
            let mut v = fixed(b"s3cret");
            let frame = signed(codec, &report("host-1", 5, 1_000_500), &key);
            assert_eq!(verify(&mut v, codec, &frame), Ok(()), "{codec:?}");
            assert_eq!(
                verify(&mut v, codec, &frame),
                Err(AuthFailure::Replayed),
                "{codec:?}"
            );
            let later = signed(codec, &report("host-1", 6, 1_000_600), &key);
            let mut tampered = later.clone();
            let cpu = match codec {
                Codec::Binary => 5,
                Codec::Json => later.windows(3).position(|w| w == b"10%").unwrap() + 1,
            };
            tampered[cpu] += 1;
            assert!(verify(&mut v, codec, &tampered).is_err(), "{codec:?}");
            assert_eq!(verify(&mut v, codec, &later), Ok(()), "{codec:?}");
            let stale = signed(codec, &report("host-1", 9, 1), &key);
            assert_eq!(verify(&mut v, codec, &stale), Err(AuthFailure::Stale));
            let other = signed(codec, &report("host-2", 9, 1_000_000), &key);
            assert_eq!(verify(&mut v, codec, &other), Err(AuthFailure::UnknownNode));
            let wrong_key = signed(codec, &report("host-1", 10, 1_000_000), &Key::new(b"x"));
            assert_eq!(
                verify(&mut v, codec, &wrong_key),
                Err(AuthFailure::BadSignature)
            );
            let mut unsigned = Vec::new();
            codec
                .encode(&report("host-1", 11, 1_000_000), &mut unsigned)
                .unwrap();
            assert_eq!(verify(&mut v, codec, &unsigned), Err(AuthFailure::Unsigned));
        }
    }

    #[test]
    fn a_changed_key_is_used_as_soon_as_the_generation_moves() {
        let (old, new) = (Key::new(b"old"), Key::new(b"new"));
        let mut v = fixed(b"old");
        v.v.generation = 1;
        let codec = Codec::Binary;
        let first = signed(codec, &report("host-1", 1, 1_000_000), &old);
        assert_eq!(verify(&mut v, codec, &first), Ok(()));
        assert!(v.cache.is_some(), "the key is kept for the next report");
        v.v.key = new.clone();
        v.v.generation = 2;
        let stale_key = signed(codec, &report("host-1", 2, 1_000_000), &old);
        assert_eq!(
            verify(&mut v, codec, &stale_key),
            Err(AuthFailure::BadSignature)
        );
        let fresh_key = signed(codec, &report("host-1", 3, 1_000_000), &new);
        assert_eq!(verify(&mut v, codec, &fresh_key), Ok(()));
        let other = signed(codec, &report("host-2", 4, 1_000_000), &new);
        assert_eq!(verify(&mut v, codec, &other), Err(AuthFailure::UnknownNode));
        let again = signed(codec, &report("host-1", 5, 1_000_000), &new);
        assert_eq!(
            verify(&mut v, codec, &again),
            Ok(()),
            "host-1's key is still kept"
        );
    }

    #[test]
    fn a_peer_session_signs_every_report_it_sends() {
        for codec in [Codec::Binary, Codec::Json] {
            let mut peer: crate::PeerSession =
                crate::PeerSession::new(codec, crate::peer::Transport::Stream, Default::default());
            peer.sign_reports_with(Key::from_secret_file(b"s3cret\r\n").unwrap());
            let Body::StatReport(r) = report("host-1", 0, 1_000_000).body else {
                unreachable!()
            };
            let mut out = Vec::new();
            let now = std::time::Instant::now();
            let first = peer.send_reports(now, &r, 9, (), &mut out).unwrap();
            // The run (signed four frames at a time) is what signing each report by itself gives.
            let mut one_by_one = Vec::new();
            for seq in first..first + 9 {
                let msg = Message {
                    sequence: Some(u64::from(seq)),
                    body: Body::StatReport(r.clone()),
                };
                let at = one_by_one.len();
                codec.encode(&msg, &mut one_by_one).unwrap();
                sign(codec, &mut one_by_one, at, &Key::new(b"s3cret")).unwrap();
            }
            assert_eq!(out, one_by_one, "{codec:?}");
            let one = crate::peer::Request::Report(r);
            peer.send_with_sequence(now, 9, &one, (), &mut out).unwrap();
            let mut v = fixed(b"s3cret");
            let mut rest = &out[..];
            let mut accepted = 0;
            while !rest.is_empty() {
                let crate::Status::Complete((_, used)) = codec.decode(rest).unwrap() else {
                    panic!("complete frames")
                };
                assert_eq!(verify(&mut v, codec, &rest[..used]), Ok(()), "{codec:?}");
                rest = &rest[used..];
                accepted += 1;
            }
            assert_eq!(accepted, 10);
        }
        assert!(Key::from_secret_file(b"\n").is_none());
    }

    #[test]
    fn the_authenticator_is_the_hmac_of_the_frame_with_its_value_zeroed() {
        use hmac::{Hmac, KeyInit, Mac};
        for codec in [Codec::Binary, Codec::Json] {
            let frame = signed(codec, &report("host-1", 5, 1_000_500), &Key::new(b"s3cret"));
            let at = authenticator_at(codec, &frame).expect("signed");
            let (len, zero) = match codec {
                Codec::Binary => (AUTHENTICATOR_LEN, 0),
                Codec::Json => (2 * AUTHENTICATOR_LEN, b'0'),
            };
            let mut zeroed = frame.clone();
            zeroed[at..at + len].fill(zero);
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(&zeroed);
            let want: [u8; AUTHENTICATOR_LEN] = mac.finalize().into_bytes().into();
            let value = &frame[at..at + len];
            match codec {
                Codec::Binary => assert_eq!(value, want),
                Codec::Json => {
                    let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
                    assert_eq!(value, hex.as_bytes());
                }
            }
        }
    }

    #[test]
    fn signing_twice_or_a_non_frame_is_refused() {
        let key = Key::new(b"k");
        let mut out = signed(Codec::Binary, &report("host-1", 1, 1), &key);
        let before = out.clone();
        assert_eq!(
            sign(Codec::Binary, &mut out, 0, &key),
            Err(SignError::AlreadySigned)
        );
        assert_eq!(out, before);
        let mut short = vec![0, 9, 3];
        assert_eq!(
            sign(Codec::Binary, &mut short, 0, &key),
            Err(SignError::NotAFrame)
        );
        let mut text = b"3\n{}x".to_vec();
        assert_eq!(
            sign(Codec::Json, &mut text, 0, &key),
            Err(SignError::NotAFrame)
        );
    }
}
