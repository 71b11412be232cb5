//! The rollout mode of a workload.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What the agent does with a workload's events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Record behaviour into the profile.
    #[default]
    Learn,
    /// Score behaviour against the profile and raise alerts.
    Alert,
    /// Block what the profile does not allow.
    Enforce,
    /// Alert, and say what enforce mode would block, without blocking: the step before
    /// enforce, to see what enforcement would break.
    DryRun,
}

impl Mode {
    /// Every mode, in the order a workload goes through them.
    pub const ALL: [Mode; 4] = [Mode::Learn, Mode::Alert, Mode::DryRun, Mode::Enforce];

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Learn => "learn",
            Mode::Alert => "alert",
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
        }
    }

    /// Whether events are scored (alert, dry-run and enforce modes).
    pub fn scores(self) -> bool {
        self != Mode::Learn
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not `learn`, `alert`, `dry-run` or `enforce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMode(pub String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown mode {:?}: expected learn, alert, dry-run or enforce",
            self.0
        )
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "learn" => Ok(Mode::Learn),
            "alert" => Ok(Mode::Alert),
            "enforce" => Ok(Mode::Enforce),
            "dry-run" => Ok(Mode::DryRun),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for m in [Mode::Learn, Mode::Alert, Mode::Enforce, Mode::DryRun] {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        let err = "Enforce ".parse::<Mode>().unwrap_err();
        assert!(
            err.to_string()
                .contains("expected learn, alert, dry-run or enforce")
        );
        assert_eq!(Mode::default(), Mode::Learn);
    }
}
