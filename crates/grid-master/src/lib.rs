//! `grid-master`: accepts jobs over gRPC, stores modules by content hash,
//! queues jobs and routes each to the node with the most spare fuel.
//!
//! The binary is a thin wrapper over [`Master::serve`], so tests and the
//! embedded grid of `grid-cli` run this very code in-process.

mod admin;
pub mod auth;
pub mod ceilings;
pub mod compiling;
pub mod data_dir;
pub mod dispatch;
pub mod error;
pub mod feed;
#[cfg(test)]
mod fixtures;
pub mod gates;
pub mod history;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod leading;
pub mod listing;
pub mod metrics;
pub mod model;
pub mod modules;
pub mod nodes;
pub mod pg;
pub mod queue;
pub mod quorum;
pub mod record;
mod rpc;
pub mod rpc_counts;
pub mod scheduler;
pub mod series;
pub mod session;
pub mod spool;
pub mod standby;
pub mod state;
pub mod tenants;
pub mod tls;
pub mod trust;
pub mod watch;

pub use error::{MasterError, Result};

use record::{JobStore, SqliteStore};

pub use ceilings::SubmitCeilings;
use grid_core::wire::MAX_MESSAGE_BYTES;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
pub use tls::TlsSetup;
use tokio::net::{TcpListener, UnixListener};

/// Where a master takes connections: a TCP port, or a Unix socket (the
/// embedded grid's, reachable only through its private directory).
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// How a master is set up.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Where the module store (and later, job history) lives.
    pub data_dir: PathBuf,
    /// The largest module accepted.
    pub max_module_size: u64,
    /// How often nodes send heartbeats; three missed ones mean a dead node.
    pub heartbeat: Duration,
    /// How many times a job runs when the nodes under it are lost.
    pub max_attempts: u32,
    /// Whether each commit of the job record waits for the disk (survives a
    /// power cut) or only for the OS (survives the master's crash).
    pub fsync: bool,
    /// What one submission may ask for and bring.
    pub ceilings: SubmitCeilings,
    /// The most jobs waiting for a node; submissions past it are refused.
    pub max_queued: usize,
    /// How long past its timeout a running job may take before its node
    /// loses it and it runs elsewhere.
    pub grace: Duration,
    /// Finished jobs older than this are pruned from the record; `None`
    /// keeps them for ever.
    pub keep_finished: Option<Duration>,
    /// How long an upload may go without sending data before it is dropped.
    pub upload_idle: Duration,
    /// What the master does at start with the jobs its record holds unfinished.
    pub recovery: Recovery,
    /// How the master speaks on TCP: TLS with its own CA (the default), with
    /// the operator's certificate, or plaintext.
    pub tls: TlsSetup,
    /// How nodes' results are verified: replicas for nodes not yet
    /// trusted, strikes and quarantine (see `trust`).
    pub verify: trust::VerifyPolicy,
    /// The PostgreSQL database shared with other masters
    /// (`postgres://…`); `None` for the SQLite record in the data dir.
    pub database: Option<String>,
    /// Where modules are stored; masters on one database share one
    /// directory. `None` for `modules` in the data dir.
    pub modules_dir: Option<PathBuf>,
}

/// What a master is made of besides its config: where its record and
/// tokens are, and who it is.
pub struct Parts {
    /// Its TLS identity; `None` for plaintext.
    pub tls: Option<tls::ServerIdentity>,
    /// The job record.
    pub record: Arc<dyn JobStore>,
    /// The token registry.
    pub tokens: auth::Tokens,
    /// The admin token's text.
    pub admin: String,
    /// The lease's metrics, served with the master's own (a master of several).
    pub lease_metrics: Option<pg::lease_metrics::LeaseMetrics>,
}

/// What a starting master does with the jobs its record holds unfinished
/// (queued, or running when the last master stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Takes them back: queued ones wait again, running ones run again.
    Resume,
    /// Ends each as failed with this reason, running none of them: for a
    /// grid whose every job had one waiter, gone by now.
    End(String),
    /// Leaves them in the record as they are and takes none into memory:
    /// for a master that only serves the record to readers.
    Leave,
}

