//! Compiling a module under the node's own bounds, apart from any job's:
//! in a child process of the node's binary, its address space capped and
//! killed past a deadline, so a module that takes too long or too much
//! memory to compile costs the node neither and fails with the reason.
//!
//! A binary that runs a node calls [`serve_if_child`] first thing in
//! `main`; that is what makes it able to compile in a child. Where no
//! binary did (a library's tests), modules compile on a thread of the
//! node's own, bounded in time only.

use crate::engine;
use crate::error::{PrepareError, one_line};
use grid_core::units::{format_duration, format_size};
use grid_core::wasm::Kind;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long and how much memory compiling one module may take on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Wall-clock time.
    pub time: Duration,
    /// Address space of the compiling process.
    pub memory: u64,
}

impl Default for CompileLimits {
    /// Ten minutes and 4 GiB: a C++ program of 70 MB compiles in about a
    /// minute and 1.5 GiB on two cores.
    fn default() -> Self {
        Self { time: Duration::from_secs(600), memory: 4 << 30 }
    }
}

/// Set in a compiling child's environment: kind, memory, seconds of CPU,
/// input and output, a line each.
const CHILD_ENV: &str = "GRID_NODE_COMPILE";
/// The child's exit code when the module is invalid (its reason on stderr).
const INVALID: u8 = 3;
/// The child's exit code when it ran out of memory.
const OUT_OF_MEMORY: u8 = 4;

/// What a compile that ran out of address space says: an allocation that
/// failed, a mapping refused, a thread that could not start.
const OUT_OF_MEMORY_SIGNS: [&str; 4] =
    ["memory allocation of", "Cannot allocate memory", "out of memory", "Resource temporarily unavailable"];

/// The running binary, on Linux.
const SELF_EXE: &str = "/proc/self/exe";

/// Whether this binary called [`serve_if_child`], so a child of it compiles.
static CHILD_CAPABLE: AtomicBool = AtomicBool::new(false);

/// In a compiling child, compiles and exits; anywhere else returns, and
/// from then on modules compile in a child of this binary. Call first thing
/// in `main`, before any thread starts.
pub fn serve_if_child() {
    let Some(task) = std::env::var_os(CHILD_ENV) else {
        CHILD_CAPABLE.store(true, Ordering::Relaxed);
        return;
    };
    std::process::exit(i32::from(compile_as_child(&task.to_string_lossy())));
}

/// Does a child's compile and gives its exit code.
fn compile_as_child(task: &str) -> u8 {
    let mut parts = task.splitn(5, '\n');
    let (Some(kind), Some(memory), Some(cpu), Some(input), Some(output)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        eprintln!("malformed compile task");
        return 1;
    };
    // A child whose node died (its deadline died with it) dies too, and in
    // any case burns no more CPU than its deadline allows on every core.
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and nothing else.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        eprintln!("failed to tie the compile to its node: {}", std::io::Error::last_os_error());
        return 1;
    }
    for (resource, value, what) in [(libc::RLIMIT_AS, memory, "memory"), (libc::RLIMIT_CPU, cpu, "CPU time")] {
        let Some(value) = value.parse::<u64>().ok().filter(|v| *v > 0) else { continue };
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit reads the struct it is given and nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            eprintln!("failed to limit the compile's {what}: {}", std::io::Error::last_os_error());
            return 1;
        }
    }
    let kind = if kind == Kind::Component.name() { Kind::Component } else { Kind::Module };
    let Err(e) = compile_file(kind, Path::new(input), Path::new(output)) else { return 0 };
    let why = match &e {
        PrepareError::InvalidModule(why) | PrepareError::Node(why) => why.clone(),
        other => other.to_string(),
    };
    eprintln!("{why}");
    if OUT_OF_MEMORY_SIGNS.iter().any(|sign| why.contains(sign)) {
        return OUT_OF_MEMORY;
    }
    if matches!(e, PrepareError::InvalidModule(_)) { INVALID } else { 1 }
}

/// Compiles the module or component at `input` to the artifact `output`,
/// here and now: what a compiling child, or thread, does.
fn compile_file(kind: Kind, input: &Path, output: &Path) -> Result<(), PrepareError> {
    let engine = engine::compile_engine().map_err(|e| PrepareError::Node(one_line(&e)))?;
    let bytes = std::fs::read(input).map_err(|e| PrepareError::Node(format!("failed to read module: {e}")))?;
    let artifact = match kind {
        Kind::Module => engine.precompile_module(&bytes),
        Kind::Component => engine.precompile_component(&bytes),
    }
    .map_err(|e| PrepareError::InvalidModule(one_line(&e)))?;
    std::fs::write(output, artifact).map_err(|e| PrepareError::Node(format!("failed to write artifact: {e}")))
}

/// Compiles the module or component at `input` to the artifact `output`
/// within `limits`.
pub async fn compile(kind: Kind, input: &Path, output: &Path, limits: CompileLimits) -> Result<(), PrepareError> {
    if CHILD_CAPABLE.load(Ordering::Relaxed) {
        in_child(kind, input, output, limits).await
    } else {
        on_thread(kind, input, output, limits).await
    }
}

fn too_long(limits: CompileLimits) -> PrepareError {
    PrepareError::InvalidModule(format!("compile took longer than {}", format_duration(limits.time)))
}

fn too_big(limits: CompileLimits) -> PrepareError {
    PrepareError::InvalidModule(format!("compile needed more than {} of memory", format_size(limits.memory)))
}

async fn in_child(kind: Kind, input: &Path, output: &Path, limits: CompileLimits) -> Result<(), PrepareError> {
    // The running binary itself, even if its file was replaced since.
    let exe = match Path::new(SELF_EXE).exists() {
        true => SELF_EXE.into(),
        false => std::env::current_exe().map_err(|e| PrepareError::Node(format!("no binary to compile with: {e}")))?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let cpu = limits.time.as_secs().saturating_add(1).saturating_mul(cores);
    let task = format!("{}\n{}\n{cpu}\n{}\n{}", kind.name(), limits.memory, input.display(), output.display());
    let child = tokio::process::Command::new(exe)
        .env(CHILD_ENV, task)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| PrepareError::Node(format!("failed to start the compiler: {e}")))?;
    let out = match tokio::time::timeout(limits.time, child.wait_with_output()).await {
        Err(_) => return Err(too_long(limits)),
        Ok(out) => out.map_err(|e| PrepareError::Node(format!("the compiler failed: {e}")))?,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned();
    match out.status.code().and_then(|c| u8::try_from(c).ok()) {
        Some(0) => Ok(()),
        Some(INVALID) => Err(PrepareError::InvalidModule(said)),
        Some(OUT_OF_MEMORY) => Err(too_big(limits)),
        // An allocation or a thread that failed for want of address space
        // aborts or panics the process.
        _ if OUT_OF_MEMORY_SIGNS.iter().any(|sign| stderr.contains(sign)) => Err(too_big(limits)),
        _ => Err(PrepareError::Node(format!("the compiler failed ({}): {said}", out.status))),
    }
}

async fn on_thread(kind: Kind, input: &Path, output: &Path, limits: CompileLimits) -> Result<(), PrepareError> {
    let (input, output) = (input.to_owned(), output.to_owned());
    let compiling = tokio::task::spawn_blocking(move || compile_file(kind, &input, &output));
    // Past the deadline the thread is left to finish; its result is dropped.
    match tokio::time::timeout(limits.time, compiling).await {
        Err(_) => Err(too_long(limits)),
        Ok(joined) => joined.map_err(|e| PrepareError::Node(format!("compile task failed: {e}")))?,
    }
}
