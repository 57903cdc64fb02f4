//! The output a record's writer has been handed and not yet written, in
//! bytes, and a wait for it to fall under a bound. A store whose writes
//! cross a network (PostgreSQL) can fall behind a node that floods output;
//! the node's session then stops reading until the writer catches up, so
//! the flood waits in the node (and in HTTP/2's flow control), not in the
//! master's memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The most output bytes a writer is handed ahead of what it wrote before
/// node sessions wait for it.
pub const BACKLOG_BYTES: usize = 16 << 20;

/// Output handed to a writer and not yet written.
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: AtomicUsize,
    written: Notify,
}

impl Backlog {
    /// `n` more bytes were handed to the writer.
    pub fn queued(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The writer is done with `n` bytes (written, or refused).
    pub fn written(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Never below zero, whatever a caller miscounts.
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
        self.written.notify_waiters();
    }

    /// Bytes handed and not yet written.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the backlog is at its bound.
    pub fn full(&self) -> bool {
        self.bytes() >= BACKLOG_BYTES
    }

    /// Resolves once the backlog is under its bound.
    pub async fn room(&self) {
        loop {
            let written = self.written.notified();
            let mut written = std::pin::pin!(written);
            // Registered before the check: a write between the two wakes it.
            written.as_mut().enable();
            if !self.full() {
                return;
            }
            written.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_backlog_waits_until_the_writer_catches_up() {
        let backlog = Arc::new(Backlog::default());
        backlog.queued(BACKLOG_BYTES - 1);
        assert!(!backlog.full());
        backlog.room().await;
        backlog.queued(10);
        assert!(backlog.full());
        let waiting = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.room().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a full backlog let a sender on");
        backlog.written(10);
        // A bound only so that a broken build fails instead of hanging.
        tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap();
        backlog.written(usize::MAX);
        assert_eq!(backlog.bytes(), 0);
    }
}