/// Uploads one connection may have in progress at once.
pub const UPLOADS_PER_CONNECTION: usize = 4;
/// Uploads in progress at once on the whole master.
pub const UPLOADS_IN_ALL: usize = 16;
/// Jobs one connection may follow at once (`WatchJob`, `RunJob`).
pub const WATCHERS_PER_CONNECTION: usize = 256;
/// How often running jobs' deadlines are checked, and changed node
/// histories written to the record.
const DEADLINE_SWEEP: Duration = Duration::from_secs(1);
/// How long a shutting-down master waits for its connections to close
/// (watchers and nodes are told at once) before it stops serving anyway.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

impl MasterConfig {
    /// Defaults for a master keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_module_size: 256 << 20,
            heartbeat: Duration::from_secs(2),
            max_attempts: 3,
            fsync: true,
            ceilings: SubmitCeilings::default(),
            max_queued: state::DEFAULT_MAX_QUEUED,
            grace: state::DEFAULT_GRACE,
            keep_finished: None,
            upload_idle: Duration::from_secs(30),
            recovery: Recovery::Resume,
            tls: TlsSetup::Auto { names: vec![] },
            verify: trust::VerifyPolicy::default(),
            database: None,
            modules_dir: None,
        }
    }
}

/// A master, ready to serve.
pub struct Master {
    live: Arc<state::LiveState>,
    modules: Arc<modules::ModuleStore>,
    tokens: Arc<auth::Tokens>,
    /// The admin token's text, as `admin.token` holds it.
    admin: String,
    config: MasterConfig,
    tls: Option<tls::ServerIdentity>,
    /// Where to serve HTTP, if anywhere.
    http: Option<http::HttpServe>,
    /// Which jobs and nodes changed, for the HTTP events feed.
    feed: Arc<feed::Feed>,
    /// The lease, for a master of several on one database.
    lease: Option<Arc<pg::lease::Lease>>,
}

