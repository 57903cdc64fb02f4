//! The embedded grid: a master (and, to run jobs, one node) started in this
//! process when no master is named, with its state under the user's cache
//! dir, and stopped explicitly before the process exits.
//!
//! Every job of the embedded grid belongs to the `grid-cli run` that
//! submitted it. Only a process that runs jobs starts a node, and it holds
//! an exclusive lock on the state dir while its grid lives: a second `run`
//! waits for the first. So a job the record holds unfinished when a grid
//! starts has nobody waiting for it any more, and is ended, never run
//! again. Commands that only read (`jobs`, `status`, `logs`, `nodes`) start
//! no node. While a `run` holds the lock, they start a master that takes
//! nothing into memory and serves the record as it is; when none does, they
//! take the lock for their moment and end a dead `run`'s jobs first.
//!
//! The embedded grid opens no port: its master serves a Unix socket of its
//! own in the state dir (mode 0700), and this process's client and node
//! call it with the master's admin token and a node credential.

use anyhow::{Context, Result, anyhow};
use grid_master::{Master, MasterConfig, Recovery};
use grid_node::{Node, NodeConfig};
use std::fs::{File, TryLockError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Finished jobs older than this are pruned from the embedded grid's record.
pub const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a job the record holds unfinished is ended when a grid starts.
pub const ABANDONED: &str = "the grid-cli that ran it exited before it finished";

/// How long running jobs get to finish when the embedded node stops (only a
/// job whose `run` stopped waiting for it is still running then).
const NODE_GRACE: Duration = Duration::from_secs(1);

/// How long the node and the master each get to stop.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// What an embedded grid is started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// To run jobs: a master and a node, holding the state dir's lock.
    Run,
    /// To read the record: a master alone, which runs and ends nothing.
    Read,
}

/// A running embedded grid.
struct Embedded {
    url: String,
    /// The admin token the CLI calls the master with.
    token: String,
    /// The master's socket, removed when the grid stops.
    _socket: Socket,
    mode: Mode,
    stop: watch::Sender<bool>,
    master: JoinHandle<Result<()>>,
    node: Option<JoinHandle<Result<()>>>,
    record: std::sync::Arc<dyn grid_master::record::JobStore>,
    /// Held while the grid lives; closing it releases the lock.
    _lock: Option<File>,
}

/// This process's embedded grid, if it started one.
static GRID: Mutex<Option<Embedded>> = Mutex::new(None);

/// Where the embedded grid keeps its state.
pub fn state_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("embedded")
}

/// The embedded master's URL and the token to call it with, starting the
/// grid for `mode` if this process has none yet. A grid started to read
/// serves a later `Run` too (no node, so nothing runs): a process does one
/// or the other.
pub async fn start(mode: Mode) -> Result<(String, String)> {
    if let Some(grid) = GRID.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if grid.mode == mode || mode == Mode::Read {
            return Ok((grid.url.clone(), grid.token.clone()));
        }
        return Err(anyhow!("this process's embedded grid was started only to read"));
    }
    let dir = state_dir();
    private_dir(&dir)?;
    // A reader that finds no `run` holding the lock holds it too, for its
    // moment: then every unfinished job is a dead `run`'s, and is ended now
    // rather than shown as running until the next `run`.
    let lock = match mode {
        Mode::Run => Some(lock(&dir).await?),
        Mode::Read => lock_if_free(&dir)?,
    };
    let mut config = MasterConfig::new(dir.join("master"));
    config.tls = grid_master::TlsSetup::Off;
    // One's own machine: its node's results are its own.
    config.verify = grid_master::trust::VerifyPolicy::off();
    config.recovery = match lock {
        Some(_) => Recovery::End(ABANDONED.into()),
        None => Recovery::Leave,
    };
    if mode == Mode::Run {
        config.keep_finished = Some(KEEP_FINISHED);
    }
    let master = Master::open(config)?;
    let record = master.live().store();
    let token = master.admin_token();
    let (socket, listener) = Socket::bind(&dir)?;
    let url = format!("{}{}", grid_core::connect::UNIX, socket.path.display());
    let node = match mode {
        Mode::Run => {
            let mut config = NodeConfig::new(url.clone(), dir.join("node"));
            config.name = "embedded".into();
            config.grace = NODE_GRACE;
            config.token = Some(master.node_credential("embedded")?);
            Some(Node::new(config)?)
        }
        Mode::Read => None,
    };

    let (stop, stopped) = watch::channel(false);
    let mut master_stopped = stopped.clone();
    let master = tokio::spawn(master.serve(listener, async move {
        let _ = master_stopped.wait_for(|s| *s).await;
    }));
    let node = node.map(|node| {
        let mut node_stopped = stopped;
        tokio::spawn(node.run(async move {
            let _ = node_stopped.wait_for(|s| *s).await;
        }))
    });
    let grid = Embedded {
        url: url.clone(),
        token: token.clone(),
        _socket: socket,
        mode,
        stop,
        master,
        node,
        record,
        _lock: lock,
    };
    *GRID.lock().unwrap_or_else(|p| p.into_inner()) = Some(grid);
    Ok((url, token))
}

