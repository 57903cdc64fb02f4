//! The embedded grid: a master and one node started in this process, with
//! their state under the user's cache dir, when no master is named.

use anyhow::{Context, Result};
use grid_master::{Master, MasterConfig};
use grid_node::{Node, NodeConfig};
use std::path::PathBuf;
use tokio::sync::watch;

/// A running embedded grid; it stops when dropped.
pub struct Embedded {
    /// The in-process master's URL.
    pub url: String,
    _stop: watch::Sender<()>,
}

/// Where the embedded grid keeps its state.
pub fn state_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("embedded")
}

impl Embedded {
    /// Starts a master on a free loopback port and one node serving it.
    pub async fn start() -> Result<Self> {
        let dir = state_dir();
        let master = Master::open(MasterConfig::new(dir.join("master")))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to bind a loopback port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut config = NodeConfig::new(url.clone(), dir.join("node"));
        config.name = "embedded".into();
        let node = Node::new(config)?;

        // Dropping the sender stops both.
        let (stop, stopped) = watch::channel(());
        let mut master_stopped = stopped.clone();
        tokio::spawn(async move {
            let _ = master
                .serve(listener, async move {
                    let _ = master_stopped.changed().await;
                })
                .await;
        });
        let mut node_stopped = stopped;
        tokio::spawn(async move {
            let _ = node
                .run(async move {
                    let _ = node_stopped.changed().await;
                })
                .await;
        });
        Ok(Self { url, _stop: stop })
    }
}
