//! Batched UDP IO: one `recvmmsg` takes up to [`BATCH`] datagrams off a socket, one
//! `sendmmsg` sends up to [`BATCH`] queued datagrams, each to its own address (or, on a
//! connected socket, to the peer).
//!
//! A wake-up then costs two system calls for up to 64 datagrams instead of 128. [`Inbox`]
//! and [`Outbox`] own their buffers (allocated once per worker); the message headers are one
//! set per thread. They move bytes and addresses and never look inside a datagram.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Most datagrams one system call receives or sends.
pub const BATCH: usize = 64;
/// Largest datagram received whole. Every message this protocol defines fits with room to
/// spare (the largest, a report with every attribute, is under 300 bytes); a larger one is
/// truncated by the kernel and dropped.
pub const MAX_DATAGRAM: usize = 2048;

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Where it came from.
    pub peer: SocketAddr,
    /// Its bytes (up to [`MAX_DATAGRAM`]).
    pub len: usize,
    /// True when it was larger than [`MAX_DATAGRAM`] and cut.
    pub truncated: bool,
}

/// A thread's message headers for one direction.
type Headers = RefCell<Option<MultiHeaders<SockaddrStorage>>>;

thread_local! {
    /// The message headers of receive batches. They hold raw pointers, so they cannot move
    /// between threads: one set per thread serves every [`Inbox`] it uses. Their address
    /// fields point at their own storage, where the kernel writes each sender's address.
    static RECV_HEADERS: Headers = const { RefCell::new(None) };
    /// The headers of send batches, kept apart from the receive ones: a send points their
    /// address fields at the destinations (or at nothing on a connected socket).
    static SEND_HEADERS: Headers = const { RefCell::new(None) };
}

/// Runs `f` with one of this thread's sets of batch headers.
fn with_headers<R>(
    set: &'static std::thread::LocalKey<Headers>,
    f: impl FnOnce(&mut MultiHeaders<SockaddrStorage>) -> R,
) -> R {
    set.with(|h| {
        let mut h = h.borrow_mut();
        f(h.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None)))
    })
}

/// Receive buffers and the datagrams in them.
pub struct Inbox {
    bufs: Box<[u8]>,
    received: Vec<Received>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            bufs: vec![0; BATCH * MAX_DATAGRAM].into_boxed_slice(),
            received: Vec::with_capacity(BATCH),
        }
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("received", &self.received.len())
            .finish()
    }
}

impl Inbox {
    /// Receives up to [`BATCH`] datagrams from `socket` without blocking; returns how many
    /// (`WouldBlock` when there are none).
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_with(socket, MsgFlags::MSG_DONTWAIT)
    }

    /// Waits for a datagram on the blocking `socket` (up to its receive timeout: then
    /// `WouldBlock`), then takes it and whatever else is queued, up to [`BATCH`].
    pub fn recv_wait(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_with(socket, MsgFlags::MSG_WAITFORONE)
    }

    fn recv_with(&mut self, socket: &impl AsRawFd, flags: MsgFlags) -> io::Result<usize> {
        self.received.clear();
        let (bufs, received) = (&mut self.bufs, &mut self.received);
        with_headers(&RECV_HEADERS, |headers| {
            let mut bufs = bufs.chunks_exact_mut(MAX_DATAGRAM);
            // INVARIANT: bufs holds exactly BATCH buffers.
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(bufs.next().expect("BATCH buffers"))]);
            let results = recvmmsg(socket.as_raw_fd(), headers, slices.iter_mut(), flags, None)
                .map_err(io::Error::from)?;
            for msg in results {
                let Some(peer) = msg.address.as_ref().and_then(to_socket_addr) else {
                    continue;
                };
                received.push(Received {
                    peer,
                    len: msg.bytes.min(MAX_DATAGRAM),
                    truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                });
            }
            Ok(received.len())
        })
    }

    /// The datagrams of the last [`Inbox::recv`], with their bytes.
    pub fn datagrams(&self) -> impl Iterator<Item = (Received, &[u8])> {
        self.received
            .iter()
            .zip(self.bufs.chunks_exact(MAX_DATAGRAM))
            .map(|(r, buf)| (*r, &buf[..r.len]))
    }
}

/// What one [`Outbox::send`] handed to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams sent.
    pub datagrams: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// Datagrams queued to send, each to its own address.
pub struct Outbox {
    /// Answers back to back; `ends[i]` is where answer `i` ends.
    answers: Vec<u8>,
    ends: Vec<usize>,
    to: Vec<Option<SockaddrStorage>>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            answers: Vec::with_capacity(BATCH * 64),
            ends: Vec::with_capacity(BATCH),
            to: Vec::with_capacity(BATCH),
        }
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.ends.len())
            .finish()
    }
}