/// Makes `dir` (and its parents), and makes it private: the master's
/// socket in it takes the admin token of whoever can reach it.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to make `{}` private", dir.display()))
}

/// The longest socket path every Unix binds (`sun_path` holds 104 to 108
/// bytes, its NUL included).
const SOCKET_PATH_MAX: usize = 100;

/// The embedded master's socket: `master-<pid>.sock` in the state dir, one
/// per process (a reader's grid may run beside a `run`'s), or in a private
/// temp dir when the state dir's path is too long for a socket.
struct Socket {
    path: PathBuf,
    /// The private temp dir the socket is in, if not the state dir.
    _temp: Option<tempfile::TempDir>,
}

impl Socket {
    /// Binds a new socket for this process, clearing sockets left by
    /// processes that no longer run.
    fn bind(dir: &Path) -> Result<(Socket, tokio::net::UnixListener)> {
        clear_stale_sockets(dir);
        let name = format!("master-{}.sock", std::process::id());
        let (path, temp) = match dir.join(&name) {
            path if path.as_os_str().len() <= SOCKET_PATH_MAX => (path, None),
            _ => {
                // `mkdtemp` makes it 0700 under a name nobody could guess.
                let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
                let temp = tempfile::Builder::new()
                    .prefix("wasm-grid-")
                    .tempdir_in(&base)
                    .with_context(|| format!("failed to make a private dir in `{}`", base.display()))?;
                (temp.path().join(&name), Some(temp))
            }
        };
        // Only a dead process of ours can have left it: it was never removed.
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("failed to bind the socket `{}`", path.display()))?;
        Ok((Socket { path, _temp: temp }, listener))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes `master-<pid>.sock` files in `dir` whose process no longer runs.
fn clear_stale_sockets(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("master-")?.strip_suffix(".sock")) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Stops this process's embedded grid, if it started one: the node first
/// (it hands back whatever still runs), then the master; then the record is
/// flushed, and only then is the state dir's lock released. Bounded in
/// time. Call it before the runtime shuts down.
pub async fn stop() {
    let Some(grid) = GRID.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    let _ = grid.stop.send(true);
    if let Some(node) = grid.node {
        match tokio::time::timeout(STOP_WITHIN, node).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("the embedded node failed: {e:#}"),
            Ok(Err(e)) => tracing::warn!("the embedded node's task failed: {e}"),
            Err(_) => tracing::warn!("the embedded node did not stop in time"),
        }
    }
    match tokio::time::timeout(STOP_WITHIN, grid.master).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("the embedded master failed: {e:#}"),
        Ok(Err(e)) => tracing::warn!("the embedded master's task failed: {e}"),
        Err(_) => tracing::warn!("the embedded master did not stop in time"),
    }
    if let Err(e) = grid.record.flush().await {
        tracing::warn!("failed to flush the embedded grid's record: {e}");
    }
}

/// Takes the state dir's lock, waiting (and saying so, on a terminal or
/// with `-v`) while another process's embedded grid runs jobs.
async fn lock(dir: &Path) -> Result<File> {
    // `-v` is what turns the CLI's diagnostics on.
    let verbose = tracing::enabled!(tracing::Level::WARN);
    let (file, path) = lock_file(dir)?;
    let since = Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                if said {
                    tracing::info!(waited = ?since.elapsed(), "took the embedded grid's lock");
                }
                return Ok(file);
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("failed to lock `{}`", path.display()));
            }
        }
        if !said && (verbose || std::io::stderr().is_terminal()) {
            errln!(
                "grid: waiting for another `grid-cli run` on the embedded grid to end (it holds `{}`)",
                path.display()
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The state dir's lock file, opened (not locked), and its path.
fn lock_file(dir: &Path) -> Result<(File, PathBuf)> {
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    Ok((file, path))
}

/// Takes the state dir's lock if no other process holds it.
fn lock_if_free(dir: &Path) -> Result<Option<File>> {
    let (file, path) = lock_file(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("failed to lock `{}`", path.display())),
    }
}

/// Prunes the embedded grid's record of jobs that finished more than
/// `older_than` ago; returns how many it forgot and the record's path. Safe
/// beside a running `run`: only finished jobs go.
pub async fn prune(older_than: Duration) -> Result<(usize, PathBuf)> {
    let dir = state_dir().join("master");
    let mut config = MasterConfig::new(&dir);
    config.tls = grid_master::TlsSetup::Off;
    config.verify = grid_master::trust::VerifyPolicy::off();
    config.recovery = Recovery::Leave;
    let record = Master::open(config)?.live().store();
    let before = grid_master::model::now_ms().saturating_sub(older_than.as_millis() as u64);
    let mut pruned = 0;
    // A prune forgets a bounded number at once; go on until none is left.
    loop {
        let n = record.prune(before).await?;
        if n == 0 {
            break;
        }
        pruned += n;
    }
    Ok((pruned, dir.join("grid.db")))
}
