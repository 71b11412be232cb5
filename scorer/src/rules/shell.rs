//! A shell started by a server: the classic sign of command injection, a web shell or a
//! reverse shell (`nginx → /bin/sh`, `java → bash`).
//!
//! Fires on the exec of a shell ([`SHELLS`], or busybox run as one of them) whose parent's
//! executable is known, is not a shell itself (scripts run shells all the time), and is not one
//! of the programs whose job is to start shells or sessions ([`SESSION_STARTERS`]: init and
//! supervisors, cron and at, sshd and login, sudo/su/doas, terminal multiplexers, container
//! runtimes and container init shims). Every other parent counts as a server-ish process.
//! Counts only outside the profile: a server whose shell-outs were learned raises nothing.

use profiles::{Event, EventDetail};

use super::{Context, basename};
use crate::{alert::Reason, entries::lineage_entry};

/// The rule name.
pub const RULE: &str = "shell-from-server";

/// A shell started by a server.
pub const WEIGHT: f64 = 0.75;

/// Shell program names.
pub const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish", "rbash",
];

/// Parents that start shells by design (matched on the basename; a trailing `*` matches a
/// prefix).
pub const SESSION_STARTERS: &[&str] = &[
    // init and supervisors
    "init",
    "systemd",
    "runit",
    "runsv",
    "s6-supervise",
    "supervisord",
    "tini",
    "dumb-init",
    "docker-init",
    "catatonit",
    // scheduled jobs
    "cron",
    "crond",
    "anacron",
    "atd",
    // logins and privilege switches
    "sshd",
    "sshd-session",
    "login",
    "agetty",
    "getty",
    "sudo",
    "su",
    "runuser",
    "doas",
    // terminal multiplexers
    "tmux*",
    "screen",
    // container runtimes (`kubectl exec`, `docker exec`)
    "containerd-shim*",
    "runc",
    "crun",
    "conmon",
];

/// Whether the basename `name` is a shell (busybox when run as a shell).
fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

fn is_session_starter(name: &str) -> bool {
    SESSION_STARTERS.iter().any(|s| match s.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *s,
    })
}

/// The shell an exec runs, if it runs one: the program's basename, or for busybox its
/// `argv[0]` (`sh`) or first argument (`busybox sh`).
fn shell_of<'a>(filename: &'a str, argv: &'a [String]) -> Option<&'a str> {
    let base = basename(filename);
    if is_shell(base) {
        return Some(base);
    }
    if base == "busybox" {
        let argv0 = argv.first().map(|a| basename(a));
        let called = argv0
            .filter(|a| *a != "busybox")
            .or(argv.get(1).map(|a| a.as_str()));
        return called.filter(|c| is_shell(c));
    }
    None
}

/// The shell-from-server reason for a shell exec by a server-ish parent.
pub fn check(e: &Event, _ctx: &Context<'_>) -> Option<Reason> {
    let EventDetail::Exec { filename, argv, .. } = &e.detail else {
        return None;
    };
    let shell = shell_of(filename, argv)?;
    let parent = e.parent_exe.as_deref()?;
    let parent_name = basename(parent);
    if is_shell(parent_name) || parent_name == "busybox" || is_session_starter(parent_name) {
        return None;
    }
    let text = format!("shell {filename} ({shell}) started by the server process {parent}");
    Some(Reason::new(RULE, WEIGHT, text, lineage_entry(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{state::WorkloadState, test_support::exec};

    fn fires(filename: &str, argv: &[&str], parent: Option<&str>) -> bool {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        check(&exec(filename, argv, parent), &ctx).is_some()
    }

    #[test]
    fn shells_from_servers() {
        for parent in [
            "/usr/sbin/nginx",
            "/usr/bin/java",
            "/usr/local/bin/node",
            "/usr/sbin/php-fpm8.2",
            "/usr/bin/python3.11",
            "/usr/sbin/httpd",
            "/usr/bin/redis-server",
        ] {
            assert!(
                fires("/bin/sh", &["sh", "-c", "id"], Some(parent)),
                "{parent}"
            );
        }
        assert!(fires(
            "/usr/bin/bash",
            &["bash", "-i"],
            Some("/usr/sbin/nginx")
        ));
        assert!(fires("/bin/busybox", &["sh"], Some("/usr/sbin/nginx")));
        assert!(fires(
            "/bin/busybox",
            &["busybox", "ash"],
            Some("/app/server")
        ));
    }

    #[test]
    fn shells_from_shells_logins_and_runtimes_do_not_fire() {
        for parent in [
            "/bin/bash",
            "/bin/sh",
            "/bin/busybox",
            "/usr/sbin/sshd",
            "/usr/lib/openssh/sshd-session",
            "/usr/sbin/cron",
            "/usr/bin/sudo",
            "/bin/su",
            "/sbin/init",
            "/usr/lib/systemd/systemd",
            "/usr/bin/tmux",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/tini",
        ] {
            assert!(
                !fires("/bin/sh", &["sh", "-c", "x"], Some(parent)),
                "{parent}"
            );
        }
        assert!(!fires("/bin/sh", &["sh"], None), "unknown parent");
        assert!(!fires("/usr/bin/curl", &["curl"], Some("/usr/sbin/nginx")));
        assert!(!fires(
            "/bin/busybox",
            &["busybox", "wget"],
            Some("/usr/sbin/nginx")
        ));
        assert!(!fires(
            "/usr/bin/shellcheck",
            &["shellcheck"],
            Some("/usr/sbin/nginx")
        ));
    }

    #[test]
    fn the_text_and_entry_name_the_lineage() {
        let state = WorkloadState::default();
        let ctx = Context {
            state: &state,
            in_profile: false,
        };
        let e = exec("/bin/sh", &["sh", "-c", "id"], Some("/usr/sbin/nginx"));
        let r = check(&e, &ctx).unwrap();
        assert_eq!(
            r.text,
            "shell /bin/sh (sh) started by the server process /usr/sbin/nginx"
        );
        assert_eq!(
            r.entry.as_deref(),
            Some("lineage /usr/sbin/nginx -> /bin/sh")
        );
    }
}
