//! The grid to measure, `BenchGrid`: a master and nodes started in this
//! process (the same library code the binaries run) or as processes of
//! their own; and a thin `Client`. The one module of this crate that sees
//! prost types.

use anyhow::{Context, Result, anyhow};
use grid_core::wire::MAX_MESSAGE_BYTES;
use grid_core::{JobReport, JobSpec, Limits, ModuleHash, Submission};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;
use tonic::transport::{Channel, Endpoint};

/// How to start a grid.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The master and each node as a process of its own (the release
    /// binaries next to `grid-bench`) rather than in this process.
    pub processes: bool,
    /// Whether the master's record waits for the disk on each commit.
    pub fsync: bool,
}

/// A grid the benchmark starts and measures, in this process or as
/// processes of its own; it stops when dropped.
pub struct BenchGrid {
    /// The master's URL.
    pub url: String,
    /// The processes, when the grid runs as processes.
    pub children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<()>,
}

impl Drop for BenchGrid {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A release binary of the workspace, next to this one.
pub fn sibling(name: &str) -> Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.parent().context("exe dir")?.join(name);
    anyhow::ensure!(path.is_file(), "`{}` is missing: run `cargo build --release --workspace`", path.display());
    Ok(path)
}

impl BenchGrid {
    /// A master and `nodes` nodes of `slots` slots each.
    pub async fn start(nodes: usize, slots: u32, setup: Setup) -> Result<Self> {
        let (stop, stopped) = tokio::sync::watch::channel(());
        // Made first, so that the processes already started are killed if a
        // later one fails to start.
        let mut grid = Self { url: String::new(), children: Vec::new(), _dir: tempfile::tempdir()?, _stop: stop };
        let dir = grid._dir.path().to_owned();
        if setup.processes {
            let (master, url) = spawn_master(&dir.join("master"), setup.fsync)?;
            grid.children.push(master);
            grid.url = url;
            for i in 0..nodes {
                grid.children.push(
                    std::process::Command::new(sibling("grid-node")?)
                        .args(["--master", &grid.url, "--name", &format!("node-{i}"), "--slots", &slots.to_string()])
                        .arg("--cache-dir")
                        .arg(dir.join(format!("node-{i}")))
                        .stderr(std::process::Stdio::null())
                        .spawn()?,
                );
            }
        } else {
            let mut config = grid_master::MasterConfig::new(dir.join("master"));
            config.fsync = setup.fsync;
            config.tls = grid_master::TlsSetup::Off;
            let master = grid_master::Master::open(config)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            grid.url = format!("http://{}", listener.local_addr()?);
            let mut s = stopped.clone();
            tokio::spawn(async move {
                master
                    .serve(listener, async move {
                        let _ = s.changed().await;
                    })
                    .await
            });
            for i in 0..nodes {
                let mut config = grid_node::NodeConfig::new(grid.url.clone(), dir.join(format!("node-{i}")));
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
        }
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

/// A `grid-master` process with its data in `dir`, and its URL once ready.
pub fn spawn_master(dir: &std::path::Path, fsync: bool) -> Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(sibling("grid-master")?);
    cmd.args(["--listen", "127.0.0.1:0", "--insecure", "--data-dir"]).arg(dir);
    if !fsync {
        cmd.arg("--no-fsync");
    }
    let mut master = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(master.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    Ok((master, format!("http://{addr}")))
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
        Ok(self.0.list_nodes(pb::ListNodesRequest { all: false }).await?.into_inner().nodes.len())
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
        Ok(self.0.submit_job(request(module, args, limits)).await?.into_inner().job_id)
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

    /// Submits a job and waits for its end, in one call (`RunJob`).
    pub async fn run(&mut self, module: &ModuleHash, args: &[&str], limits: Limits) -> Result<JobReport> {
        let mut events = self.0.run_job(request(module, args, limits)).await?.into_inner();
        while let Some(e) = events.message().await? {
            if let Some(pb::job_event::Event::Finished(r)) = e.event {
                return Ok(r.into());
            }
        }
        Err(anyhow!("the job's stream ended early"))
    }
}

/// A submission of `module` with `args` under `limits`.
fn request(module: &ModuleHash, args: &[&str], limits: Limits) -> pb::SubmitJobRequest {
    let spec = JobSpec {
        module: module.clone(),
        args: std::iter::once("bench").chain(args.iter().copied()).map(str::to_owned).collect(),
        env: vec![],
        stdin: vec![],
        dirs: vec![],
        limits,
    };
    grid_core::wire::submit_request(spec, Submission::default())
}
