//! The words every party uses for where a job stands and which stream its
//! output is on: one enum each, with the names users type and see.

use crate::{JobReport, Outcome};
use std::fmt;
use std::str::FromStr;

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
    fn a_finished_job_s_state_follows_its_outcome() {
        let state = |outcome| JobState::finished(&JobReport::before_start(outcome, "", &Limits::default()));
        assert_eq!(state(Outcome::Exited(0)), JobState::Succeeded);
        assert_eq!(state(Outcome::Exited(1)), JobState::Failed);
        assert_eq!(state(Outcome::Cancelled), JobState::Cancelled);
        assert_eq!(state(Outcome::Timeout), JobState::Failed);
        assert!(JobState::Failed.is_final() && !JobState::Running.is_final());
    }
}
