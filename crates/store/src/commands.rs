//! Commands for agents connected to another node that shares the store, relayed over NATS
//! request/reply.
//!
//! Every node listens on `avp.cmd.<collector>` (its collector id as a subject token). A node
//! whose terminal pauses an agent that the bucket of latest reports shows at another
//! collector sends a request there: `{"node": "ws-17", "action": "pause", "duration": 90}` (or
//! `"action": "resume"`); that node relays it to the agent and replies
//! `{"code": 200, "info": "paused for 90 s"}`. No reply within [`REMOTE_TIMEOUT`] is a 504, no
//! node listening a 404.

use crate::subject::token;
use avp_proto::result_code;
use avp_proto::server::Action;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a node waits for another node's reply (the agent's answer included).
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(6);

/// Called once with a relayed command's result code and text.
pub type CommandReply = Box<dyn FnOnce(u16, String) + Send>;

/// Carries a command to one of this node's agents: `(node, action, reply)`.
pub type OnCommand = Box<dyn Fn(String, Action, CommandReply) + Send>;

/// The subject a collector listens on for commands.
pub fn subject_of(collector: &str) -> String {
    format!("avp.cmd.{}", token(collector))
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Request {
    node: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Reply {
    code: u16,
    info: String,
}

fn encode_request(node: &str, action: Action) -> Bytes {
    let request = match action {
        Action::Pause { duration_secs } => Request {
            node: node.into(),
            action: "pause".into(),
            duration: Some(duration_secs),
        },
        Action::Resume => Request {
            node: node.into(),
            action: "resume".into(),
            duration: None,
        },
    };
    serde_json::to_vec(&request)
        .expect("a request always encodes")
        .into()
}

fn decode_request(payload: &[u8]) -> Option<(String, Action)> {
    let r: Request = serde_json::from_slice(payload).ok()?;
    let action = match (r.action.as_str(), r.duration) {
        ("pause", Some(d)) if (1..=avp_proto::MAX_PAUSE_SECS).contains(&d) => {
            Action::Pause { duration_secs: d }
        }
        ("resume", None) => Action::Resume,
        _ => return None,
    };
    Some((r.node, action))
}

/// Sends `action` for `node` to `collector` and calls `reply` with its result.
pub(crate) fn send(
    client: &async_nats::Client,
    collector: &str,
    node: &str,
    action: Action,
    reply: CommandReply,
) {
    let client = client.clone();
    let subject = subject_of(collector);
    let payload = encode_request(node, action);
    tokio::spawn(async move {
        let answer = tokio::time::timeout(REMOTE_TIMEOUT, client.request(subject, payload)).await;
        let (code, info) = match answer {
            Ok(Ok(msg)) => match serde_json::from_slice::<Reply>(&msg.payload) {
                Ok(r) => (r.code, r.info),
                Err(_) => (result_code::TIMED_OUT, "unreadable reply".into()),
            },
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => (
                result_code::NOT_FOUND,
                "not connected to any collector".into(),
            ),
            Ok(Err(e)) => (result_code::TIMED_OUT, format!("relay failed: {e}")),
            Err(_) => (
                result_code::TIMED_OUT,
                "no answer from its collector".into(),
            ),
        };
        reply(code, info);
    });
}

/// Subscribes to the commands for `collector`, and waits until the server has the
/// subscription: a message this connection sends itself after subscribing comes back only
/// once the server has handled everything the connection sent before it (a flush only says
/// the bytes left; a command from another connection could still find no responder).
pub(crate) async fn listen(
    client: &async_nats::Client,
    collector: &str,
) -> Result<async_nats::Subscriber, Box<dyn std::error::Error + Send + Sync>> {
    let requests = client.subscribe(subject_of(collector)).await?;
    let probe = client.new_inbox();
    let mut echo = client.subscribe(probe.clone()).await?;
    client.publish(probe, Vec::new().into()).await?;
    tokio::time::timeout(REMOTE_TIMEOUT, echo.next())
        .await
        .map_err(|_| "the server did not confirm the command subscription")?;
    echo.unsubscribe().await?;
    Ok(requests)
}

/// Serves the commands of `requests` until the connection ends: each is handed to
/// `on_command` and its result sent back.
pub(crate) async fn serve(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    on_command: OnCommand,
) {
    while let Some(msg) = requests.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let client = client.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        match decode_request(&msg.payload) {
            Some((node, action)) => on_command(
                node,
                action,
                Box::new(move |code, info| {
                    let _ = tx.send(Reply { code, info });
                }),
            ),
            None => {
                let _ = tx.send(Reply {
                    code: result_code::BAD_REQUEST,
                    info: "unreadable command".into(),
                });
            }
        }
        tokio::spawn(async move {
            let reply = rx.await.unwrap_or(Reply {
                code: result_code::OVERLOADED,
                info: "the node is stopping".into(),
            });
            let payload = serde_json::to_vec(&reply).expect("a reply always encodes");
            if let Err(e) = client.publish(reply_to, payload.into()).await {
                tracing::debug!("store: cannot reply to a relayed command: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        for action in [Action::Pause { duration_secs: 90 }, Action::Resume] {
            let bytes = encode_request("ws-17", action);
            assert_eq!(decode_request(&bytes), Some(("ws-17".into(), action)));
        }
        for bad in [
            &br#"{"node":"a","action":"pause"}"#[..],
            br#"{"node":"a","action":"pause","duration":0}"#,
            br#"{"node":"a","action":"dance"}"#,
            b"nope",
        ] {
            assert_eq!(
                decode_request(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(subject_of("collector 1"), "avp.cmd.collector=201");
    }
}
