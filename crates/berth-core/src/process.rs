//! The desired state of a process row, as the store keeps it and the
//! reconciler and rollouts act on it.

use std::fmt;
use std::str::FromStr;

/// What berth wants of one process. Stored as its wire name (`starting`,
/// `active`, `stopping`); what the engine shows is observed separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// Started by a rollout, not routed until the rollout promotes it.
    Starting,
    /// Routed whenever its container runs and passes its health check.
    Active,
    /// Retired: taken out of the router, drained, stopped, then its row deleted.
    Stopping,
}

impl ProcessState {
    pub const ALL: [ProcessState; 3] = [
        ProcessState::Starting,
        ProcessState::Active,
        ProcessState::Stopping,
    ];

    /// The name in the store and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Active => "active",
            ProcessState::Stopping => "stopping",
        }
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of [`ProcessState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown process state {0:?}; expected starting, active or stopping")]
pub struct UnknownProcessState(pub String);

impl FromStr for ProcessState {
    type Err = UnknownProcessState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProcessState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownProcessState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in ProcessState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
        }
        assert!("oneoff".parse::<ProcessState>().is_err());
    }
}
