//! The lease that makes one master of a database the leader, as Kubernetes
//! elects with a lease object: one row, taken when free or expired (by the
//! database's clock), renewed by compare-and-set on holder and epoch, the
//! epoch raised by every new holder. Beside it, every master's row in
//! `grid_masters`, so that standbys can say where the leader is and
//! `grid-cli admin masters` can list them.

use super::{Fence, Pool, db_err};
use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;

/// How this master is reached, as others are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The master's name, unique among the masters of a database.
    pub name: String,
    /// Its gRPC URL, e.g. `https://10.0.0.5:7070`.
    pub grpc_url: String,
    /// Its HTTP URL, or empty when it serves no HTTP.
    pub http_url: String,
}

/// Who leads, as the lease row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The holder's name.
    pub name: String,
    /// Its gRPC URL, if it announced one.
    pub grpc_url: String,
    /// Its HTTP URL, or empty.
    pub http_url: String,
    /// The epoch it holds.
    pub epoch: u64,
}

/// One master of the database, as `grid-cli admin masters` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRow {
    pub name: String,
    pub grpc_url: String,
    pub http_url: String,
    pub version: String,
    /// Whether it holds the lease now, unexpired.
    pub leader: bool,
    /// The lease's epoch (the leader's; 0 for the others).
    pub epoch: u64,
    /// When the leader's lease expires, ms since the Unix epoch (0 for the others).
    pub lease_expires_ms: u64,
    /// When it last renewed its lease (the leader), ms since the Unix epoch.
    pub renewed_ms: u64,
    pub started_ms: u64,
    /// When it was last heard of (a standby polls, a leader renews).
    pub seen_ms: u64,
}

