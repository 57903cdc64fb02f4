//! Where a node stands, as the master records it and `grid-cli nodes`
//! shows it: one enum, with the names users see.

use std::fmt;
use std::str::FromStr;

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Connected and taking jobs.
    Ready,
    /// Connected, shutting down: it takes no new jobs.
    Draining,
    /// Not connected: it left, or the master restarted without it.
    Gone,
    /// Not connected: it went silent or its stream broke.
    Lost,
}

impl NodeState {
    /// Every state.
    pub const ALL: [NodeState; 4] = [NodeState::Ready, NodeState::Draining, NodeState::Gone, NodeState::Lost];

    /// The name users see.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
            NodeState::Gone => "gone",
            NodeState::Lost => "lost",
        }
    }

    /// Whether a node in this state is connected.
    pub fn is_connected(self) -> bool {
        matches!(self, NodeState::Ready | NodeState::Draining)
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a node state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a node state: use ready, draining, gone or lost")]
pub struct UnknownNodeState(pub String);

impl FromStr for NodeState {
    type Err = UnknownNodeState;
    fn from_str(s: &str) -> Result<Self, UnknownNodeState> {
        NodeState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownNodeState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_name() {
        for state in NodeState::ALL {
            assert_eq!(state.as_str().parse::<NodeState>(), Ok(state));
        }
        assert!("up".parse::<NodeState>().unwrap_err().to_string().contains("not a node state"));
    }
}
