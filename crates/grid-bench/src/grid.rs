//! A grid to measure: a master and nodes started in this process (the same
//! library code the binaries run), and a thin client. The one module of
//! this crate that sees prost types.

use anyhow::{Context, Result, anyhow};
use grid_core::wire::MAX_MESSAGE_BYTES;
use grid_core::{JobReport, JobSpec, Limits, ModuleHash};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;
use tonic::transport::{Channel, Endpoint};

/// A running in-process grid.
pub struct Grid {
    /// The master's URL.
    pub url: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<()>,
}

impl Grid {
    /// A master and `nodes` nodes of `slots` slots each.
    pub async fn start(nodes: usize, slots: u32) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let master = grid_master::Master::open(grid_master::MasterConfig::new(dir.path().join("master")))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut s = stopped.clone();
        tokio::spawn(async move {
            master
                .serve(listener, async move {
                    let _ = s.changed().await;
                })
                .await
        });
        for i in 0..nodes {
            let mut config = grid_node::NodeConfig::new(url.clone(), dir.path().join(format!("node-{i}")));
            config.name = format!("node-{i}");
            config.capacity.slots = slots;
            let node = grid_node::Node::new(config)?;
            let mut s = stopped.clone();
            tokio::spawn(async move {
                node.run(async move {
                    let _ = s.changed().await;
                })
                .await
            });
        }
        let grid = Self { url, _dir: dir, _stop: stop };
        let mut client = grid.client().await?;
        for _ in 0..1000 {
            if client.nodes().await? >= nodes {
                return Ok(grid);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Err(anyhow!("the nodes did not register"))
    }

    /// A new connection to the master.
    pub async fn client(&self) -> Result<Client> {
        Client::connect(&self.url).await
    }
}

/// A connection to a master.
#[derive(Clone)]
pub struct Client(MasterClient<Channel>);

impl Client {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true).connect().await.context("connect")?;
        Ok(Self(
            MasterClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ))
    }

    /// Nodes connected.
    pub async fn nodes(&mut self) -> Result<usize> {
        Ok(self.0.list_nodes(pb::ListNodesRequest {}).await?.into_inner().nodes.len())
    }

    /// Uploads a module (if the master lacks it) and returns its hash.
    pub async fn upload(&mut self, bytes: &[u8]) -> Result<ModuleHash> {
        let hash = ModuleHash::of(bytes);
        let missing =
            self.0.missing_modules(pb::MissingModulesRequest { hashes: vec![hash.to_string()] }).await?.into_inner();
        if !missing.missing.is_empty() {
            let chunk =
                pb::UploadChunk { hash: hash.to_string(), total_size: bytes.len() as u64, data: bytes.to_vec() };
            self.0.upload_module(tokio_stream::iter(vec![chunk])).await?;
        }
        Ok(hash)
    }

    /// Submits a job of `module` with `args`.
    pub async fn submit(&mut self, module: &ModuleHash, args: &[&str], limits: Limits) -> Result<String> {
        let spec = JobSpec {
            module: module.clone(),
            args: std::iter::once("bench").chain(args.iter().copied()).map(str::to_owned).collect(),
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits,
        };
        let req = pb::SubmitJobRequest { spec: Some(spec.into()), ..Default::default() };
        Ok(self.0.submit_job(req).await?.into_inner().job_id)
    }

    /// Waits for a job's end.
    pub async fn wait(&mut self, job_id: &str) -> Result<JobReport> {
        let mut events =
            self.0.watch_job(pb::WatchJobRequest { job_id: job_id.to_owned(), snapshot: false }).await?.into_inner();
        while let Some(e) = events.message().await? {
            if let Some(pb::job_event::Event::Finished(r)) = e.event {
                return Ok(r.into());
            }
        }
        Err(anyhow!("job {job_id}: the stream ended early"))
    }

    /// Submits a job and waits for its end.
    pub async fn run(&mut self, module: &ModuleHash, args: &[&str], limits: Limits) -> Result<JobReport> {
        let id = self.submit(module, args, limits).await?;
        self.wait(&id).await
    }
}
