//! A master among several on one database: a standby until it takes the
//! lease, then the leader until it loses the lease (a renewal that fails
//! for too long, another master's epoch, a fenced write) or is told to
//! stop; then a standby again. Only the leader holds jobs in memory: each
//! time this master takes the lease it opens the record afresh and takes
//! back the unfinished jobs, as a restarted master does.

use crate::http::HttpServe;
use crate::pg::Fence;
use crate::pg::lease::{Leader, Lease};
use crate::pg::lease_metrics::LeaseMetrics;
use crate::tls::ServerIdentity;
use crate::{Master, standby};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How a master of several is set up.
pub struct Several {
    /// The lease it takes, renews and gives up.
    pub lease: Arc<Lease>,
    /// What the lease does, as metrics.
    pub metrics: LeaseMetrics,
    /// Where it serves gRPC (a port of its own, already known).
    pub grpc: SocketAddr,
    /// Where it serves HTTP, and whether as plain HTTP.
    pub http: Option<(SocketAddr, bool)>,
    /// Its TLS identity (the standby serves with it too); `None` for plaintext.
    pub identity: Option<ServerIdentity>,
}

/// What the flags say of a master of several.
#[derive(Debug, Clone)]
pub struct Flags {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--http`, and whether `--http-plaintext`.
    pub http: Option<(SocketAddr, bool)>,
    /// `--name`.
    pub name: Option<String>,
    /// `--advertise`.
    pub advertise: Option<String>,
    /// `--lease`.
    pub lease: Duration,
}

/// The address others reach `addr` at: itself, or the host's name for an
/// unspecified one (`0.0.0.0`).
fn reachable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        return format!("{}:{}", if host.is_empty() { "localhost" } else { host }, addr.port());
    }
    addr.to_string()
}

/// Runs a master of several on the database at `url`: connects and
/// migrates, takes the grid's shared identity, prints where it listens (as
/// a lone master does), then stands by or leads until `shutdown`.
pub async fn start(
    config: crate::MasterConfig,
    url: &str,
    flags: Flags,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("--database: not a `postgres://` URL (leave it out for SQLite in the data dir)");
    }
    // Bound once to learn the ports (port 0 picks one); each role binds again.
    let grpc =
        TcpListener::bind(flags.listen).await.with_context(|| format!("failed to listen on `{}`", flags.listen))?;
    let grpc_addr = grpc.local_addr()?;
    drop(grpc);
    let http = match flags.http {
        Some((addr, plaintext)) => {
            let l = TcpListener::bind(addr).await.with_context(|| format!("failed to listen on `{addr}` (--http)"))?;
            let addr = l.local_addr()?;
            Some((addr, plaintext))
        }
        None => None,
    };
    let name = flags.name.clone().unwrap_or_else(|| reachable(grpc_addr).replace(':', "-"));
    crate::auth::tokens::check_name("--name", &name)?;
    let pool = crate::pg::connect_as(url, &format!("grid-master {name}")).await?;
    crate::pg::migrate(&pool).await?;
    let identity = crate::pg::identity::shared_identity(&pool, &config.data_dir, &config.tls).await?;
    let scheme = if identity.tls.is_some() { "https" } else { "http" };
    let grpc_url = flags.advertise.clone().unwrap_or_else(|| format!("{scheme}://{}", reachable(grpc_addr)));
    let http_url = http.map_or_else(String::new, |(addr, plaintext)| {
        let scheme = if plaintext || identity.tls.is_none() { "http" } else { "https" };
        format!("{scheme}://{}", reachable(addr))
    });
    let fence = Fence::new(name.clone());
    let reach = crate::pg::lease::Reach { name: name.clone(), grpc_url, http_url };
    let lease = Arc::new(Lease::new(pool.clone(), fence, reach, flags.lease));
    let metrics = LeaseMetrics::new();
    println!("grid-master listening on {grpc_addr}");
    if let Some((addr, _)) = http {
        println!("http: {addr}");
    }
    tracing::info!(%grpc_addr, master = %name, database = %crate::pg::shown(url), "grid-master ready");
    let tls = identity.tls.clone();
    let opening = {
        let metrics = metrics.clone();
        move |fence: Arc<Fence>| -> crate::Result<Master> {
            let record: Arc<dyn crate::record::JobStore> =
                Arc::new(crate::record::PgStore::open(pool.clone(), fence.clone())?);
            let opening = crate::auth::Tokens::open_pg(pool.clone(), fence, identity.token_key);
            let tokens = tokio::runtime::Handle::current().block_on(opening)?;
            let parts = crate::Parts {
                tls: identity.tls.clone(),
                record,
                tokens,
                admin: identity.admin_token.clone(),
                lease_metrics: Some(metrics.clone()),
            };
            Master::assemble(config.clone(), parts)
        }
    };
    let several = Several { lease, metrics, grpc: grpc_addr, http, identity: tls };
    run(several, Arc::new(opening), shutdown).await
}