/// The lease, as one master takes, renews and gives it up.
pub struct Lease {
    pool: Pool,
    fence: Arc<Fence>,
    reach: Reach,
    duration: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lease {
    /// The lease of `pool`'s database, as the master `reach` holds it for
    /// `duration` at a time, its writes fenced by `fence`.
    pub fn new(pool: Pool, fence: Arc<Fence>, reach: Reach, duration: Duration) -> Self {
        Self { pool, fence, reach, duration }
    }

    /// How long a lease lasts unrenewed.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// This master's fence.
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// How this master is reached.
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// Records this master in `grid_masters`, started now.
    pub async fn announce(&self) -> Result<()> {
        let client = self.pool.get().await.map_err(db_err)?;
        let r = &self.reach;
        client
            .execute(
                "INSERT INTO grid_masters (name, grpc_url, http_url, version, started_at, seen_at)
                 VALUES ($1, $2, $3, $4, now(), now())
                 ON CONFLICT (name) DO UPDATE SET grpc_url = $2, http_url = $3, version = $4,
                     started_at = now(), seen_at = now()",
                &[&r.name, &r.grpc_url, &r.http_url, &env!("CARGO_PKG_VERSION")],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Notes that this master is alive (a standby, each time it polls).
    pub async fn seen(&self) -> Result<()> {
        let client = self.pool.get().await.map_err(db_err)?;
        client
            .execute("UPDATE grid_masters SET seen_at = now() WHERE name = $1", &[&self.reach.name])
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Takes the lease if it is free or expired: the new epoch, or `None`
    /// while another master holds it.
    pub async fn try_take(&self) -> Result<Option<u64>> {
        let client = self.pool.get().await.map_err(db_err)?;
        let row = client
            .query_opt(
                "UPDATE grid_lease SET holder = $1, epoch = epoch + 1,
                     expires_at = now() + make_interval(secs => $2::bigint / 1000.0),
                     acquired_at = now(), renewed_at = now()
                 WHERE id = 1 AND expires_at < now()
                 RETURNING epoch",
                &[&self.reach.name, &ms(self.duration)],
            )
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    /// Renews the lease held at the fence's epoch: `false` if it is not
    /// held any more (another master took it).
    pub async fn renew(&self) -> Result<bool> {
        let epoch = i64::try_from(self.fence.epoch()).unwrap_or(i64::MAX);
        let client = self.pool.get().await.map_err(db_err)?;
        let renewed = client
            .execute(
                "UPDATE grid_lease SET expires_at = now() + make_interval(secs => $3::bigint / 1000.0),
                     renewed_at = now()
                 WHERE id = 1 AND holder = $1 AND epoch = $2",
                &[&self.reach.name, &epoch, &ms(self.duration)],
            )
            .await
            .map_err(db_err)?;
        client
            .execute("UPDATE grid_masters SET seen_at = now() WHERE name = $1", &[&self.reach.name])
            .await
            .map_err(db_err)?;
        Ok(renewed == 1)
    }

    /// Gives the lease up at once (a clean shutdown), so that a standby
    /// takes over without waiting for it to expire.
    pub async fn release(&self) -> Result<()> {
        let epoch = i64::try_from(self.fence.epoch()).unwrap_or(i64::MAX);
        self.fence.lose();
        let client = self.pool.get().await.map_err(db_err)?;
        client
            .execute(
                "UPDATE grid_lease SET expires_at = now() - interval '1 millisecond'
                 WHERE id = 1 AND holder = $1 AND epoch = $2",
                &[&self.reach.name, &epoch],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The master that holds the lease unexpired, if any.
    pub async fn leader(&self) -> Result<Option<Leader>> {
        let client = self.pool.get().await.map_err(db_err)?;
        let row = client
            .query_opt(
                "SELECT l.holder, l.epoch, coalesce(m.grpc_url, ''), coalesce(m.http_url, '')
                 FROM grid_lease l LEFT JOIN grid_masters m ON m.name = l.holder
                 WHERE l.id = 1 AND l.expires_at > now() AND l.holder <> ''",
                &[],
            )
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| Leader {
            name: r.get(0),
            epoch: r.get::<_, i64>(1) as u64,
            grpc_url: r.get(2),
            http_url: r.get(3),
        }))
    }

    /// Every master of the database, the leader first, then by name, and
    /// the database's clock now (ms since the Unix epoch).
    pub async fn masters(&self) -> Result<(Vec<MasterRow>, u64)> {
        masters(&self.pool).await
    }
}

/// Every master of the database behind `pool`, the leader first, and the
/// database's clock now.
pub async fn masters(pool: &Pool) -> Result<(Vec<MasterRow>, u64)> {
    let client = pool.get().await.map_err(db_err)?;
    let now: i64 =
        client.query_one("SELECT (extract(epoch FROM now()) * 1000)::bigint", &[]).await.map_err(db_err)?.get(0);
    let rows = client
        .query(
            "SELECT m.name, m.grpc_url, m.http_url, m.version,
                 (l.holder = m.name AND l.expires_at > now()) AS leader,
                 l.epoch,
                 (extract(epoch FROM l.expires_at) * 1000)::bigint,
                 coalesce((extract(epoch FROM l.renewed_at) * 1000)::bigint, 0),
                 (extract(epoch FROM m.started_at) * 1000)::bigint,
                 (extract(epoch FROM m.seen_at) * 1000)::bigint
             FROM grid_masters m CROSS JOIN grid_lease l
             WHERE l.id = 1
             ORDER BY leader DESC, m.name",
            &[],
        )
        .await
        .map_err(db_err)?;
    let rows = rows
        .iter()
        .map(|r| {
            let leader: bool = r.get(4);
            let at = |i: usize| r.get::<_, i64>(i).max(0) as u64;
            MasterRow {
                name: r.get(0),
                grpc_url: r.get(1),
                http_url: r.get(2),
                version: r.get(3),
                leader,
                epoch: if leader { at(5) } else { 0 },
                lease_expires_ms: if leader { at(6) } else { 0 },
                renewed_ms: if leader { at(7) } else { 0 },
                started_ms: at(8),
                seen_ms: at(9),
            }
        })
        .collect();
    Ok((rows, now.max(0) as u64))
}
