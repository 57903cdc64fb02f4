//! The grid to measure, `BenchGrid`: a master and nodes started in this
//! process (the same library code the binaries run) or as processes of
//! their own; and a thin `Client`. The one module of this crate that sees
//! prost types.

use anyhow::{Context, Result, anyhow, bail};
use grid_core::connect::{Conn, Trust};
use grid_core::{JobReport, JobSpec, Limits, ModuleHash, Submission};
use grid_master::trust::{VerifyMode, VerifyPolicy};
use grid_proto as pb;
use grid_proto::master_client::MasterClient;

/// How to start a grid.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The master and each node as a process of its own (the release
    /// binaries next to `grid-bench`) rather than in this process.
    pub processes: bool,
    /// Whether the master's record waits for the disk on each commit.
    pub fsync: bool,
    /// Plaintext instead of TLS (`grid-master --insecure`; with the grid
    /// in processes only: in-process, the master serves as it is set up).
    pub insecure: bool,
    /// How the master verifies its nodes' results (`grid-master --verify`).
    pub verify: VerifyMode,
    /// The master's job record on PostgreSQL (`grid-master --database`)
    /// instead of SQLite.
    pub database: Option<&'static str>,
}

/// A grid the benchmark starts and measures, in this process or as
/// processes of its own; it stops when dropped.
pub struct BenchGrid {
    /// The master's URL.
    pub url: String,
    /// The admin token clients call with.
    pub token: String,
    /// Whom clients trust to be the master.
    pub trust: Trust,
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
        let mut grid = Self {
            url: String::new(),
            token: String::new(),
            trust: Trust::default(),
            children: Vec::new(),
            _dir: tempfile::tempdir()?,
            _stop: stop,
        };
        let dir = grid._dir.path().to_owned();
        if setup.processes {
            let (master, remote) = spawn_master(&dir.join("master"), setup).await?;
            grid.children.push(master);
            let join = remote.join_token(nodes as u32).await?;
            for i in 0..nodes {
                let mut node = std::process::Command::new(sibling("grid-node")?);
                remote.node_args(&mut node, &join);
                node.args(["--name", &format!("node-{i}"), "--slots", &slots.to_string()])
                    .arg("--cache-dir")
                    .arg(dir.join(format!("node-{i}")));
                grid.children.push(node.stderr(std::process::Stdio::null()).spawn()?);
            }
            (grid.url, grid.token, grid.trust) = (remote.url, remote.token, remote.trust);
        } else {
            let mut config = grid_master::MasterConfig::new(dir.join("master"));
            config.fsync = setup.fsync;
            if setup.insecure {
                config.tls = grid_master::TlsSetup::Off;
            }
            config.verify = VerifyPolicy { mode: setup.verify, ..VerifyPolicy::default() };
            let master = grid_master::Master::open(config)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let tls = master.ca_pin().is_some();
            let scheme = if tls { "https" } else { "http" };
            grid.url = format!("{scheme}://{}", listener.local_addr()?);
            grid.trust = credentials(&dir.join("master"), tls)?.1;
            grid.token = master.admin_token();
            let credentials: Vec<String> =
                (0..nodes).map(|i| master.node_credential(&format!("node-{i}"))).collect::<Result<_, _>>()?;
            let mut s = stopped.clone();
            tokio::spawn(async move {
                master
                    .serve(listener, async move {
                        let _ = s.changed().await;
                    })
                    .await
            });
            for (i, token) in credentials.into_iter().enumerate() {
                let mut config = grid_node::NodeConfig::new(grid.url.clone(), dir.join(format!("node-{i}")));
                config.name = format!("node-{i}");
                config.token = Some(token);
                config.trust = grid.trust.clone();
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
        Client::connect(&self.url, &self.token, &self.trust).await
    }
}

/// The admin token a master wrote in its data dir `dir`, and, with `tls`,
/// its CA to trust.
fn credentials(dir: &std::path::Path, tls: bool) -> Result<(String, Trust)> {
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap_or_default().trim().to_owned();
    let ca_pem = match tls {
        true => Some(std::fs::read(dir.join("ca.pem")).context("the master's `ca.pem`")?),
        false => None,
    };
    Ok((token, Trust { ca_pem, ca_pin: None }))
}

/// A master process and how to call it.
pub struct Remote {
    /// Its URL.
    pub url: String,
    /// The admin token it wrote in its data dir.
    pub token: String,
    /// Its CA, unless it serves plaintext.
    pub trust: Trust,
    /// The file of its CA, for nodes.
    pub ca: Option<std::path::PathBuf>,
}

impl Remote {
    /// A new connection, with the admin token.
    pub async fn client(&self) -> Result<Client> {
        Client::connect(&self.url, &self.token, &self.trust).await
    }

