//! Heuristics: one file per rule, each a pure function over an event and its [`Context`] that
//! returns a [`Reason`] carrying the rule's own weight, or nothing.
//!
//! Rules must not allocate unless they fire: the miner rule runs on every event.
//!
//! | rule | file | fires on | weight |
//! |---|---|---|---|
//! | `crypto-miner` | [`miner`] | exec, connect (any event's comm/exe for the name) | 0.45–0.97 |
//! | `reverse-shell` | [`reverse_shell`] | exec handing a shell to a socket (`>& /dev/tcp`, `nc -e`, …) | 0.92 |
//! | `sensitive-file` | [`sensitive`] | open of credentials, keys, tokens | 0.5–0.8 |
//! | `writable-exec` | [`writable_exec`] | exec under /tmp, /var/tmp, /dev/shm | 0.55 / 0.7 hidden |
//! | `shell-from-server` | [`shell`] | exec of a shell by a non-shell, non-login parent | 0.75 |
//! | `drift` | [`drift`] | exec of a file the workload wrote | 0.7 |
//! | `ptrace` | [`ptrace`] | ptrace attach / seize / poke / set registers | 0.6 / 0.75 |
//! | `privilege-change` | [`privilege`] | set*id to 0 by non-root; other changes by non-root | 0.6 / 0.35 |

pub mod drift;
pub mod miner;
pub mod privilege;
pub mod ptrace;
pub mod reverse_shell;
pub mod sensitive;
pub mod shell;
pub mod writable_exec;

use profiles::{Event, EventDetail};

use crate::{alert::Reason, state::WorkloadState};

/// What a rule may look at besides the event.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The workload's state (written files), already updated with this event.
    pub state: &'a WorkloadState,
    /// True when the profile covers every entry the event records. False for events that
    /// record no entry (ptrace, set*id): a profile cannot learn those.
    pub in_profile: bool,
}

/// When a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On every event, learned or not (a miner learned during learning is still a miner).
    Always,
    /// Only on events outside the profile (sshd reading /etc/shadow is learned behaviour).
    OutsideProfile,
}

/// One heuristic.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The [`Reason::rule`] name it reports.
    pub name: &'static str,
    /// When it counts.
    pub scope: Scope,
    /// The check.
    pub check: fn(&Event, &Context<'_>) -> Option<Reason>,
}

/// Every rule, in the order they run.
pub const RULES: &[Rule] = &[
    Rule {
        name: miner::RULE,
        scope: Scope::Always,
        check: miner::check,
    },
    Rule {
        name: reverse_shell::RULE,
        scope: Scope::Always,
        check: reverse_shell::check,
    },
    Rule {
        name: sensitive::RULE,
        scope: Scope::OutsideProfile,
        check: sensitive::check,
    },
    Rule {
        name: writable_exec::RULE,
        scope: Scope::OutsideProfile,
        check: writable_exec::check,
    },
    Rule {
        name: shell::RULE,
        scope: Scope::OutsideProfile,
        check: shell::check,
    },
    Rule {
        name: drift::RULE,
        scope: Scope::OutsideProfile,
        check: drift::check,
    },
    Rule {
        name: ptrace::RULE,
        scope: Scope::OutsideProfile,
        check: ptrace::check,
    },
    Rule {
        name: privilege::RULE,
        scope: Scope::OutsideProfile,
        check: privilege::check,
    },
];

/// The last path segment (`/usr/bin/xmrig` → `xmrig`).
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The program behind an event: the file just executed for an exec, else the process's
/// executable.
pub(crate) fn program(e: &Event) -> Option<&str> {
    match &e.detail {
        EventDetail::Exec { filename, .. } => Some(filename),
        _ => e.exe.as_deref(),
    }
}

/// The program's path for texts, or its comm in brackets when the path is unknown.
pub(crate) fn program_shown(e: &Event) -> String {
    program(e).map_or_else(|| format!("[{}]", e.comm), String::from)
}

/// Byte offset of the first ASCII case-insensitive match of lower-case `needle` in `hay`.
/// Allocation-free.
pub(crate) fn find_lower(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    h.windows(n.len())
        .position(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// True when `path` lies below `dir` (given without a trailing slash).
pub(crate) fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(basename("/usr/bin/xmrig"), "xmrig");
        assert_eq!(basename("xmrig"), "xmrig");
        assert_eq!(find_lower("STRATUM+TCP://x", "stratum+tcp"), Some(0));
        assert_eq!(find_lower("strat", "stratum"), None);
        assert_eq!(find_lower("a--Donate-Level", "--donate-level"), Some(1));
        assert!(under("/tmp/x", "/tmp"));
        assert!(!under("/tmpfoo/x", "/tmp"));
        assert!(!under("/tmp", "/tmp"));
    }

    #[test]
    fn rule_names_are_unique() {
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }
}
