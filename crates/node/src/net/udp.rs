//! Batched UDP IO: one `recvmmsg` takes up to [`BATCH`] datagrams off a socket, one
//! `sendmmsg` sends the answers queued for them.
//!
//! A wake-up then costs two system calls for up to 64 datagrams instead of 128. [`Inbox`]
//! and [`Outbox`] own their buffers (allocated once per worker); they move bytes and
//! addresses and never look inside a datagram.

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
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

/// Receive buffers and the datagrams in them.
pub struct Inbox {
    bufs: Box<[u8]>,
    received: Vec<Received>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            bufs: vec![0; BATCH * MAX_DATAGRAM].into_boxed_slice(),
            received: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl Inbox {
    /// Receives up to [`BATCH`] datagrams from `socket` without blocking; returns how many
    /// (`WouldBlock` when there are none).
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.received.clear();
        let mut bufs = self.bufs.chunks_exact_mut(MAX_DATAGRAM);
        // INVARIANT: bufs holds exactly BATCH buffers.
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(bufs.next().expect("BATCH buffers"))]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for msg in results {
            let Some(peer) = msg.address.as_ref().and_then(to_socket_addr) else {
                continue;
            };
            self.received.push(Received {
                peer,
                len: msg.bytes.min(MAX_DATAGRAM),
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            });
        }
        Ok(self.received.len())
    }

    /// The datagrams of the last [`Inbox::recv`], with their bytes.
    pub fn datagrams(&self) -> impl Iterator<Item = (Received, &[u8])> {
        self.received
            .iter()
            .zip(self.bufs.chunks_exact(MAX_DATAGRAM))
            .map(|(r, buf)| (*r, &buf[..r.len]))
    }
}

/// Answers queued to send, each to its own address.
pub struct Outbox {
    /// Answers back to back; `ends[i]` is where answer `i` ends.
    answers: Vec<u8>,
    ends: Vec<usize>,
    to: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            answers: Vec::with_capacity(BATCH * 64),
            ends: Vec::with_capacity(BATCH),
            to: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl Outbox {
    /// The buffer to append the next answer to; [`Outbox::queue`] then sends what was
    /// appended to one address.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.answers
    }

    /// Queues the bytes appended since the previous answer as one datagram to `peer` (nothing
    /// when none were appended).
    pub fn queue(&mut self, peer: SocketAddr) {
        let start = self.ends.last().copied().unwrap_or(0);
        if self.answers.len() > start {
            self.ends.push(self.answers.len());
            self.to.push(Some(SockaddrStorage::from(peer)));
        }
    }

    /// Answers queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.ends.len()
    }

    /// Sends every queued answer without blocking and forgets them; returns how many went out
    /// (the others are dropped, as a congested network drops datagrams).
    pub fn send(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let mut sent = 0;
        let mut result = Ok(());
        while sent < self.ends.len() {
            let first = sent;
            let count = (self.ends.len() - first).min(BATCH);
            let mut start = if first == 0 { 0 } else { self.ends[first - 1] };
            let mut ends = self.ends[first..first + count].iter();
            let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                let end = ends.next().copied().unwrap_or(start);
                let s = [IoSlice::new(&self.answers[start..end])];
                start = end;
                s
            });
            match sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                slices[..count].iter(),
                &self.to[first..first + count],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let n = results.count();
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
        self.answers.clear();
        self.ends.clear();
        self.to.clear();
        match result {
            Err(e) if sent == 0 => Err(e.into()),
            _ => Ok(sent),
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
                batch.queue(*peer);
            }
        }
        batch.queue(addr); // nothing appended: nothing queued
        assert_eq!(batch.queued(), 6);
        assert_eq!(batch.send(&server).unwrap(), 6);
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            let mut answers = Vec::new();
            for _ in 0..2 {
                let mut buf = [0u8; 8];
                let n = c.recv(&mut buf).unwrap();
                answers.push(buf[..n].to_vec());
            }
            answers.sort();
            assert_eq!(answers, [vec![i as u8, 0, 0xAA], vec![i as u8, 1, 0xAA]]);
        }
    }
}
