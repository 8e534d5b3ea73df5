//! Small blocking test servers speaking avpd's binary codec, one thread per connection, and a
//! run configuration against them.
#![allow(dead_code)]

use avp_endpoint::{Endpoint, Scheme};
use avp_loadgen::run::RunConfig;
use avp_proto::{Body, Codec, Decoded, Message, Status};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Decides the answers to the `n`th request (counted over the whole server) `msg`.
pub type Handler = dyn Fn(u64, &Message<'_>) -> Vec<Message<'static>> + Send + Sync;

/// The answer avpd gives: an ack for a report, 200 for a command, echoing SEQUENCE.
pub fn correct_answer(msg: &Message<'_>) -> Message<'static> {
    match msg.body {
        Body::StatReport(_) => Message::ack(msg.sequence),
        _ => Message::command_response(msg.sequence, 200, "ok"),
    }
}

/// Starts a TCP server on an ephemeral loopback port; returns its address.
pub fn spawn_server(handler: Arc<Handler>) -> SocketAddr {
    spawn_server_with_peers(handler).0
}

/// The addresses the connections to a test server came from, in order.
pub type Peers = Arc<std::sync::Mutex<Vec<SocketAddr>>>;

/// Starts a TCP server on an ephemeral loopback port; returns its address and the addresses
/// its connections come from.
pub fn spawn_server_with_peers(handler: Arc<Handler>) -> (SocketAddr, Peers) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peers: Peers = Arc::default();
    let seen = peers.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Ok(a) = stream.peer_addr() {
                seen.lock().unwrap().push(a);
            }
            let handler = handler.clone();
            let counter = counter.clone();
            std::thread::spawn(move || serve(stream, &*handler, &counter));
        }
    });
    (addr, peers)
}

fn serve(mut s: TcpStream, handler: &Handler, counter: &std::sync::atomic::AtomicU64) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        out.clear();
        while let Ok(Status::Complete((decoded, len))) = Codec::Binary.decode(&buf[used..]) {
            used += len;
            if let Decoded::Message(m) = decoded {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                for a in handler(n, &m) {
                    a.encode(&mut out).expect("encodable answer");
                }
            }
        }
        buf.drain(..used);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// A run configuration against `addr` over TCP with small defaults: one connection, one
/// request outstanding, a generous timeout.
pub fn config(addr: SocketAddr) -> RunConfig {
    RunConfig {
        connections: 1,
        timeout: Duration::from_secs(30),
        duration: Duration::from_secs(1),
        ..RunConfig::new(Endpoint::new(Scheme::Tcp, addr))
    }
}
