//! The channel from the node's threads to the store thread: a crossbeam channel, so that a
//! worker hands its batch over without ever blocking or awaiting, and a [`Notify`] that wakes
//! the store thread's task when something arrives.

use crossbeam_channel::{Receiver, SendError, Sender, TryRecvError};
use std::sync::Arc;
use tokio::sync::Notify;

/// The sending side; clones share the channel.
pub(crate) struct ToStoreTx<T> {
    /// `None` only while it is dropped.
    tx: Option<Sender<T>>,
    wake: Arc<Notify>,
}

/// The store task's side.
pub(crate) struct FromNodes<T> {
    rx: Receiver<T>,
    wake: Arc<Notify>,
}

/// A channel from any number of threads to the store's task.
pub(crate) fn channel<T>() -> (ToStoreTx<T>, FromNodes<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let wake = Arc::new(Notify::new());
    (
        ToStoreTx {
            tx: Some(tx),
            wake: wake.clone(),
        },
        FromNodes { rx, wake },
    )
}

impl<T> ToStoreTx<T> {
    /// Queues `msg` and wakes the store's task; the message back when the store has stopped.
    pub(crate) fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.tx.as_ref().expect("set until dropped").send(msg)?;
        self.wake.notify_one();
        Ok(())
    }
}

impl<T> Clone for ToStoreTx<T> {
    fn clone(&self) -> Self {
        ToStoreTx {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T> Drop for ToStoreTx<T> {
    fn drop(&mut self) {
        // The sender goes first, so that the task woken sees the channel closed when this was
        // the last one.
        drop(self.tx.take());
        self.wake.notify_one();
    }
}

impl<T> FromNodes<T> {
    /// The next message; `None` once every sender is gone. Cancel-safe: a message is taken
    /// only when it is returned.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                // A send after the try stores a permit, so the wait cannot miss it.
                Err(TryRecvError::Empty) => self.wake.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_and_the_last_sender_gone_ends_the_stream() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rx) = channel();
        let other = tx.clone();
        let sender = std::thread::spawn(move || {
            for i in 0..1000 {
                other.send(i).unwrap();
            }
        });
        tx.send(-1).unwrap();
        drop(tx);
        let got = runtime.block_on(async {
            let mut got = Vec::new();
            while let Some(i) = rx.recv().await {
                got.push(i);
            }
            got
        });
        sender.join().unwrap();
        assert_eq!(got.len(), 1001);
        let from_thread: Vec<i32> = got.into_iter().filter(|&i| i >= 0).collect();
        assert_eq!(from_thread, (0..1000).collect::<Vec<_>>());
    }
}