/// Opens the master that serves while this one leads (on a blocking
/// thread: it reads the record).
pub type Open = Arc<dyn Fn(Arc<Fence>) -> crate::Result<Master> + Send + Sync>;

/// How often a standby tries to take the lease, and reads who leads.
fn poll_every(lease: Duration) -> Duration {
    (lease / 5).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Why leading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The master was told to stop: it gives the lease up.
    Stop,
    /// The lease was lost: the master steps down and stands by.
    Lost,
}

/// Serves as standby or leader until `shutdown` resolves.
pub async fn run(
    several: Several,
    open: Open,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let lease = several.lease.clone();
    let mut backoff = Duration::from_millis(200);
    while let Err(e) = lease.announce().await {
        tracing::warn!("cannot record this master in the database, retrying: {e}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wait_true(stop.clone()) => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    loop {
        let Some((epoch, taken_at)) = stand_by(&several, stop.clone()).await? else { return Ok(()) };
        let fence = lease.fence().clone();
        fence.hold(epoch);
        several.metrics.took(epoch);
        tracing::info!(epoch, master = %lease.reach().name, "took the lease: leading");
        let opening = open.clone();
        let opened = {
            let fence = fence.clone();
            tokio::task::spawn_blocking(move || opening(fence)).await
        };
        let master = match opened {
            Ok(Ok(master)) => master,
            Ok(Err(e)) => {
                tracing::error!("cannot lead: {e}; giving the lease up");
                give_up(&lease, &several.metrics).await;
                tokio::time::sleep(poll_every(lease.duration())).await;
                continue;
            }
            Err(e) => anyhow::bail!("opening the master failed: {e}"),
        };
        let master = master.with_lease(lease.clone());
        let listener = bind(several.grpc).await?;
        let master = match several.http {
            Some((addr, plaintext)) => master.with_http(HttpServe { listener: bind(addr).await?, plaintext }),
            None => master,
        };
        tracing::info!(epoch, "serving as the leader");
        let why = Arc::new(Mutex::new(Ended::Lost));
        let signal = {
            let (why, stop, lost) = (why.clone(), stop.clone(), fence.subscribe());
            let (lease, metrics) = (lease.clone(), several.metrics.clone());
            async move {
                tokio::select! {
                    _ = wait_true(stop) => *why.lock().unwrap_or_else(|p| p.into_inner()) = Ended::Stop,
                    _ = wait_true(lost) => tracing::warn!("a write was fenced: another master leads"),
                    _ = renew_until_lost(&lease, &metrics, taken_at) => {}
                }
            }
        };
        let served = master.serve(listener, signal).await;
        let ended = *why.lock().unwrap_or_else(|p| p.into_inner());
        match ended {
            Ended::Stop => {
                give_up(&lease, &several.metrics).await;
                return served;
            }
            Ended::Lost => {
                fence.lose();
                several.metrics.stepped_down(true);
                if let Err(e) = served {
                    tracing::debug!("the deposed leader's shutdown: {e:#}");
                }
                tracing::warn!(epoch, "lost the lease: stepped down, standing by");
            }
        }
    }
}

/// Gives the lease up (a clean stop, or a leader that cannot lead).
async fn give_up(lease: &Lease, metrics: &LeaseMetrics) {
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot give the lease up (it expires by itself): {e}");
    }
    metrics.stepped_down(false);
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    // The port was just served by this process's other role: it is free
    // again as soon as that listener is dropped.
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(%addr, "bind failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("failed to listen on `{addr}`: {e}"),
        }
    }
}

