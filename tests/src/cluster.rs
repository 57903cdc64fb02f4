//! Several `grid-master` processes on one throwaway PostgreSQL server, with
//! nodes and clients that know every master: the harness of the failover
//! tests. Every process is killed on drop, the server too.

use crate::{Run, bin};
use grid_testpg::PgServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lease the cluster's masters hold: short, so that tests fail over fast.
pub const LEASE: &str = "2s";

/// One master of the cluster.
struct MasterProc {
    name: String,
    port: u16,
    child: Option<Child>,
}

/// Several masters on one database, and nodes that follow the leader.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The database server (public, for chaos: `kill`, `restart`, `psql`).
    pub pg: PgServer,
    database: String,
    masters: Vec<MasterProc>,
    nodes: Vec<(String, Child)>,
    admin_token: String,
    join: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// `masters` masters on a fresh database (the first leads), and
    /// `nodes` nodes that know them all.
    pub fn start(masters: usize, nodes: usize) -> Self {
        let pg = PgServer::start().expect("start PostgreSQL");
        let url = pg.create_database("grid").expect("create the database");
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            pg,
            database: url,
            masters: Vec::new(),
            nodes: Vec::new(),
            admin_token: String::new(),
            join: String::new(),
        };
        for i in 0..masters {
            cluster.masters.push(MasterProc { name: format!("m{i}"), port: free_port(), child: None });
            cluster.start_master(i);
            if i == 0 {
                cluster.wait_log(0, "serving as the leader");
            }
        }
        cluster.admin_token =
            std::fs::read_to_string(cluster.master_dir(0).join("admin.token")).unwrap().trim().to_owned();
        let run = cluster.run(&["admin", "node-token", "create"]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        cluster.join = run.stdout.lines().last().unwrap().to_owned();
        for i in 0..nodes {
            cluster.add_node(&format!("node-{i}"), &[]);
        }
        cluster
    }

    /// The cluster's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Master `i`'s data dir.
    pub fn master_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.masters[i].name)
    }

    /// Master `i`'s name (`m0`, `m1`, ...).
    pub fn name(&self, i: usize) -> &str {
        &self.masters[i].name
    }

    /// Master `i`'s URL.
    pub fn url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.masters[i].port)
    }

    /// Every master's URL, comma-separated, as `--master` takes them.
    pub fn urls(&self) -> String {
        (0..self.masters.len()).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// The grid's CA, as every master wrote it.
    pub fn ca(&self) -> PathBuf {
        self.master_dir(0).join("ca.pem")
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Starts master `i` (again), on its port, data dir and name.
    pub fn start_master(&mut self, i: usize) {
        let dir = self.master_dir(i);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", self.masters[i].name)))
            .unwrap();
        let m = &self.masters[i];
        let child = Command::new(bin("grid-master"))
            .args(["--listen", &format!("127.0.0.1:{}", m.port), "--name", &m.name])
            .args(["--database", &self.database, "--lease", LEASE, "--heartbeat", "500ms", "--verify", "off"])
            .arg("--data-dir")
            .arg(&dir)
            .arg("--modules-dir")
            .arg(self.dir.path().join("modules"))
            .env_remove("RUST_LOG")
            .env_remove("GRID_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn grid-master");
        self.masters[i].child = Some(child);
    }

    /// Master `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.masters[i].name))).unwrap_or_default()
    }

    /// Waits until master `i`'s log holds `text`.
    #[track_caller]
    pub fn wait_log(&self, i: usize, text: &str) {
        self.wait_until(&format!("`{}` logs `{text}`", self.name(i)), |c| c.log(i).contains(text).then_some(()));
    }

    /// Sends `signal` to master `i`.
    pub fn signal_master(&self, i: usize, signal: &str) {
        let pid = self.masters[i].child.as_ref().expect("master running").id();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Kills master `i` with SIGKILL and waits for it.
    pub fn kill_master(&mut self, i: usize) {
        if let Some(mut child) = self.masters[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a node named `name` that knows every master.
    pub fn add_node(&mut self, name: &str, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(bin("grid-node"))
            .args(["--master", &self.urls(), "--name", name, "--join", &self.join, "--cache-dir"])
            .arg(self.dir.path().join(name))
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("GRID_CA")
            .env_remove("GRID_JOIN")
            .env_remove("GRID_MASTER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn grid-node");
        self.nodes.push((name.to_owned(), child));
        let want = self.nodes.len();
        self.wait_until("every node registered with the leader", |c| (c.ready_nodes() >= want).then_some(()));
    }

    /// How many nodes the leader lists as ready.
    pub fn ready_nodes(&self) -> usize {
        let run = self.run(&["nodes", "--json"]);
        if run.code != Some(0) {
            return 0;
        }
        let nodes: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
        nodes.as_array().map_or(0, |a| a.iter().filter(|n| n["state"] == "ready").count())
    }

    /// A `grid-cli` command that knows every master, as the admin.
    pub fn cli(&self, args: &[&str]) -> Command {
        self.cli_with(&self.urls(), args)
    }

    /// A `grid-cli` command that knows only master `i`.
    pub fn cli_at(&self, i: usize, args: &[&str]) -> Command {
        self.cli_with(&self.url(i), args)
    }

    fn cli_with(&self, masters: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("grid-cli"));
        cmd.arg("--master").arg(masters).args(args).stdin(Stdio::null());
        cmd.env_remove("GRID_MASTER").env_remove("RUST_LOG").env("GRID_TOKEN", &self.admin_token);
        cmd.env("GRID_CA", self.ca()).env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        cmd
    }

    /// Runs `grid-cli ARGS` to completion, as the admin.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cli(args).output().expect("run grid-cli"))
    }

    /// The name of the master that leads now, as `admin masters` says.
    pub fn leader(&self) -> Option<String> {
        let run = self.run(&["admin", "masters", "--json"]);
        if run.code != Some(0) {
            return None;
        }
        let v: Value = serde_json::from_str(&run.stdout).ok()?;
        v["masters"]
            .as_array()?
            .iter()
            .find(|m| m["leader"] == true)
            .and_then(|m| m["name"].as_str().map(str::to_owned))
    }

    /// Waits until a master other than `not` leads; returns its name and
    /// how long that took.
    #[track_caller]
    pub fn wait_leader_other_than(&self, not: &str) -> (String, Duration) {
        let start = Instant::now();
        let name = self.wait_until("another master leads", |c| c.leader().filter(|l| l != not));
        (name, start.elapsed())
    }

    /// Polls `check` until it returns `Some`, failing the test after [`crate::READY_TIMEOUT`].
    #[track_caller]
    pub fn wait_until<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        crate::poll_until(what, self.dir.path(), Duration::from_millis(100), || check(self))
    }

    /// `grid-cli status ID --json` on the leader.
    #[track_caller]
    pub fn status(&self, id: &str) -> Value {
        let run = self.run(&["status", id, "--json"]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        serde_json::from_str(&run.stdout).expect("status --json")
    }

    /// Waits until job `id` has finished, and returns its status.
    #[track_caller]
    pub fn wait_finished(&self, id: &str) -> Value {
        self.wait_until(&format!("job {id} finished"), |c| {
            let run = c.run(&["status", id, "--json"]);
            let v: Value = serde_json::from_str(&run.stdout).ok()?;
            matches!(v["state"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(v)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for m in &mut self.masters {
            if let Some(mut child) = m.child.take() {
                let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("GRID_KEEP").is_some() {
            self.dir.disable_cleanup(true);
        }
    }
}
