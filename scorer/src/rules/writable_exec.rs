//! Execution from world-writable temporary directories: `/tmp`, `/var/tmp`, `/dev/shm`, where
//! droppers put their payloads. A path with a hidden component below them (`/tmp/.x/miner`,
//! `/dev/shm/.cache`) weighs more: hiding is deliberate.
//!
//! Counts only outside the profile (a build workload that runs what it compiles in /tmp learns
//! it).

use profiles::{Event, EventDetail};

use super::{Context, under};
use crate::{alert::Reason, entries::primary_entry};

/// The rule name.
pub const RULE: &str = "writable-exec";

/// Exec of a program in a temporary directory.
pub const WEIGHT: f64 = 0.55;
/// ... in a hidden file or directory there.
pub const WEIGHT_HIDDEN: f64 = 0.7;

/// The world-writable directories watched.
pub const WRITABLE_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// The writable-exec reason for an exec from a temporary directory.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Exec { filename, .. } = &e.detail else {
        return None;
    };
    let dir = WRITABLE_DIRS.iter().find(|d| under(filename, d))?;
    let hidden = filename[dir.len()..].contains("/.");
    let (weight, what) = if hidden {
        (WEIGHT_HIDDEN, "a hidden path in the world-writable")
    } else {
        (WEIGHT, "the world-writable")
    };
    let text = format!("{filename} runs from {what} directory {dir}");
    Some(Reason::new(RULE, weight, text, primary_entry(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{state::WorkloadState, test_support::exec};

    fn weight(path: &str) -> Option<f64> {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        check(&exec(path, &[path], None), &ctx).map(|r| r.weight)
    }

    #[test]
    fn temporary_directories() {
        for p in ["/tmp/payload", "/var/tmp/x/y", "/dev/shm/run"] {
            assert_eq!(weight(p), Some(WEIGHT), "{p}");
        }
        for p in ["/tmp/.x/miner", "/dev/shm/.cache", "/var/tmp/a/.b/c"] {
            assert_eq!(weight(p), Some(WEIGHT_HIDDEN), "{p}");
        }
        for p in [
            "/usr/bin/tmp",
            "/tmpfs/x",
            "/opt/tmp/x",
            "/home/u/.local/bin/x",
            "/tmp",
        ] {
            assert_eq!(weight(p), None, "{p}");
        }
    }

    #[test]
    fn the_text_names_the_directory() {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let r = check(&exec("/dev/shm/.x", &["x"], None), &ctx).unwrap();
        assert_eq!(
            r.text,
            "/dev/shm/.x runs from a hidden path in the world-writable directory /dev/shm"
        );
        assert_eq!(r.entry.as_deref(), Some("exec /dev/shm/.x"));
    }
}