/// Serves as a standby until this master takes the lease (its epoch, and
/// when the taking was sent), or until `stop` (`None`).
async fn stand_by(several: &Several, stop: watch::Receiver<bool>) -> anyhow::Result<Option<(u64, Instant)>> {
    let lease = &several.lease;
    let (leader_tx, leader) = watch::channel::<Option<Leader>>(None);
    let (closing_tx, closing) = watch::channel(false);
    let identity = several.identity.clone();
    let grpc = {
        let serve = HttpServe { listener: bind(several.grpc).await?, plaintext: identity.is_none() };
        let (router, identity, closing) = (standby::grpc_router(leader.clone()), identity.clone(), closing.clone());
        tokio::spawn(async move { crate::http::serve(serve, router, identity.as_ref(), closing).await })
    };
    let http = match several.http {
        Some((addr, plaintext)) => {
            let serve = HttpServe { listener: bind(addr).await?, plaintext };
            let router = standby::http_router(leader.clone(), several.metrics.clone());
            let (identity, closing) = (identity.clone(), closing.clone());
            Some(tokio::spawn(async move { crate::http::serve(serve, router, identity.as_ref(), closing).await }))
        }
        None => None,
    };
    tracing::info!(master = %lease.reach().name, "standing by");
    let mut tick = tokio::time::interval(poll_every(lease.duration()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let taken = loop {
        tokio::select! {
            _ = wait_true(stop.clone()) => break None,
            _ = tick.tick() => {}
        }
        let sent = Instant::now();
        let polled = async {
            if let Some(epoch) = lease.try_take().await? {
                return Ok::<_, crate::MasterError>(Some(epoch));
            }
            leader_tx.send_replace(lease.leader().await?);
            lease.seen().await?;
            Ok(None)
        };
        match tokio::time::timeout(lease.duration(), polled).await {
            Ok(Ok(Some(epoch))) => break Some((epoch, sent)),
            Ok(Ok(None)) => {
                if failing {
                    tracing::info!("the database answers again");
                }
                failing = false;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!("cannot read the lease: {e}");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    tracing::warn!("reading the lease took longer than {:?}", lease.duration());
                }
                failing = true;
            }
        }
    };
    closing_tx.send_replace(true);
    let _ = grpc.await;
    if let Some(http) = http {
        let _ = http.await;
    }
    Ok(taken)
}

/// Renews the lease every third of its duration; returns once it is lost:
/// another master holds it, or no renewal succeeded for two thirds of its
/// duration (so this master stops before the lease can expire under it).
async fn renew_until_lost(lease: &Lease, metrics: &LeaseMetrics, taken_at: Instant) {
    let every = lease.duration() / 3;
    let give_up_after = lease.duration() * 2 / 3;
    let mut last_ok = taken_at;
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let renewed = tokio::time::timeout(every, lease.renew()).await;
        metrics.renewed(sent.elapsed(), matches!(renewed, Ok(Ok(true))));
        match renewed {
            Ok(Ok(true)) => last_ok = sent,
            Ok(Ok(false)) => {
                tracing::warn!("another master holds the lease");
                return;
            }
            Ok(Err(e)) => tracing::warn!("cannot renew the lease: {e}"),
            Err(_) => tracing::warn!("renewing the lease took longer than {every:?}"),
        }
        if last_ok.elapsed() >= give_up_after {
            tracing::warn!(
                unrenewed = ?last_ok.elapsed(),
                "the lease could not be renewed: stepping down before it expires"
            );
            return;
        }
    }
}
