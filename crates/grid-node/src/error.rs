//! The node's errors.

use grid_core::Outcome;

/// Why a job could not start: each maps to the outcome the submitter sees.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("invalid module: {0}")]
    InvalidModule(String),
    #[error("link error: {0}")]
    Link(String),
    #[error("memory limit")]
    MemoryLimit,
    #[error("failed to fetch module: {0}")]
    Fetch(String),
    #[error("node error: {0}")]
    Node(String),
}

impl PrepareError {
    /// The outcome a job that hit this error ends with.
    pub fn outcome(&self) -> Outcome {
        match self {
            PrepareError::InvalidModule(m) => Outcome::InvalidModule(m.clone()),
            PrepareError::Link(m) => Outcome::LinkError(m.clone()),
            PrepareError::MemoryLimit => Outcome::MemoryLimit,
            PrepareError::Fetch(m) | PrepareError::Node(m) => Outcome::NodeError(m.clone()),
        }
    }
}

/// Renders an error chain on one line.
pub(crate) fn one_line(e: impl std::fmt::Display) -> String {
    let s = format!("{e:#}");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
