//! `grid-cli up`: a whole grid on this machine, for trying it out or for
//! one's own use: a master, in-process nodes and the dashboard, until
//! Ctrl-C.

use crate::commands::GlobalArgs;
use crate::signals::Signals;
use anyhow::{Context, Result, anyhow};
use clap::Parser;
use grid_master::http::HttpServe;
use grid_master::{Master, MasterConfig, Recovery, TlsSetup};
use grid_node::{Node, NodeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

/// How long each node, then the master, gets to stop.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How long running jobs may go on after Ctrl-C before the nodes hand them
/// back: they run again when the grid is next up.
const NODE_GRACE: Duration = Duration::from_secs(2);

/// Start a local grid with the dashboard: a master, nodes and the web UI.
///
/// The master listens for gRPC on `--listen` (TLS, with its own CA in the
/// data dir), its nodes run in this process, and the dashboard and the
/// HTTP API are served plainly on `--http`, a loopback address. It prints
/// the dashboard's login link, the `curl` line for the API and the `grid-cli
/// login` line, then runs until Ctrl-C or SIGTERM, when the nodes hand back
/// what they still run after two seconds (those jobs run again at the next `up`)
/// and the master flushes its record; a second signal exits at once. Results are taken as
/// the nodes report them (`--verify off`): they are all this machine.
#[derive(Parser, Debug)]
pub struct UpCommand {
    /// Where the master listens for clients and nodes.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR")]
    listen: SocketAddr,
    /// Where the dashboard and the HTTP API are served (plain HTTP, so a
    /// loopback address only).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    http: SocketAddr,
    /// How many nodes to start in this process.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    nodes: u32,
    /// Where the master's record and modules and the nodes' caches live
    /// [default: the user's data dir, `wasm-grid/local`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl UpCommand {
    /// Runs the command.
    pub async fn execute(self, _global: &GlobalArgs) -> Result<ExitCode> {
        if !self.http.ip().is_loopback() {
            return Err(crate::exit::Failure::with(
                crate::exit::USAGE,
                format!(
                    "--http `{}` is not a loopback address: `up` serves the dashboard as plain HTTP; for another \
                     address run `grid-master --http ADDR`, which speaks TLS",
                    self.http
                ),
            ));
        }
        let dir = self
            .data_dir
            .unwrap_or_else(|| dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("local"));
        crate::embedded::private_dir(&dir)?;
        let mut config = MasterConfig::new(dir.join("master"));
        config.tls = TlsSetup::Auto { names: Vec::new() };
        config.verify = grid_master::trust::VerifyPolicy::off();
        config.recovery = Recovery::Resume;
        let master = Master::open(config).with_context(|| format!("failed to open data dir `{}`", dir.display()))?;
        let grpc = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("failed to listen on `{}`", self.listen))?;
        let http = tokio::net::TcpListener::bind(self.http)
            .await
            .with_context(|| format!("failed to listen on `{}`", self.http))?;
        let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
        let url = format!("https://{grpc_addr}");
        let token = master.admin_token();
        let ca = master.ca_file().map(PathBuf::from).ok_or_else(|| anyhow!("the master made no CA"))?;
        let ca_pem = std::fs::read(&ca).with_context(|| format!("failed to read `{}`", ca.display()))?;

        let mut nodes = Vec::new();
        for i in 1..=self.nodes {
            let name = format!("local-{i}");
            let mut config = NodeConfig::new(url.clone(), dir.join("nodes").join(&name));
            config.trust.ca_pem = Some(ca_pem.clone());
            config.token = Some(master.node_credential(&name)?);
            config.name = name;
            config.grace = NODE_GRACE;
            nodes.push(Node::new(config)?);
        }
        let master = master.with_http(HttpServe { listener: http, plaintext: true });

        let mut signals = Signals::owner()?;
        let (stop, stopped) = watch::channel(false);
        let until = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let mut master = tokio::spawn(master.serve(grpc, until(stopped.clone())));
        let nodes: Vec<_> = nodes.into_iter().map(|node| tokio::spawn(node.run(until(stopped.clone())))).collect();

        let dashboard = format!("http://{http_addr}");
        outln!("wasm-grid is up: a master and {} node(s), data in `{}`", self.nodes, dir.display())?;
        outln!("  master:    {url}")?;
        outln!("  dashboard: {dashboard}/#token={token}")?;
        outln!("  api:       curl -H 'Authorization: Bearer {token}' {dashboard}/api/v1/jobs")?;
        outln!("  cli:       grid-cli login {url} --token {token} --ca {}", ca.display())?;
        outln!("  ca:        {}", ca.display())?;
        outln!("  token:     {token}")?;
        outln!("Ctrl-C stops it.")?;

        // The master ending on its own (it failed) stops everything too.
        let early = tokio::select! {
            _ = signals.recv() => None,
            ended = &mut master => Some(ended),
        };
        let _ = stop.send(true);
        // A second signal gives up on the clean stop.
        tokio::spawn(async move {
            let signal = signals.recv().await;
            errln!("grid: a second signal: exiting without a clean shutdown");
            std::process::exit(signal.exit_code().into());
        });
        let mut failed = false;
        for (i, node) in nodes.into_iter().enumerate() {
            match tokio::time::timeout(STOP_WITHIN, node).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    errln!("grid: node local-{} failed: {e:#}", i + 1);
                    failed = true;
                }
                Ok(Err(e)) => return Err(anyhow!("node local-{}'s task failed: {e}", i + 1)),
                Err(_) => return Err(anyhow!("node local-{} did not stop within {STOP_WITHIN:?}", i + 1)),
            }
        }
        let ended = match early {
            Some(ended) => ended,
            None => tokio::time::timeout(STOP_WITHIN, master)
                .await
                .map_err(|_| anyhow!("the master did not stop within {STOP_WITHIN:?}"))?,
        };
        ended.context("the master's task failed")?.context("the master failed")?;
        Ok(if failed { ExitCode::from(crate::exit::GRID_ERROR) } else { ExitCode::SUCCESS })
    }
}
