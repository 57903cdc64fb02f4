//! `grid-master`: accepts jobs over gRPC, stores modules by content hash,
//! queues jobs and routes each to the node with the most spare fuel.
//!
//! The binary is a thin wrapper over [`Master::serve`], so tests and the
//! embedded grid of `grid-cli` run this very code in-process.

pub mod dispatch;
pub mod error;
pub mod jobs;
pub mod listing;
pub mod model;
pub mod modules;
pub mod nodes;
pub mod queue;
pub mod record;
mod rpc;
pub mod scheduler;
pub mod state;
pub mod watch;

pub use error::{MasterError, Result};

use record::{JobStore, SqliteStore};

use grid_core::wire::MAX_MESSAGE_BYTES;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
}

impl MasterConfig {
    /// Defaults for a master keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_module_size: 64 << 20,
            heartbeat: Duration::from_secs(2),
            max_attempts: 3,
            fsync: true,
        }
    }
}

/// A master, ready to serve.
pub struct Master {
    live: Arc<state::LiveState>,
    modules: Arc<modules::ModuleStore>,
    config: MasterConfig,
}

impl Master {
    /// Opens the master's data directory.
    pub fn open(config: MasterConfig) -> Result<Self> {
        let modules = modules::ModuleStore::open(&config.data_dir.join("modules"), config.max_module_size)?;
        let record: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&config.data_dir.join("grid.db"), config.fsync)?);
        let live = state::LiveState::new(record.clone(), config.max_attempts);
        let recovered = live.recover(record.unfinished()?);
        if recovered > 0 {
            tracing::info!(jobs = recovered, "unfinished jobs taken back from the record");
        }
        Ok(Self { live: Arc::new(live), modules: Arc::new(modules), config })
    }

    /// The live state, for embedding and tests.
    pub fn live(&self) -> Arc<state::LiveState> {
        self.live.clone()
    }

    /// Serves gRPC on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = rpc::MasterService { live: self.live, store: self.modules, heartbeat: self.config.heartbeat };
        let server = grid_proto::master_server::MasterServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        // Small messages (heartbeats, assignments, output chunks) must not
        // wait for Nagle's algorithm: set no-delay on every accepted socket.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(server)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }
}
