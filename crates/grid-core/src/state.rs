//! The words every party uses for where a job stands and which stream its
//! output is on: one enum each, with the names users type and see.

use crate::{JobReport, Outcome};
use std::fmt;
use std::str::FromStr;

/// What a running job's `waiting` says while its node compiles its module
/// (it has not started yet, and its timeout does not run).
pub const COMPILING: &str = "compiling";

/// Where a job stands, as the record, the live state, the wire and the CLI
/// name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a node.
    Queued,
    /// Sent to a node.
    Running,
    /// The guest exited with code 0.
    Succeeded,
    /// Ended any other way than success or cancellation.
    Failed,
    /// Someone cancelled it.
    Cancelled,
}

impl JobState {
    /// Every state, in the order a job goes through them.
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];

    /// The name users type and see.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The state a job that ended with `report` is in.
    pub fn finished(report: &JobReport) -> Self {
        match report.outcome {
            Outcome::Exited(0) => JobState::Succeeded,
            Outcome::Cancelled => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a job state: use queued, running, succeeded, failed or cancelled")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Which of a guest's output streams a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// How one attempt at a job ended, as the record keeps it and `status`
/// shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptEnd {
    /// The node reported the job's end: the job's result is this attempt's.
    Finished,
    /// The node was lost (disconnected, or missed its heartbeats).
    Lost,
    /// The node handed the job back (over its limits, shutting down).
    HandedBack,
    /// The node held the job past its timeout and the master's grace.
    Overdue,
    /// The job was cancelled while it ran.
    Cancelled,
    /// The master restarted while the job ran.
    Restarted,
    /// A replica still running when the job's quorum was reached: stopped.
    NotNeeded,
}

impl AttemptEnd {
    /// Every way an attempt ends.
    pub const ALL: [AttemptEnd; 7] = [
        AttemptEnd::Finished,
        AttemptEnd::Lost,
        AttemptEnd::HandedBack,
        AttemptEnd::Overdue,
        AttemptEnd::Cancelled,
        AttemptEnd::Restarted,
        AttemptEnd::NotNeeded,
    ];

    /// The name the record keeps and users see.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Finished => "finished",
            AttemptEnd::Lost => "node lost",
            AttemptEnd::HandedBack => "handed back",
            AttemptEnd::Overdue => "overdue",
            AttemptEnd::Cancelled => "cancelled",
            AttemptEnd::Restarted => "master restarted",
            AttemptEnd::NotNeeded => "not needed",
        }
    }

    /// How the attempt that ended the job with `outcome` ended, when the
    /// node's report did not say otherwise.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Cancelled => AttemptEnd::Cancelled,
            _ => AttemptEnd::Finished,
        }
    }
}

impl fmt::Display for AttemptEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptEnd {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AttemptEnd::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| format!("`{s}` is not how an attempt ends"))
    }
}

/// One attempt at a job: the node it ran on, when it started and ended
/// (ms since the Unix epoch), and how it ended (`None` while it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The node's name.
    pub node: String,
    /// When the job was sent to the node.
    pub started_ms: u64,
    /// When the attempt ended.
    pub ended_ms: Option<u64>,
    /// How it ended.
    pub end: Option<AttemptEnd>,
    /// A replica's result reduced to a digest (hex sha256), once it
    /// finished; `None` for an attempt that was not verified.
    pub digest: Option<String>,
    /// Whether the replica agreed with the job's quorum, once decided.
    pub verdict: Option<Verdict>,
}

/// How a replica's result stood against the job's quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Its digest is the one the quorum agreed on.
    Agreed,
    /// Its digest is not.
    Disagreed,
}

impl Verdict {
    /// The name the record keeps and users see.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agreed => "agreed",
            Verdict::Disagreed => "disagreed",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Verdict::Agreed, Verdict::Disagreed]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a verdict"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    #[test]
    fn states_parse_back_from_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        let err = "done".parse::<JobState>().unwrap_err().to_string();
        assert!(err.contains("`done` is not a job state"), "{err}");
    }

    #[test]
    fn attempt_ends_parse_back_from_their_names() {
        for end in AttemptEnd::ALL {
            assert_eq!(end.as_str().parse::<AttemptEnd>(), Ok(end));
        }
        assert!("lost-ish".parse::<AttemptEnd>().is_err());
        assert_eq!(AttemptEnd::of(&Outcome::Cancelled), AttemptEnd::Cancelled);
        assert_eq!(AttemptEnd::of(&Outcome::Exited(3)), AttemptEnd::Finished);
    }

    #[test]
    fn a_finished_job_s_state_follows_its_outcome() {
        let state = |outcome| JobState::finished(&JobReport::before_start(outcome, "", &Limits::default()));
        assert_eq!(state(Outcome::Exited(0)), JobState::Succeeded);
        assert_eq!(state(Outcome::Exited(1)), JobState::Failed);
        assert_eq!(state(Outcome::Cancelled), JobState::Cancelled);
        assert_eq!(state(Outcome::Timeout), JobState::Failed);
        assert!(JobState::Failed.is_final() && !JobState::Running.is_final());
    }
}