impl Outbox {
    /// The buffer to append the next datagram to; [`Outbox::queue`] then marks what was
    /// appended as one datagram.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.answers
    }

    /// Queues the bytes appended since the previous datagram as one datagram to `to` (`None`:
    /// the peer of a connected socket); nothing when none were appended.
    pub fn queue(&mut self, to: Option<SocketAddr>) {
        let start = self.ends.last().copied().unwrap_or(0);
        if self.answers.len() > start {
            self.ends.push(self.answers.len());
            self.to.push(to.map(SockaddrStorage::from));
        }
    }

    /// Queues the bytes appended since the previous datagram as datagrams of `len` bytes each
    /// (the last one shorter if they do not divide evenly), all to `to`.
    pub fn queue_each(&mut self, len: usize, to: Option<SocketAddr>) {
        let mut start = self.ends.last().copied().unwrap_or(0);
        let to = to.map(SockaddrStorage::from);
        while start < self.answers.len() {
            start = (start + len.max(1)).min(self.answers.len());
            self.ends.push(start);
            self.to.push(to);
        }
    }

    /// Datagrams queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.ends.len()
    }

    /// Sends every queued datagram without blocking and forgets them; returns how many went
    /// out and their bytes (the others are dropped, as a congested network drops datagrams).
    pub fn send(&mut self, socket: &impl AsRawFd) -> io::Result<Sent> {
        let mut sent = 0;
        let mut result = Ok(());
        while sent < self.ends.len() {
            let first = sent;
            let count = (self.ends.len() - first).min(BATCH);
            let start = if first == 0 { 0 } else { self.ends[first - 1] };
            let (answers, ends, to) = (
                &self.answers,
                &self.ends[first..first + count],
                &self.to[first..first + count],
            );
            let outcome = with_headers(&SEND_HEADERS, |headers| {
                let mut start = start;
                let mut ends = ends.iter();
                let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                    let end = ends.next().copied().unwrap_or(start);
                    let s = [IoSlice::new(&answers[start..end])];
                    start = end;
                    s
                });
                sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    slices[..count].iter(),
                    to,
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(|results| results.count())
            });
            match outcome {
                Ok(n) => {
                    sent += n;
                    if n < count {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let bytes = if sent == 0 { 0 } else { self.ends[sent - 1] };
        self.answers.clear();
        self.ends.clear();
        self.to.clear();
        match result {
            Err(e) if sent == 0 => Err(e.into()),
            _ => Ok(Sent {
                datagrams: sent,
                bytes,
            }),
        }
    }
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sends_on_a_connected_socket_leave_the_senders_of_later_receives_intact() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        let mut out = Outbox::default();
        out.buffer().extend_from_slice(b"ping");
        out.queue(None);
        assert_eq!(out.send(&client).unwrap().datagrams, 1);
        let mut inbox = Inbox::default();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&buf[..n], from).unwrap();
        client.set_nonblocking(false).unwrap();
        // Blocking socket: the receive waits for the echo.
        let mut got = 0;
        while got == 0 {
            got = inbox.recv(&client).unwrap_or(0);
        }
        let (r, bytes) = inbox.datagrams().next().unwrap();
        assert_eq!(
            (r.peer, bytes),
            (server.local_addr().unwrap(), &b"ping"[..])
        );
    }

    #[test]
    fn a_batch_receives_many_datagrams_and_answers_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let clients: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            for j in 0..2u8 {
                c.send_to(&[i as u8, j], addr).unwrap();
            }
        }
        let big = UdpSocket::bind("127.0.0.1:0").unwrap();
        big.send_to(&vec![7u8; MAX_DATAGRAM + 10], addr).unwrap();
        let mut inbox = Inbox::default();
        let mut batch = Outbox::default();
        let mut got = Vec::new();
        // The datagrams are all queued on loopback before the first receive.
        while got.len() < 7 {
            inbox.recv(&server).unwrap();
            got.extend(
                inbox
                    .datagrams()
                    .map(|(r, b)| (r.peer, b.to_vec(), r.truncated)),
            );
        }
        assert!(matches!(inbox.recv(&server), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        assert_eq!(
            got.iter().filter(|g| g.2).count(),
            1,
            "the oversized one is marked"
        );
        for (peer, bytes, truncated) in &got {
            if !truncated {
                batch
                    .buffer()
                    .extend_from_slice(&[bytes[0], bytes[1], 0xAA]);
                batch.queue(Some(*peer));
            }
        }
        batch.queue(Some(addr)); // nothing appended: nothing queued
        assert_eq!(batch.queued(), 6);
        assert_eq!(
            batch.send(&server).unwrap(),
            Sent {
                datagrams: 6,
                bytes: 18
            }
        );
        // The same six, as one run of frames of three bytes each.
        for (peer, bytes, truncated) in &got {
            if !truncated {
                batch
                    .buffer()
                    .extend_from_slice(&[bytes[0], bytes[1], 0xAA]);
                batch.queue_each(3, Some(*peer));
            }
        }
        assert_eq!(batch.queued(), 6);
        assert_eq!(batch.send(&server).unwrap().datagrams, 6);
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            let mut answers = Vec::new();
            for _ in 0..4 {
                let mut buf = [0u8; 8];
                let n = c.recv(&mut buf).unwrap();
                answers.push(buf[..n].to_vec());
            }
            answers.sort();
            let (a, b) = (vec![i as u8, 0, 0xAA], vec![i as u8, 1, 0xAA]);
            assert_eq!(answers, [a.clone(), a, b.clone(), b]);
        }
    }
}