impl Master {
    /// Opens the master's data directory: its module store, its SQLite
    /// record, its token registry and its TLS identity.
    pub fn open(config: MasterConfig) -> Result<Self> {
        if let Some(url) = &config.database {
            return Err(MasterError::InvalidArgument(format!(
                "a master on `{}` stands by or leads through its lease: start it with leading::start",
                pg::shown(url)
            )));
        }
        if let Some(warning) = data_dir::prepare(&config.data_dir)? {
            tracing::warn!("{warning}");
        }
        let tls = tls::prepare(&config.tls, &config.data_dir)?;
        let record: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&config.data_dir.join("grid.db"), config.fsync)?);
        let tokens = auth::Tokens::open(&config.data_dir)?;
        let (admin, path, new) = tokens.admin_token(&config.data_dir)?;
        if new {
            tracing::info!(path = %path.display(), "admin token written");
        } else {
            tracing::info!(path = %path.display(), "admin token kept");
        }
        Self::assemble(config, Parts { tls, record, tokens, admin, lease_metrics: None })
    }

    /// The master made of `parts` (a leader of several builds them from
    /// the shared database), with its module store, and the record's
    /// unfinished jobs taken back as `config.recovery` says.
    pub fn assemble(config: MasterConfig, parts: Parts) -> Result<Self> {
        let Parts { tls, record, tokens, admin, lease_metrics } = parts;
        let modules_dir = config.modules_dir.clone().unwrap_or_else(|| config.data_dir.join("modules"));
        let modules = modules::ModuleStore::open(&modules_dir, config.max_module_size)?;
        // Every change the record sees is noted for the HTTP events feed.
        let feed = feed::Feed::new();
        let record: Arc<dyn JobStore> = Arc::new(feed::Feeding::new(record, feed.clone()));
        let mut live = state::LiveState::new(record.clone(), config.max_attempts)
            .with_bounds(config.grace, config.max_queued)
            .with_policy(config.verify)
            .with_spool_dir(&config.data_dir);
        if let Some(lease) = &lease_metrics {
            live = live.with_lease_metrics(lease);
        }
        match &config.recovery {
            Recovery::Resume => {
                let recovered = live.recover(record.unfinished()?);
                if recovered > 0 {
                    tracing::info!(jobs = recovered, "unfinished jobs taken back from the record");
                }
            }
            Recovery::End(why) => {
                let ended = live.abandon(record.unfinished()?, why);
                if ended > 0 {
                    tracing::info!(jobs = ended, reason = %why, "unfinished jobs in the record ended");
                }
            }
            Recovery::Leave => {}
        }
        for tenant in tokens.tenants() {
            live.set_quota(&tenant.name, tenant.quota);
        }
        Ok(Self {
            live: Arc::new(live),
            modules: Arc::new(modules),
            tokens: Arc::new(tokens),
            admin,
            config,
            tls,
            http: None,
            feed,
            lease: None,
        })
    }

    /// The same master, serving the HTTP API, the dashboard and `/metrics`
    /// on `http` as well.
    pub fn with_http(self, http: http::HttpServe) -> Self {
        Self { http: Some(http), ..self }
    }

    /// The same master, leading on the lease's database (`grid-cli admin
    /// masters` lists its masters).
    pub fn with_lease(self, lease: Arc<pg::lease::Lease>) -> Self {
        Self { lease: Some(lease), ..self }
    }

    /// The live state, for embedding and tests.
    pub fn live(&self) -> Arc<state::LiveState> {
        self.live.clone()
    }

    /// The sha256 of the CA certificate clients and nodes should trust (the
    /// pin a join token carries); `None` when there is none to pin.
    pub fn ca_pin(&self) -> Option<[u8; 32]> {
        self.tls.as_ref().and_then(|t| t.ca_pin)
    }

    /// The CA certificate clients and nodes may copy and trust (`--ca`),
    /// when the master made its own.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().and_then(|t| t.ca_file.as_deref())
    }

    /// Whether the master speaks TLS on TCP.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The admin token, as written to `admin.token` in the data dir: what
    /// an in-process client (the embedded grid) calls with.
    pub fn admin_token(&self) -> String {
        self.admin.clone()
    }

    /// A new node credential for a public node named `name`: what an
    /// in-process node (the embedded grid's) serves with.
    pub fn node_credential(&self, name: &str) -> Result<String> {
        Ok(self.tokens.issue_node(name)?.to_string())
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then shuts down
    /// cleanly: it stops accepting connections, hands running jobs back to
    /// the queue in the record (their attempts not counted), ends every node
    /// session and watch stream with `unavailable` (nodes reconnect to the
    /// next master, `grid-cli run` follows its job there), waits at most
    /// [`SHUTDOWN_WAIT`] for connections to close, and returns once the
    /// record is flushed.
    pub async fn serve(
        self,
        listener: impl Into<Listener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let ca_pin = self.ca_pin();
        let config = self.config;
        let live = self.live;
        let tokens = self.tokens;
        let chores = tokio::spawn(chores(Arc::downgrade(&live), Arc::downgrade(&tokens), config.keep_finished));
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let closing_tx = Arc::new(closing_tx);
        let (handing_back, closer) = (live.clone(), closing_tx.clone());
        let signal = async move {
            shutdown.await;
            let jobs = handing_back.shut_down();
            tracing::info!(
                jobs,
                "shutting down: running jobs left to their nodes for the next master; ending sessions"
            );
            closer.send_replace(true);
        };
        let service =
            rpc::MasterService::new(live.clone(), self.modules, config.heartbeat, config.ceilings, config.upload_idle)
                .closing_on(closing.clone())
                .with_tokens(tokens.clone());
        let (service, admin) = (
            Arc::new(service),
            Arc::new(admin::AdminService::new(live.clone(), tokens.clone(), ca_pin).with_lease(self.lease.clone())),
        );
        // HTTP calls the very same services.
        let http = self.http.map(|serve| {
            let api = http::Api::new(
                service.clone(),
                admin.clone(),
                tokens.clone(),
                self.feed.clone(),
                closing.clone(),
                self.tls.is_some() && !serve.plaintext,
            );
            let (router, identity, closing) = (http::router(api), self.tls.clone(), closing.clone());
            tokio::spawn(async move {
                if let Err(e) = http::serve(serve, router, identity.as_ref(), closing).await {
                    tracing::error!("HTTP server failed: {e:#}");
                }
            })
        });
        let admin = grid_proto::admin_server::AdminServer::from_arc(admin).max_decoding_message_size(64 << 10);
        // No message need be larger than a submission at every ceiling.
        let server = grid_proto::master_server::MasterServer::from_arc(service)
            .max_decoding_message_size(config.ceilings.max_message())
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let builder = || tonic::transport::Server::builder().http2_keepalive_interval(Some(Duration::from_secs(10)));
        // Every call is checked before any service sees it.
        let auth = auth::AuthLayer::new(tokens.clone());
        // Every call is counted by method and code, refused ones too.
        let counted = rpc_counts::RpcCountLayer::new(live.metrics().rpc().clone());
        type Serving = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
        let server: Serving = match listener.into() {
            Listener::Tcp(listener) => {
                let builder = match &self.tls {
                    Some(identity) => builder().tls_config(tls::server_config(identity))?,
                    None => {
                        tracing::warn!(
                            "serving plaintext (--insecure): anyone on the network can read and forge calls"
                        );
                        builder()
                    }
                };
                let router = builder.layer(counted).layer(auth).add_service(server).add_service(admin);
                // Small messages (heartbeats, assignments, output chunks)
                // must not wait for Nagle's algorithm: set no-delay on every
                // accepted socket.
                let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
            }
            Listener::Unix(listener) => {
                let router = builder().layer(counted).layer(auth).add_service(server).add_service(admin);
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
            }
        };
        tokio::pin!(server);
        let mut closed = closing.clone();
        let served = tokio::select! {
            served = &mut server => served,
            // A client or node that stops reading holds its stream open:
            // past the wait, stop serving anyway.
            _ = async {
                let _ = closed.wait_for(|c| *c).await;
                tokio::time::sleep(SHUTDOWN_WAIT).await;
            } => {
                tracing::warn!(wait = ?SHUTDOWN_WAIT, "connections still open; stopping anyway");
                Ok(())
            }
        };
        chores.abort();
        // HTTP stopped taking requests at the signal; its streams end now.
        if let Some(http) = http {
            http.abort();
        }
        // A server that failed before any signal still hands its jobs back.
        if !*closing.borrow() {
            live.shut_down();
        }
        drop(closing_tx);
        live.record_nodes();
        let written = tokens.clone();
        if let Err(e) = state::blocking(move || written.write_last_used()).await {
            tracing::warn!("failed to record when tokens were last used: {e}");
        }
        live.store().flush().await.map_err(|e| anyhow::anyhow!("failed to flush the job record: {e}"))?;
        tracing::info!("job record flushed; stopped");
        served?;
        Ok(())
    }
}

