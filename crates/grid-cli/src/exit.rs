//! `grid-cli`'s exit codes. The guest's own exit code passes through; the
//! grid's own codes sit just below 128 (and 130/134, as a shell would for an
//! interrupt or an abort), so scripts can tell them apart.

use grid_core::Outcome;

/// A usage error: a malformed flag, a missing module file, a bad name (as
/// clap exits on a flag it cannot parse).
pub const USAGE: u8 = 2;
/// Output over the job's output limit.
pub const OUTPUT_LIMIT: u8 = 121;
/// Memory growth past the job's limit.
pub const MEMORY_LIMIT: u8 = 122;
/// Fuel exhausted.
pub const OUT_OF_FUEL: u8 = 123;
/// Wall-clock timeout.
pub const TIMEOUT: u8 = 124;
/// A grid error: master unreachable, upload refused, node failure.
pub const GRID_ERROR: u8 = 125;
/// The module cannot run: invalid bytes, or an import the grid lacks.
pub const CANNOT_RUN: u8 = 126;
/// Writes to mapped directories over the node's disk limit.
pub const DISK_LIMIT: u8 = 127;
/// The job was cancelled (Ctrl-C, or `grid-cli cancel`).
pub const CANCELLED: u8 = 130;
/// The guest trapped, stack overflow included.
pub const TRAP: u8 = 134;

/// The table shown in `grid-cli run --help`.
pub const HELP: &str = "\
Exit status:
  the guest's own exit code, when it exits by itself
  121  output limit        122  memory limit        123  out of fuel
  124  timeout             125  grid error          126  invalid module or link error
  127  disk limit          130  cancelled           134  trap or stack overflow
  2    usage error: a malformed flag or limit, a module file that cannot be read
A job that does not exit by itself prints one `grid: <reason>` line on stderr.
Ctrl-C, SIGTERM or SIGHUP to `run` cancels its job (exit 130, 143, 129);
Ctrl-C to `wait` stops waiting (exit 130), and the job goes on.";

/// The exit code for a finished job.
pub fn for_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Exited(code) => u8::try_from(*code).unwrap_or(1),
        Outcome::OutOfFuel => OUT_OF_FUEL,
        Outcome::MemoryLimit => MEMORY_LIMIT,
        Outcome::Timeout => TIMEOUT,
        Outcome::OutputLimit => OUTPUT_LIMIT,
        Outcome::DiskLimit => DISK_LIMIT,
        Outcome::StackOverflow | Outcome::Trap(_) => TRAP,
        Outcome::InvalidModule(_) | Outcome::LinkError(_) => CANNOT_RUN,
        Outcome::Cancelled => CANCELLED,
        Outcome::NodeError(_) | Outcome::NoQuorum(_) => GRID_ERROR,
    }
}

/// An error that ends the CLI with a particular exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The one-line reason.
    pub message: String,
}

impl Failure {
    /// An error with its own exit code.
    pub fn with(code: u8, message: impl Into<String>) -> anyhow::Error {
        Failure { code, message: message.into() }.into()
    }
}
