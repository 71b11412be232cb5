//! Privilege changes: a call of the setuid or setgid family asking for id 0 by a process whose
//! real id is not 0, or asking for another id at all by a non-root process. Root dropping
//! privileges (nginx's master switching its workers to www-data) is ordinary and does not fire.
//! Profiles do not learn set*id calls, so the rule counts on every such event; sudo and su in a
//! workload fire too, and are worth a look in a container.

use profiles::{Event, EventDetail};

use super::{Context, program_shown};
use crate::alert::Reason;

/// The rule name.
pub const RULE: &str = "privilege-change";

/// A non-root process asking for root.
pub const WEIGHT_TO_ROOT: f64 = 0.6;
/// A non-root process asking for another non-root id.
pub const WEIGHT_OTHER: f64 = 0.35;

/// The privilege-change reason for a set*id call.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let (call, ids, current, what) = match &e.detail {
        EventDetail::Setuid { call, ids } => (call, ids, e.uid, "uid"),
        EventDetail::Setgid { call, ids } => (call, ids, e.gid, "gid"),
        _ => return None,
    };
    if current == 0 {
        return None;
    }
    let asked = || ids.iter().flatten().copied();
    let (weight, goal) = if asked().any(|id| id == 0) {
        (WEIGHT_TO_ROOT, "root (0)".to_string())
    } else if let Some(other) = asked().find(|&id| id != current) {
        (WEIGHT_OTHER, other.to_string())
    } else {
        return None;
    };
    let text = format!(
        "{} running as {what} {current} calls {call} to become {what} {goal}",
        program_shown(e)
    );
    Some(Reason::new(RULE, weight, text, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        state::WorkloadState,
        test_support::{by, event},
    };

    fn weight(uid: u32, detail: EventDetail) -> Option<f64> {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        check(&by(event(detail), "/usr/bin/app", uid), &ctx).map(|r| r.weight)
    }

    fn setuid(ids: &[Option<u32>]) -> EventDetail {
        EventDetail::Setuid {
            call: "setresuid".into(),
            ids: ids.to_vec(),
        }
    }

    #[test]
    fn non_root_asking_for_root() {
        assert_eq!(weight(1000, setuid(&[Some(0)])), Some(WEIGHT_TO_ROOT));
        assert_eq!(
            weight(1000, setuid(&[None, Some(0), None])),
            Some(WEIGHT_TO_ROOT)
        );
        let setgid = EventDetail::Setgid {
            call: "setgid".into(),
            ids: vec![Some(0)],
        };
        assert_eq!(weight(1000, setgid), Some(WEIGHT_TO_ROOT));
    }

    #[test]
    fn non_root_changing_ids() {
        assert_eq!(weight(1000, setuid(&[Some(1001)])), Some(WEIGHT_OTHER));
        assert_eq!(weight(1000, setuid(&[Some(1000), None, Some(1000)])), None);
        assert_eq!(weight(1000, setuid(&[None, None, None])), None);
    }

    #[test]
    fn root_dropping_privileges_is_ordinary() {
        assert_eq!(weight(0, setuid(&[Some(33)])), None);
        assert_eq!(weight(0, setuid(&[Some(0)])), None);
    }

    #[test]
    fn the_text_says_who_becomes_what() {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let e = by(event(setuid(&[Some(0), None, Some(0)])), "/tmp/x", 1000);
        assert_eq!(
            check(&e, &ctx).unwrap().text,
            "/tmp/x running as uid 1000 calls setresuid to become uid root (0)"
        );
    }
}
