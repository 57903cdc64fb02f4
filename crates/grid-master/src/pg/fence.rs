//! The fence: the epoch of the lease this master holds, which every write
//! transaction it makes checks first. A master that lost the lease (it was
//! paused, or cut off from the database, while another took over) finds
//! the epoch moved on: its transaction is rolled back, the fence is marked
//! lost, and the master steps down.

use crate::error::{MasterError, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// The first statement of every write transaction of the leader. `FOR
/// SHARE` holds the lease row until the transaction ends, so a standby's
/// takeover (an `UPDATE` of that row) waits for writes in flight, and
/// every write after it sees the new epoch.
pub const CHECK: &str = "SELECT 1 FROM grid_lease WHERE id = 1 AND holder = $1 AND epoch = $2 FOR SHARE";

/// This master's hold on the lease, as its writes check it.
#[derive(Debug)]
pub struct Fence {
    master: String,
    /// The epoch of the lease held; 0 while none is.
    epoch: AtomicU64,
    lost: watch::Sender<bool>,
}

impl Fence {
    /// The fence of the master named `master`, holding no lease yet.
    pub fn new(master: impl Into<String>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self { master: master.into(), epoch: AtomicU64::new(0), lost: watch::channel(false).0 })
    }

    /// The master's name, as the lease's holder.
    pub fn master(&self) -> &str {
        &self.master
    }

    /// The epoch held, or 0.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The master now leads at `epoch`.
    pub fn hold(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
        self.lost.send_replace(false);
    }

    /// The lease is lost: every write from now on is refused, and those
    /// who [`subscribe`](Self::subscribe)d hear of it.
    pub fn lose(&self) {
        self.epoch.store(0, Ordering::Release);
        self.lost.send_replace(true);
    }

    /// Whether the lease was lost since it was last held.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Changes to whether the lease is lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.lost.subscribe()
    }

    /// The error a write gets when this master does not hold the lease.
    pub fn refused(&self) -> MasterError {
        MasterError::NotLeader(format!("master `{}` no longer holds the lease; its write was refused", self.master))
    }

    /// Runs [`CHECK`] in `tx`: `Ok` if this master still holds the lease
    /// at its epoch (and then holds the row until `tx` ends); otherwise
    /// marks the fence lost and refuses.
    pub async fn check(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
        let epoch = self.epoch();
        if epoch == 0 {
            return Err(self.refused());
        }
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let held = tx.query_opt(CHECK, &[&self.master, &epoch]).await.map_err(super::db_err)?;
        if held.is_none() {
            tracing::warn!(master = %self.master, epoch, "the lease moved on: writes refused, stepping down");
            self.lose();
            return Err(self.refused());
        }
        Ok(())
    }
}
