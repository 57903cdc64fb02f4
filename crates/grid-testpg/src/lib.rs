//! Throwaway PostgreSQL servers for tests. [`PgServer::start`] runs
//! `initdb` into a fresh temp dir and starts `postgres` on a free loopback
//! port, as an unprivileged user (PostgreSQL refuses to run as root: under
//! root the server runs as the `postgres` user Debian's package makes).
//! The server is this process's child: [`PgServer::kill`] and
//! [`PgServer::restart`] are for chaos tests, and dropping the server
//! stops it and removes its files. [`shared`] is one server for a whole
//! test binary, with a database per test.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The role every test server's databases belong to (trust auth, loopback only).
pub const USER: &str = "grid";

/// A PostgreSQL server of this process's own.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    runs_as: Option<(u32, u32)>,
    child: Mutex<Option<Child>>,
    /// Whether commits reach the disk (`fsync`); tests' servers skip it.
    durable: bool,
}

/// What went wrong starting a server: one line.
pub type Error = String;

impl PgServer {
    /// Makes a cluster in a temp dir and starts it on a free loopback port,
    /// without `fsync` (a test's data need not survive the machine).
    pub fn start() -> Result<Self, Error> {
        Self::start_with(false)
    }

    /// As [`start`](Self::start), with commits made durable as a real
    /// server's are (`fsync` and full-page writes on): for benchmarks.
    pub fn start_durable() -> Result<Self, Error> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, Error> {
        sweep_stale();
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("grid-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let runs_as = unprivileged()?;
        if let Some((uid, gid)) = runs_as {
            chown(dir.path(), uid, gid)?;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod: {e}"))?;
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, runs_as);
        let out = initdb.output().map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let server = Self { dir, bin, port: free_port()?, runs_as, child: Mutex::new(None), durable };
        server.launch()?;
        Ok(server)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Makes a new, empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, Error> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// A fresh database with a name no other call in this process gives.
    pub fn fresh_database(&self) -> Result<String, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("grid_{}_{n}", std::process::id()))
    }

    /// Runs `sql` in `database` with psql, returning what it printed
    /// (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, Error> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(format!("psql `{sql}`: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Backends notice their postmaster's death and exit; the next start
        // waits for them (its shared memory must be free).
    }

    /// Starts the server again on the same files and port (after [`kill`](Self::kill)).
    pub fn restart(&self) -> Result<(), Error> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn launch(&self) -> Result<(), Error> {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .map_err(|e| format!("server log: {e}"))?;
        if let Some((uid, gid)) = self.runs_as {
            chown(&self.dir.path().join("server.log"), uid, gid)?;
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &self.port.to_string()])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .args(["-c", "max_connections=300", "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"]);
        if !self.durable {
            cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
        as_user(&mut cmd, self.runs_as);
        // The server dies with this process, however it ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = spawn_from_keeper(cmd)?;
        *self.child.lock().unwrap() = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER, "-d", "postgres"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if let Some(child) = self.child.lock().unwrap().as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("postgres exited at start ({status}): {}", self.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres not ready within 60 s: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of the server's log, for a failure's message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server for the whole test binary, started on first use; each test
/// takes a [`PgServer::fresh_database`] of it. It dies with the process.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| PgServer::start().unwrap_or_else(|e| panic!("cannot start a test PostgreSQL: {e}")))
}

/// Spawns `cmd` from a thread that lives as long as the process, so that
/// the child's parent-death signal fires when the process ends, not when
/// the test thread that asked for it does.
fn spawn_from_keeper(cmd: Command) -> Result<Child, Error> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("grid-testpg".into())
            .spawn(move || {
                for (mut cmd, answer) in rx {
                    let _ = answer.send(cmd.spawn());
                }
                // The senders live in a static: this loop never ends.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the keeper thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    keeper.lock().unwrap().send((cmd, tx)).map_err(|_| "keeper thread gone".to_owned())?;
    rx.recv().map_err(|_| "keeper thread gone".to_owned())?.map_err(|e| format!("postgres: {e}"))
}

/// Where PostgreSQL's programs are: `GRID_PG_BIN`, `pg_config --bindir`,
/// or the newest of Debian's `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("GRID_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("postgres").exists() {
            return Ok(bin);
        }
    }
    Err("no PostgreSQL server found (scripts/setup installs Debian's `postgresql`; or set GRID_PG_BIN)".into())
}

/// The user and group to run the server as: `None` for this process's own,
/// unless that is root, then the `postgres` user's.
fn unprivileged() -> Result<Option<(u32, u32)>, Error> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == "postgres" {
            let uid = fields[2].parse().map_err(|_| "bad uid in /etc/passwd".to_owned())?;
            let gid = fields[3].parse().map_err(|_| "bad gid in /etc/passwd".to_owned())?;
            return Ok(Some((uid, gid)));
        }
    }
    Err("running as root, and there is no `postgres` user to run the test server as".into())
}

fn as_user(cmd: &mut Command, runs_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = runs_as {
        // std drops root's supplementary groups along with the uid.
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| format!("chown `{}`: {e}", path.display()))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Removes the dirs of earlier test servers whose process is gone (a
/// test binary killed before its drops ran).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("grid-pg-") {
            continue;
        }
        let pid_file = entry.path().join("data").join("postmaster.pid");
        let alive = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60));
        if !alive && old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_serves_a_database_survives_a_kill_and_is_gone_when_dropped() {
        let server = PgServer::start().unwrap();
        let url = server.fresh_database().unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        server.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)").unwrap();
        server.kill();
        assert!(server.psql(&db, "SELECT 1").is_err(), "a killed server still answered");
        server.restart().unwrap();
        assert_eq!(server.psql(&db, "SELECT x FROM t").unwrap(), "7", "a committed row was lost");
        let dir = server.dir.path().to_owned();
        drop(server);
        assert!(!dir.exists(), "the server's files were left behind");
    }
}
