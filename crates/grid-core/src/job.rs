//! What a job is (`JobSpec`, `Limits`), and how it ended (`Outcome`,
//! `JobReport`).

use crate::ModuleHash;
use std::fmt;
use std::time::Duration;

/// The limits one job runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly, wasm instructions) the job may burn.
    pub fuel: u64,
    /// Linear memory the job may hold, in bytes, across all its memories.
    pub memory: u64,
    /// Wall-clock time from start to finish.
    pub timeout: Duration,
    /// Bytes the job may write to stdout and stderr together.
    pub output: u64,
    /// Bytes the job's mapped directories may hold (each file and directory
    /// counts at least 4 KiB, so thousands of empty files count too).
    pub disk: u64,
}

impl Limits {
    /// Default fuel per job: ten billion units, several seconds of compute.
    pub const DEFAULT_FUEL: u64 = 10_000_000_000;
    /// Default linear memory per job.
    pub const DEFAULT_MEMORY: u64 = 512 << 20;
    /// Default wall-clock timeout per job.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default bound on stdout and stderr together.
    pub const DEFAULT_OUTPUT: u64 = 64 << 20;
    /// Default bound on the job's mapped directories.
    pub const DEFAULT_DISK: u64 = 256 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: Self::DEFAULT_FUEL,
            memory: Self::DEFAULT_MEMORY,
            timeout: Self::DEFAULT_TIMEOUT,
            output: Self::DEFAULT_OUTPUT,
            disk: Self::DEFAULT_DISK,
        }
    }
}

/// A directory that travels with a job: a tar archive (see [`crate::archive`])
/// preopened at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedDir {
    /// Where the guest sees the directory.
    pub guest_path: String,
    /// The directory's contents as a tar archive.
    pub archive: Vec<u8>,
}

/// Everything a node needs to run one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The module to run.
    pub module: ModuleHash,
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Bytes the guest reads on stdin.
    pub stdin: Vec<u8>,
    /// Directories preopened for the guest.
    pub dirs: Vec<MappedDir>,
    /// The job's limits.
    pub limits: Limits,
    /// Run with a virtual clock, seeded random bytes and a deterministic
    /// engine: every honest run gives the same result.
    pub deterministic: bool,
    /// Distinct nodes that must agree on its result; 0 or 1 runs it once
    /// (the master may still verify it with a second replica).
    pub replicas: u32,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest returned from `_start` (code 0) or called `proc_exit`.
    Exited(i32),
    /// The job burned its whole fuel limit.
    OutOfFuel,
    /// The job tried to grow its memory past its limit.
    MemoryLimit,
    /// The job ran past its wall-clock timeout.
    Timeout,
    /// The job wrote more than its output limit.
    OutputLimit,
    /// The job wrote more to its mapped directories than allowed.
    DiskLimit,
    /// The guest exhausted its call stack.
    StackOverflow,
    /// The guest trapped, with wasmtime's message.
    Trap(String),
    /// The bytes are not a valid module.
    InvalidModule(String),
    /// The module imports something the grid does not provide.
    LinkError(String),
    /// Someone cancelled the job.
    Cancelled,
    /// The node could not run the job for a reason of its own.
    NodeError(String),
    /// Its replicas did not agree on one result, and the master's bound
    /// allowed no more: how they disagreed.
    NoQuorum(String),
}

impl Outcome {
    /// Whether the guest ran to an exit code of its own choosing.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Outcome::Exited(code) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with code {code}"),
            Outcome::OutOfFuel => f.write_str("out of fuel"),
            Outcome::MemoryLimit => f.write_str("memory limit"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::OutputLimit => f.write_str("output limit"),
            Outcome::DiskLimit => f.write_str("disk limit"),
            Outcome::StackOverflow => f.write_str("stack overflow"),
            Outcome::Trap(msg) => write!(f, "trap: {msg}"),
            Outcome::InvalidModule(why) => write!(f, "invalid module: {why}"),
            Outcome::LinkError(import) => write!(f, "link error: {import}"),
            Outcome::Cancelled => f.write_str("cancelled"),
            Outcome::NodeError(why) => write!(f, "node error: {why}"),
            Outcome::NoQuorum(why) => write!(f, "no quorum: {why}"),
        }
    }
}

/// What a finished job reports: how it ended and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// How the job ended.
    pub outcome: Outcome,
    /// Fuel burned.
    pub fuel_used: u64,
    /// The fuel limit the job ran under.
    pub fuel_limit: u64,
    /// Wall-clock time on the node.
    pub wall: Duration,
    /// From the node receiving the job to the guest's `_start` (zero if it
    /// never started).
    pub startup: Duration,
    /// The most linear memory the job held at once.
    pub peak_memory: u64,
    /// The name of the node that ran it.
    pub node: String,
    /// Mapped directories as the job left them.
    pub dirs: Vec<MappedDir>,
}

impl JobReport {
    /// A report for a job that ended before any guest code ran.
    pub fn before_start(outcome: Outcome, node: &str, limits: &Limits) -> Self {
        Self {
            outcome,
            fuel_used: 0,
            fuel_limit: limits.fuel,
            wall: Duration::ZERO,
            startup: Duration::ZERO,
            peak_memory: 0,
            node: node.to_owned(),
            dirs: Vec::new(),
        }
    }

    /// The one-line reason a person sees for a job that did not exit by
    /// itself, e.g. `out of fuel after 1000000 units`.
    pub fn reason(&self) -> String {
        match &self.outcome {
            Outcome::OutOfFuel => format!("out of fuel after {} units", self.fuel_limit),
            Outcome::Timeout => format!("timeout after {:.1}s", self.wall.as_secs_f64()),
            other => other.to_string(),
        }
    }
}