    /// A join token for `uses` nodes.
    pub async fn join_token(&self, uses: u32) -> Result<String> {
        let channel = grid_core::connect::channel(&self.url, &self.trust).await.map_err(|e| anyhow!(e))?;
        let mut admin = grid_core::connect::admin(channel, Some(&self.token)).map_err(|e| anyhow!(e))?;
        let req = pb::CreateJoinTokenRequest { uses, ..Default::default() };
        Ok(admin.create_join_token(req).await?.into_inner().token)
    }

    /// Points a `grid-node` command at this master, joining with `join`.
    pub fn node_args(&self, node: &mut std::process::Command, join: &str) {
        node.args(["--master", &self.url, "--join", join]);
        if let Some(ca) = &self.ca {
            node.arg("--ca").arg(ca);
        }
    }
}

/// A `grid-master` process with its data in `dir`, and how to call it
/// once it is ready.
pub async fn spawn_master(dir: &std::path::Path, setup: Setup) -> Result<(std::process::Child, Remote)> {
    use std::io::BufRead;
    let Setup { fsync, insecure, verify, database, .. } = setup;
    let mut cmd = std::process::Command::new(sibling("grid-master")?);
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
    cmd.args(["--verify", verify_flag(verify)]);
    if !fsync {
        cmd.arg("--no-fsync");
    }
    if insecure {
        cmd.arg("--insecure");
    }
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let mut master = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(master.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    let url = format!("{}://{addr}", if insecure { "http" } else { "https" });
    if database.is_some() {
        // It serves once it has migrated the database and taken the lease.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ready = match credentials(dir, !insecure) {
                Ok((token, trust)) => match Client::connect(&url, &token, &trust).await {
                    Ok(mut client) => client.nodes().await.is_ok(),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if ready {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("the master on PostgreSQL did not serve within a minute");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let (token, trust) = credentials(dir, !insecure)?;
    let ca = (!insecure).then(|| dir.join("ca.pem"));
    Ok((master, Remote { url, token, trust, ca }))
}

/// `grid-master --verify`'s word for `mode`.
pub fn verify_flag(mode: VerifyMode) -> &'static str {
    match mode {
        VerifyMode::Off => "off",
        VerifyMode::Adaptive => "adaptive",
        VerifyMode::Always => "always",
    }
}

/// A connection to a master.
#[derive(Clone)]
pub struct Client(MasterClient<Conn>);

impl Client {
    /// Connects to `url`, trusting `trust`, calling with `token`.
    pub async fn connect(url: &str, token: &str, trust: &Trust) -> Result<Self> {
        let channel = grid_core::connect::channel(url, trust).await.map_err(|e| anyhow!(e)).context("connect")?;
        Ok(Self(grid_core::connect::master(channel, Some(token)).map_err(|e| anyhow!(e))?))
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
        deterministic: false,
        replicas: 0,
        module: module.clone(),
        args: std::iter::once("bench").chain(args.iter().copied()).map(str::to_owned).collect(),
        env: vec![],
        stdin: vec![],
        dirs: vec![],
        limits,
    };
    grid_core::wire::submit_request(spec, Submission::default())
}
