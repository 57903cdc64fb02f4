//! Shared helpers for the end-to-end tests: [`GridSandbox`] starts a real
//! `grid-master` and N real `grid-node` processes on loopback ports in a
//! temp dir, and drives them with the real `grid-cli`, reading what it
//! lists through `--json`. The grid is secured as a real one is: the master
//! serves TLS with the CA it made, the CLI calls with the admin token, and
//! the nodes join with a join token that carries the CA's pin. Misbehaving
//! nodes and clients, which speak the protocol directly, live beside it in
//! [`rogue`].

pub mod browser;
pub mod cluster;
pub mod rogue;

pub use rogue::Access;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any readiness wait may take before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a run's stdout [`GridSandbox::run_counting`] keeps.
pub const STDOUT_KEPT: usize = 64 << 10;

/// `target/<profile>`, where cargo put this test binary's sibling binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-HASH
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_owned()
}

/// One of the workspace's binaries, built by `cargo test --workspace`.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: run `cargo build --workspace` (the README's test command does)",
        path.display()
    );
    path
}

/// A `grid-cli` command that sees no master, token, CA or saved login of
/// the environment's: a test runs the same on a machine where someone ran
/// `grid-cli login`.
pub fn bare_cli() -> Command {
    static NO_LOGIN: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().expect("temp dir"));
    let mut cmd = Command::new(bin("grid-cli"));
    for var in ["GRID_MASTER", "GRID_TOKEN", "GRID_CA", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", NO_LOGIN.path()).stdin(Stdio::null());
    cmd
}

/// A guest example built for `wasm32-wasip1` by `scripts/build-examples`.
pub fn example(name: &str) -> PathBuf {
    let target = profile_dir().parent().expect("target dir").to_owned();
    let path = target.join("wasm32-wasip1/release").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "`{}` is missing: run `scripts/build-examples` (the README's test command does)",
        path.display()
    );
    path
}

