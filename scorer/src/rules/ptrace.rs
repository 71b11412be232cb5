//! ptrace against another process: attaching (`PTRACE_ATTACH`, `PTRACE_SEIZE`) to read its
//! memory or credentials, or writing into it (`PTRACE_POKETEXT`/`POKEDATA`/`POKEUSER`,
//! `PTRACE_SETREGS` and friends) to inject code. Profiles do not learn ptrace, so the rule
//! counts on every such event.

use profiles::{Event, EventDetail};

use super::{Context, program_shown};
use crate::alert::Reason;

/// The rule name.
pub const RULE: &str = "ptrace";

/// Attaching to a process.
pub const WEIGHT_ATTACH: f64 = 0.6;
/// Writing memory or registers of a process.
pub const WEIGHT_POKE: f64 = 0.75;

/// Request numbers (Linux, all architectures) that attach.
const ATTACH: &[(u64, &str)] = &[(16, "PTRACE_ATTACH"), (0x4206, "PTRACE_SEIZE")];
/// Request numbers that write into the tracee.
const POKE: &[(u64, &str)] = &[
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSER"),
    (13, "PTRACE_SETREGS"),
    (15, "PTRACE_SETFPREGS"),
    (0x4205, "PTRACE_SETREGSET"),
];

fn known(table: &[(u64, &str)], request: u64, name: &str) -> bool {
    table.iter().any(|&(n, s)| n == request || s == name)
}

/// The ptrace reason for an attach or poke request.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Ptrace {
        request,
        request_name,
        target_pid,
    } = &e.detail
    else {
        return None;
    };
    let (weight, what) = if known(POKE, *request, request_name) {
        (WEIGHT_POKE, "writes into")
    } else if known(ATTACH, *request, request_name) {
        (WEIGHT_ATTACH, "attaches to")
    } else {
        return None;
    };
    let name = if request_name.is_empty() {
        format!("request {request}")
    } else {
        request_name.clone()
    };
    let text = format!(
        "{} {what} process {target_pid} with ptrace ({name})",
        program_shown(e)
    );
    Some(Reason::new(RULE, weight, text, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{state::WorkloadState, test_support::event};

    fn weight(request: u64, name: &str) -> Option<f64> {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let e = event(EventDetail::Ptrace {
            request,
            request_name: name.into(),
            target_pid: 77,
        });
        check(&e, &ctx).map(|r| r.weight)
    }

    #[test]
    fn attach_and_poke_fire_other_requests_do_not() {
        assert_eq!(weight(16, "PTRACE_ATTACH"), Some(WEIGHT_ATTACH));
        assert_eq!(weight(0x4206, ""), Some(WEIGHT_ATTACH));
        assert_eq!(weight(5, "PTRACE_POKEDATA"), Some(WEIGHT_POKE));
        assert_eq!(weight(0x4205, "PTRACE_SETREGSET"), Some(WEIGHT_POKE));
        assert_eq!(weight(0, "PTRACE_TRACEME"), None);
        assert_eq!(weight(2, "PTRACE_PEEKDATA"), None);
        assert_eq!(weight(7, "PTRACE_CONT"), None);
    }
}
