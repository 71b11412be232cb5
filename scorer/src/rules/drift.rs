//! Drift: the exec of a file the workload itself wrote or created since scoring started — a
//! binary that was not in the image, dropped and run. Needs the workload's written paths,
//! which the scorer notes in [`WorkloadState`](crate::state::WorkloadState) on every open for
//! writing or creation, before the rules run.
//!
//! Counts only outside the profile (a workload that builds and runs its own tools learns it).

use profiles::{Event, EventDetail};

use super::Context;
use crate::{alert::Reason, entries::primary_entry};

/// The rule name.
pub const RULE: &str = "drift";

/// Exec of a file the workload wrote.
pub const WEIGHT: f64 = 0.7;

/// The drift reason for an exec of a path the workload wrote.
pub fn check(e: &Event, ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Exec { filename, .. } = &e.detail else {
        return None;
    };
    if !ctx.state.was_written(filename) {
        return None;
    }
    let text = format!(
        "drift: {filename} was written by this workload after it started and is now executed"
    );
    Some(Reason::new(RULE, WEIGHT, text, primary_entry(e)))
}

#[cfg(test)]
mod tests {
    use profiles::Access;

    use super::*;
    use crate::{
        state::WorkloadState,
        test_support::{exec, open},
    };

    #[test]
    fn exec_of_a_written_file_is_drift() {
        let mut state = WorkloadState::default();
        state.observe(&open("/tmp/payload", Access::Create));
        state.observe(&open("/etc/nginx/nginx.conf", Access::Read));
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let r = check(&exec("/tmp/payload", &["payload"], None), &ctx).unwrap();
        assert_eq!(r.rule, "drift");
        assert!(
            r.text.starts_with("drift: /tmp/payload was written"),
            "{}",
            r.text
        );
        assert!(check(&exec("/tmp/other", &["other"], None), &ctx).is_none());
        // Read, not written.
        let e = exec("/etc/nginx/nginx.conf", &["x"], None);
        assert!(check(&e, &ctx).is_none());
    }
}