/// A guest example built for `wasm32-wasip2` (a component) by
/// `scripts/build-examples`.
pub fn wasip2_example(name: &str) -> PathBuf {
    let target = profile_dir().parent().expect("target dir").to_owned();
    let path = target.join("wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.is_file(), "`{}` is missing: run `scripts/setup` (the README's test command does)", path.display());
    path
}

/// A guest in another language than Rust, built to `target/guests/NAME.wasm`
/// by `scripts/build-examples` with the toolchains
/// `scripts/install-guest-toolchains` installs.
pub fn guest_wasm(name: &str) -> PathBuf {
    let target = profile_dir().parent().expect("target dir").to_owned();
    let path = target.join("guests").join(format!("{name}.wasm"));
    assert!(path.is_file(), "`{}` is missing: run `scripts/setup` (the README's test command does)", path.display());
    path
}

/// The `wasmtime` command-line runtime of the version the grid embeds,
/// which the grid's behaviour is compared against; `scripts/install-wasmtime`
/// installs it under `target/tools`.
pub fn wasmtime_cli() -> PathBuf {
    let target = profile_dir().parent().expect("target dir").to_owned();
    let path = target.join("tools/bin/wasmtime");
    assert!(path.is_file(), "`{}` is missing: run `scripts/setup` (the README's test command does)", path.display());
    path
}

/// A file under `examples/`, such as a guest the grid runs as text
/// (`wat/wordfreq.wat`).
pub fn example_file(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(rel);
    assert!(path.is_file(), "`{}` is missing", path.display());
    path
}

/// A hostile guest from `examples/hostile/`.
pub fn hostile(file: &str) -> PathBuf {
    example_file(&format!("hostile/{file}"))
}

/// A master and its nodes, each a real process; all are killed on drop.
/// Nodes are known by name (`node-0`, `node-1`, ... from the builder, or
/// the name given to [`GridSandbox::add_node`]).
pub struct GridSandbox {
    dir: tempfile::TempDir,
    master: Child,
    addr: String,
    url: String,
    /// The HTTP API's address, for a master started with `--http`.
    http: Option<String>,
    master_args: Vec<String>,
    nodes: Vec<NodeProcess>,
    /// The admin token the master wrote to its data dir.
    admin_token: String,
    /// The join token every node of the sandbox joins with.
    join: String,
}

/// One `grid-node` process and the name it registered with.
struct NodeProcess {
    name: String,
    child: Child,
}

/// Options for [`GridSandbox`].
pub struct Builder {
    nodes: usize,
    node_args: Vec<String>,
    master_args: Vec<String>,
}

impl Builder {
    /// Extra flags for every node.
    pub fn node_args(mut self, args: &[&str]) -> Self {
        self.node_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Extra flags for the master. Its verification is off (`--verify
    /// off`) unless these include a `--verify` of their own.
    pub fn master_args(mut self, args: &[&str]) -> Self {
        self.master_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Starts the master, then the nodes, and waits until every node has
    /// registered.
    pub fn start(mut self) -> GridSandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        if !self.master_args.iter().any(|a| a == "--database")
            && let Some(url) = test_database()
        {
            self.master_args.extend(["--database".to_owned(), url, "--lease".to_owned(), "2s".to_owned()]);
        }
        let (master, addr, http) = spawn_master(dir.path(), "127.0.0.1:0", &self.master_args);
        let insecure = self.master_args.iter().any(|a| a == "--insecure");
        let url = if insecure { format!("http://{addr}") } else { format!("https://{addr}") };
        let admin_token = std::fs::read_to_string(dir.path().join("master/admin.token"))
            .expect("the master wrote admin.token")
            .trim()
            .to_owned();
        let mut sandbox = GridSandbox {
            dir,
            master,
            addr,
            url,
            http,
            master_args: self.master_args,
            nodes: Vec::new(),
            admin_token,
            join: String::new(),
        };
        sandbox.join = sandbox.join_token(&[]);
        let node_args: Vec<&str> = self.node_args.iter().map(String::as_str).collect();
        for i in 0..self.nodes {
            sandbox.add_node(&format!("node-{i}"), &node_args);
        }
        sandbox
    }
}

/// Polls `check` every `every` until it returns `Some`, failing the test
/// after [`READY_TIMEOUT`] with `what` and where the logs are (`logs`).
pub fn poll_until<T>(what: &str, logs: &Path, every: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < READY_TIMEOUT, "timed out waiting until {what}; logs in {}", logs.display());
        std::thread::sleep(every);
    }
}

/// With `GRID_TEST_DATABASE=postgres`, every sandbox's master keeps its
/// record on a database of its own on a throwaway PostgreSQL server (the
/// e2e suite runs once on each backend): its URL.
pub fn test_database() -> Option<String> {
    match std::env::var("GRID_TEST_DATABASE").as_deref() {
        Ok("postgres") => Some(grid_testpg::shared().fresh_database().expect("a test database")),
        Ok("") | Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("GRID_TEST_DATABASE={other}: `postgres` or `sqlite`"),
    }
}

/// Whether this run's masters keep their record in PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("GRID_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// How many times the master whose log is `log` served as the leader.
fn leads(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("serving as the leader").count()
}

/// Starts `grid-master` on `listen` with its data under `dir`, and returns
/// it with the address it printed once ready, and its HTTP address when
/// `extra` holds `--http`.
fn spawn_master(dir: &Path, listen: &str, extra: &[String]) -> (Child, String, Option<String>) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("master.log")).expect("log file");
    // Heartbeats every 500ms, unless the test says otherwise.
    let heartbeat: &[&str] = if extra.iter().any(|a| a == "--heartbeat") { &[] } else { &["--heartbeat", "500ms"] };
    // No verification, unless the test says otherwise: a sandbox models a
    // grid of one's own machines, where one node runs a job alone.
    let given = extra.iter().any(|a| a == "--verify" || a.starts_with("--verify="));
    let verify: &[&str] = if given { &[] } else { &["--verify", "off"] };
    let mut master = Command::new(bin("grid-master"))
        .args(["--listen", listen])
        .args(heartbeat)
        .args(verify)
        .arg("--data-dir")
        .arg(dir.join("master"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn grid-master");
    let http = extra.iter().any(|a| a == "--http" || a.starts_with("--http="));
    let led = leads(&dir.join("master.log"));
    let (addr, http) = read_listen_lines(&mut master, &dir.join("master.log"), http);
    // A master on PostgreSQL listens as a standby first: wait until it leads.
    if extra.iter().any(|a| a == "--database") {
        let start = Instant::now();
        while leads(&dir.join("master.log")) == led {
            if let Ok(Some(status)) = master.try_wait() {
                let log = std::fs::read_to_string(dir.join("master.log")).unwrap_or_default();
                panic!("grid-master exited ({status}) before it led:\n{log}");
            }
            assert!(start.elapsed() < READY_TIMEOUT, "grid-master did not lead");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (master, addr, http)
}

fn read_listen_lines(master: &mut Child, log: &Path, http: bool) -> (String, Option<String>) {
    let stdout = master.stdout.take().expect("master stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        for _ in 0..if http { 2 } else { 1 } {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
        }
    });
    let addr = listen_line(&rx, log);
    let http = http.then(|| {
        let line = rx.recv_timeout(READY_TIMEOUT).expect("grid-master did not print its HTTP address");
        line.trim().strip_prefix("http: ").unwrap_or_else(|| panic!("unexpected second line `{line}`")).to_owned()
    });
    (addr, http)
}

fn listen_line(rx: &mpsc::Receiver<String>, log: &Path) -> String {
    let line = rx.recv_timeout(READY_TIMEOUT).expect("grid-master did not print its address");
    if line.is_empty() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("grid-master exited before it listened:\n{log}");
    }
    line.trim()
        .strip_prefix("grid-master listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
        .to_owned()
}

impl GridSandbox {
    /// A sandbox with `nodes` nodes and default options.
    pub fn start(nodes: usize) -> Self {
        Self::builder(nodes).start()
    }

    /// A sandbox with `nodes` nodes, to be configured.
    pub fn builder(nodes: usize) -> Builder {
        Builder { nodes, node_args: Vec::new(), master_args: Vec::new() }
    }

    /// The master's URL: `https://127.0.0.1:PORT`, or `http://` for a
    /// master started with `--insecure`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP API's base URL (`https://127.0.0.1:PORT`, or `http://` when
    /// plaintext), for a master started with `--http`.
    pub fn http_url(&self) -> String {
        let addr = self.http.as_deref().expect("the master was started with --http");
        let plain = self.insecure() || self.master_args.iter().any(|a| a == "--http-plaintext");
        format!("{}://{addr}", if plain { "http" } else { "https" })
    }

    /// Whether the master serves plaintext (`--insecure`).
    pub fn insecure(&self) -> bool {
        self.url.starts_with("http://")
    }

    /// The CA the master made, `ca.pem` in its data dir (`None` when it
    /// serves plaintext).
    pub fn ca(&self) -> Option<PathBuf> {
        (!self.insecure()).then(|| self.master_dir().join("ca.pem"))
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The join token the sandbox's nodes join with.
    pub fn join(&self) -> &str {
        &self.join
    }

    /// How a protocol-speaking party reaches the master, calling with
    /// `token` (or none).
    pub fn access(&self, token: Option<&str>) -> Access {
        Access {
            url: self.url.clone(),
            ca_pem: self.ca().map(|ca| std::fs::read(ca).expect("read ca.pem")),
            token: token.map(str::to_owned),
        }
    }

    /// How a protocol-speaking party reaches the master as the admin.
    pub fn admin(&self) -> Access {
        self.access(Some(&self.admin_token))
    }

    /// How a protocol-speaking node named `name` reaches the master: with a
    /// node credential of its own, traded for a new join token.
    #[track_caller]
    pub fn node_access(&self, name: &str) -> Access {
        let join = self.join_token(&["--uses", "1"]);
        let credential = rogue::join(&self.access(Some(&join)), name).expect("join the grid");
        self.access(Some(&credential))
    }

    /// `grid-cli admin node-token create ARGS`: the join token it printed
    /// as its last line.
    #[track_caller]
    pub fn join_token(&self, args: &[&str]) -> String {
        let mut all = vec!["admin", "node-token", "create"];
        all.extend_from_slice(args);
        self.last_line(&all)
    }

    /// `grid-cli admin tenant create NAME ARGS`: the tenant's token.
    #[track_caller]
    pub fn tenant(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["admin", "tenant", "create", name];
        all.extend_from_slice(args);
        self.last_line(&all)
    }

    /// The last line of the stdout of `grid-cli ARGS`, which must succeed.
    #[track_caller]
    fn last_line(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, Some(0), "{run:#?}");
        run.stdout.lines().last().unwrap_or_else(|| panic!("`grid-cli {}` printed nothing", args.join(" "))).to_owned()
    }

    /// The sandbox's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts one more node, named `name`, and waits until it has
    /// registered.
    pub fn add_node(&mut self, name: &str, extra: &[&str]) {
        assert!(self.nodes.iter().all(|n| n.name != name), "a node `{name}` is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log file");
        let node = self
            .node_command(name, name)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn grid-node");
        self.nodes.push(NodeProcess { name: name.to_owned(), child: node });
        self.wait_for_nodes();
    }

    /// Starts one more node, named `name`, on the cache dir `cache_dir`
    /// (another sandbox's, say) with the credential and CA saved there and
    /// no join token, and waits until it has registered.
    pub fn add_node_from(&mut self, name: &str, cache_dir: &Path) {
        assert!(self.nodes.iter().all(|n| n.name != name), "a node `{name}` is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log file");
        let cache_dir = cache_dir.to_str().expect("a UTF-8 cache dir");
        let node =
            self.bare_node_command(name, cache_dir).stdout(Stdio::null()).stderr(log).spawn().expect("spawn grid-node");
        self.nodes.push(NodeProcess { name: name.to_owned(), child: node });
        self.wait_for_nodes();
    }

    /// Polls `check` until it returns `Some`, failing the test after
    /// [`READY_TIMEOUT`].
    pub fn wait_until<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        poll_until(what, self.dir.path(), Duration::from_millis(50), || check(self))
    }

    /// A `grid-cli` command pointed at this sandbox's master, calling with
    /// the admin token.
    pub fn cli(&self, args: &[&str]) -> Command {
        self.cli_as(&self.admin_token, args)
    }

    /// A `grid-cli` command pointed at this sandbox's master, calling with
    /// `token` (through `$GRID_TOKEN`), trusting the master's CA (through
    /// `$GRID_CA`), with no saved login of the user's in the way.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("grid-cli"));
        cmd.arg("--master").arg(&self.url).args(args).stdin(Stdio::null());
        cmd.env_remove("GRID_MASTER").env_remove("RUST_LOG").env("GRID_TOKEN", token);
        match self.ca() {
            Some(ca) => cmd.env("GRID_CA", ca),
            None => cmd.env_remove("GRID_CA"),
        };
        cmd.env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        cmd
    }

    /// Runs `grid-cli ARGS` to completion, as the admin.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cli(args).output().expect("run grid-cli"))
    }

    /// Runs `grid-cli ARGS` to completion, calling with `token`.
    pub fn run_as(&self, token: &str, args: &[&str]) -> Run {
        Run::from(self.cli_as(token, args).output().expect("run grid-cli"))
    }

    /// `grid-cli submit ARGS`: asserts it succeeded quietly and returns the
    /// job's id.
    #[track_caller]
    pub fn submit(&self, args: &[&str]) -> String {
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert!(run.stderr.is_empty(), "{run:#?}");
        let id = run.stdout.trim().to_owned();
        assert_eq!(id.len(), 26, "not a job id (a ULID): {id}");
        id
    }

    /// Runs `grid-cli ARGS` with `stdin` piped in.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .cli(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn grid-cli");
        let mut pipe = child.stdin.take().expect("stdin");
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait grid-cli");
        writer.join().expect("stdin writer");
        Run::from(out)
    }

    /// Runs `grid-cli ARGS` to its end, counting the bytes on its stdout and
    /// keeping only the first [`STDOUT_KEPT`] (for runs with a flood of
    /// output); returns the run and the count. Fails the
    /// test if the run has not ended after [`READY_TIMEOUT`]: a run that
    /// hangs is killed, not waited for.
    pub fn run_counting(&self, args: &[&str]) -> (Run, u64) {
        let mut child = self.cli(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn grid-cli");
        let mut stdout = child.stdout.take().expect("stdout");
        let counter = std::thread::spawn(move || {
            let (mut head, mut count, mut buf) = (Vec::new(), 0u64, vec![0; 64 << 10]);
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                let keep = n.min(STDOUT_KEPT.saturating_sub(head.len()));
                head.extend_from_slice(&buf[..keep]);
                count += n as u64;
            }
            (head, count)
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`grid-cli {}` did not end within {READY_TIMEOUT:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = reader.join().expect("stderr reader");
        let (head, count) = counter.join().expect("stdout counter");
        (Run { code: status.code(), stdout: String::from_utf8_lossy(&head).into_owned(), stderr }, count)
    }

    /// The master's process id.
    pub fn master_pid(&self) -> u32 {
        self.master.id()
    }

    /// The master's resident set size in bytes (`VmRSS` in
    /// `/proc/PID/status`).
    #[track_caller]
    pub fn master_rss(&self) -> u64 {
        let pid = self.master.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the master's /proc status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no VmRSS in the master's status: {status}"));
        kib * 1024
    }

    /// The master's log so far.
    pub fn master_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }

    /// The master's data dir.
    pub fn master_dir(&self) -> PathBuf {
        self.dir.path().join("master")
    }

    /// Sends `signal` (e.g. `TERM`) to the master.
    pub fn signal_master(&self, signal: &str) {
        let pid = self.master.id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the master to exit by itself within `limit` and returns
    /// its exit code; fails the test (with the master's log) if it does not.
    #[track_caller]
    pub fn wait_master_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.master.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(start.elapsed() < limit, "the master did not exit within {limit:?}:\n{}", self.master_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `grid-node` command for this sandbox's master, named `name`, with
    /// its data under the sandbox dir's `dir`, joining with the sandbox's
    /// join token (a node that has its credential already ignores it).
    pub fn node_command(&self, name: &str, dir: &str) -> Command {
        let mut cmd = self.bare_node_command(name, dir);
        cmd.args(["--join", &self.join]);
        cmd
    }

    /// A `grid-node` command for this sandbox's master, named `name`, with
    /// its data under the sandbox dir's `dir` (or at `dir`, if absolute),
    /// and no join token.
    pub fn bare_node_command(&self, name: &str, dir: &str) -> Command {
        let mut cmd = Command::new(bin("grid-node"));
        cmd.args(["--master", &self.url, "--name", name, "--cache-dir"]).arg(self.dir.path().join(dir));
        cmd.env_remove("RUST_LOG").env_remove("GRID_CA").env_remove("GRID_JOIN").env_remove("GRID_MASTER");
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Kills the master with SIGKILL (if it still runs) and starts it again
    /// on the same address and data dir.
    pub fn restart_master(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
        let (master, addr, http) = spawn_master(self.dir.path(), &self.addr, &self.master_args);
        assert_eq!(addr, self.addr);
        self.master = master;
        self.http = http;
    }

    /// The position of node `name` in `self.nodes`.
    #[track_caller]
    fn node_index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node `{name}` in the sandbox"))
    }

    /// Starts node `name` again (killing it first if it still runs), with
    /// the same cache dir, and waits until it has registered.
    pub fn restart_node(&mut self, name: &str, extra: &[&str]) {
        let mut old = self.nodes.remove(self.node_index(name));
        let _ = old.child.kill();
        let _ = old.child.wait();
        self.add_node(name, extra);
    }

    /// Waits until the master lists every node.
    pub fn wait_for_nodes(&self) {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        self.wait_until("every node registered", |s| {
            // The master may not answer yet: ask again.
            let listed = s.try_nodes()?;
            names.iter().all(|name| listed.iter().any(|n| n["name"] == name.as_str())).then_some(())
        });
    }

    /// Waits until the master no longer lists a node named `name`.
    pub fn wait_node_gone(&self, name: &str) {
        self.wait_until(&format!("node `{name}` gone"), |s| {
            let listed = s.try_nodes()?;
            listed.iter().all(|n| n["name"] != name).then_some(())
        });
    }

    /// Sends `signal` (e.g. `TERM`) to node `name`.
    pub fn signal_node(&self, name: &str, signal: &str) {
        let pid = self.nodes[self.node_index(name)].child.id();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for node `name` to exit by itself and returns whether it exited
    /// cleanly.
    pub fn wait_node_exit(&mut self, name: &str) -> bool {
        let i = self.node_index(name);
        let start = Instant::now();
        loop {
            if let Some(status) = self.nodes[i].child.try_wait().expect("try_wait") {
                return status.success();
            }
            assert!(start.elapsed() < READY_TIMEOUT, "node `{name}` did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's log so far.
    pub fn node_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Kills node `name` at once.
    pub fn kill_node(&mut self, name: &str) {
        let i = self.node_index(name);
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
    }

    /// `grid-cli status --json ID`: the job as JSON.
    #[track_caller]
    pub fn status(&self, id: &str) -> Value {
        self.run(&["status", "--json", id]).json()
    }

    /// `grid-cli jobs --json`: the newest jobs first.
    #[track_caller]
    pub fn jobs(&self) -> Vec<Value> {
        array(self.run(&["jobs", "--json"]).json())
    }

    /// `grid-cli nodes --json`: every node the master lists.
    #[track_caller]
    pub fn nodes(&self) -> Vec<Value> {
        array(self.run(&["nodes", "--json"]).json())
    }

    /// `grid-cli nodes --all --json`: the nodes connected, then those that
    /// are not.
    #[track_caller]
    pub fn all_nodes(&self) -> Vec<Value> {
        array(self.run(&["nodes", "--all", "--json"]).json())
    }

    /// `grid-cli nodes --json`, or `None` while the master does not answer.
    fn try_nodes(&self) -> Option<Vec<Value>> {
        let out = self.cli(&["nodes", "--json"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Node `name` as `grid-cli nodes --json` lists it.
    #[track_caller]
    pub fn node(&self, name: &str) -> Value {
        let nodes = self.nodes();
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("the master lists no node `{name}`: {nodes:#?}"))
    }

    /// The slots node `name` has in use, and its slots in all.
    #[track_caller]
    pub fn slots(&self, name: &str) -> (u64, u64) {
        let node = self.node(name);
        (number(&node["slots_used"]), number(&node["slots_total"]))
    }

    /// Whether the master and every node process are still running.
    pub fn all_alive(&mut self) -> bool {
        self.master.try_wait().ok().flatten().is_none()
            && self.nodes.iter_mut().all(|n| n.child.try_wait().ok().flatten().is_none())
    }

    /// `grid-cli status --json ID`, polled until the job has finished.
    #[track_caller]
    pub fn wait_finished(&self, id: &str) -> Value {
        self.wait_until(&format!("job {id} finished"), |s| {
            let job = s.status(id);
            matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(job)
        })
    }

    /// Writes a text module to the sandbox dir and returns its path.
    pub fn wat(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.wat"));
        std::fs::write(&path, text).expect("write wat");
        path
    }
}

impl Drop for GridSandbox {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// A finished `grid-cli` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The `grid:` lines on stderr.
    pub fn grid_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("grid:")).collect()
    }

    /// Asserts the run ended with `code` and exactly one `grid:` line on
    /// stderr containing `reason`.
    #[track_caller]
    pub fn assert_grid_failure(&self, code: i32, reason: &str) {
        assert_eq!(self.code, Some(code), "{self:#?}");
        let lines = self.grid_lines();
        assert_eq!(lines.len(), 1, "expected one `grid:` line: {self:#?}");
        assert!(lines[0].contains(reason), "expected `{reason}` in `{}`", lines[0]);
    }

    /// Asserts a clean success: exit 0 and nothing of the grid's own on stderr.
    #[track_caller]
    pub fn assert_clean_success(&self) {
        assert_eq!(self.code, Some(0), "{self:#?}");
        assert!(self.grid_lines().is_empty(), "grid printed on a successful run: {self:#?}");
    }

    /// Stdout parsed as JSON, from a `--json` command that succeeded.
    #[track_caller]
    pub fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:#?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}: {self:#?}"))
    }
}

/// The items of a JSON array.
#[track_caller]
pub fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("not a JSON array: {other:#}"),
    }
}

/// A JSON number that is a non-negative integer.
#[track_caller]
pub fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a non-negative integer: {value}"))
}

/// A process started in the background (a `grid-cli` under test, say),
/// its stdout and stderr read line by line as they come, so that a test
/// can wait for a line and then act (send a signal) before it ends.
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    stdout: String,
    stderr: String,
}

impl Spawned {
    /// Starts `cmd` with its stdout and stderr piped.
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (is_err, pipe) in [(false, Box::new(out) as Box<dyn std::io::Read + Send>), (true, Box::new(err))] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Self { child, lines, stdout: String::new(), stderr: String::new() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for a line on stdout or stderr that `wanted` accepts and
    /// returns it; fails the test after [`READY_TIMEOUT`].
    #[track_caller]
    pub fn wait_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let left = READY_TIMEOUT.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok((is_err, line)) => {
                    let all = if is_err { &mut self.stderr } else { &mut self.stdout };
                    all.push_str(&line);
                    all.push('\n');
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    panic!("no such line within {READY_TIMEOUT:?}: stdout {:?}, stderr {:?}", self.stdout, self.stderr)
                }
            }
        }
    }

    /// Fails the test, with what the process printed, if it has ended.
    #[track_caller]
    pub fn assert_alive(&mut self, doing: &str) {
        if self.child.try_wait().expect("try_wait").is_none() {
            return;
        }
        let status = self.child.wait().expect("wait");
        while let Ok((is_err, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            let all = if is_err { &mut self.stderr } else { &mut self.stdout };
            all.push_str(&line);
            all.push('\n');
        }
        panic!("the process ended ({status}) while {doing}: stdout {:?}, stderr {:?}", self.stdout, self.stderr);
    }

    /// Waits for the process to end (killing it and failing the test if it
    /// has not after [`READY_TIMEOUT`]) and returns what it printed, line
    /// by line.
    #[track_caller]
    pub fn finish(mut self) -> Run {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > READY_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the process did not end within {READY_TIMEOUT:?}: stderr {:?}", self.stderr);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The readers end with the pipes.
        while let Ok((is_err, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            let all = if is_err { &mut self.stderr } else { &mut self.stdout };
            all.push_str(&line);
            all.push('\n');
        }
        Run { code: status.code(), stdout: std::mem::take(&mut self.stdout), stderr: std::mem::take(&mut self.stderr) }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