/// What the master does on its own while it serves: takes overdue jobs back
/// from their nodes every second, starts the jobs of tenants whose fuel
/// buckets have refilled enough, and prunes finished jobs older than
/// `keep_finished` every minute. Ends when the live state is gone.
async fn chores(
    live: std::sync::Weak<state::LiveState>,
    tokens: std::sync::Weak<auth::Tokens>,
    keep_finished: Option<Duration>,
) {
    let mut tick = tokio::time::interval(DEADLINE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        let Some(live) = live.upgrade() else { return };
        live.expire_overdue(std::time::Instant::now());
        live.expire_awaiting(std::time::Instant::now());
        live.refuel(std::time::Instant::now());
        live.record_nodes();
        live.series().sample(&live);
        ticks += 1;
        if let Some(keep) = keep_finished
            && ticks % 60 == 1
        {
            let before = model::now_ms().saturating_sub(keep.as_millis() as u64);
            // Write-behind: the count comes with the commit, and nobody waits for it.
            drop(live.store().prune(before));
        }
        // When tokens were last used is written behind, once a minute.
        if ticks.is_multiple_of(auth::tokens::LAST_USED_WRITTEN.as_secs())
            && let Some(tokens) = tokens.upgrade()
        {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = tokens.write_last_used() {
                    tracing::warn!("failed to record when tokens were last used: {e}");
                }
            });
        }
    }
}
