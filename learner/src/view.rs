//! The readable one-line-per-event view of `baseliner capture` (without `--json`).

use std::time::{Duration, UNIX_EPOCH};

use profiles::{Endpoint, Event, EventDetail};

/// `HH:MM:SS.mmm` (UTC) of a Unix-epoch nanosecond timestamp.
pub fn clock_time(ts_ns: u64) -> String {
    let d = UNIX_EPOCH + Duration::from_nanos(ts_ns);
    let secs = d
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ms = (ts_ns / 1_000_000) % 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms
    )
}

fn endpoint(e: &Endpoint) -> String {
    let proto = serde_json::to_value(e.protocol)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match e.family {
        profiles::Family::Unix => format!("unix:{} ({proto})", e.addr),
        profiles::Family::Inet6 => format!("[{}]:{} ({proto})", e.addr, e.port),
        profiles::Family::Inet => format!("{}:{} ({proto})", e.addr, e.port),
    }
}

fn quote_arg(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// What happened, in a few words.
pub fn describe(detail: &EventDetail) -> String {
    match detail {
        EventDetail::Exec {
            argv,
            argv_truncated,
            argv_unknown,
            filename,
        } => {
            let args: Vec<String> = argv.iter().skip(1).map(|a| quote_arg(a)).collect();
            let note = if *argv_unknown {
                " (arguments unknown)"
            } else if *argv_truncated {
                " …(truncated)"
            } else {
                ""
            };
            format!("{filename} {}{note}", args.join(" "))
        }
        EventDetail::Open { path, access, .. } => format!("{path} ({access})"),
        EventDetail::Connect { dest } => endpoint(dest),
        EventDetail::Bind { local } => endpoint(local),
        EventDetail::Listen { local: Some(l) } => endpoint(l),
        EventDetail::Listen { local: None } => "(address bound before capture started)".into(),
        EventDetail::Ptrace {
            request_name,
            target_pid,
            ..
        } => format!("{request_name} pid {target_pid}"),
        EventDetail::Setuid { call, ids } | EventDetail::Setgid { call, ids } => {
            let ids: Vec<String> = ids
                .iter()
                .map(|i| i.map_or("-1".into(), |v| v.to_string()))
                .collect();
            format!("{call}({})", ids.join(", "))
        }
    }
}

/// One line: time, kind, process, workload, details; an event of a process that was running
/// before capture started ends with `(already running)`.
pub fn line(e: &Event) -> String {
    format!(
        "{} {:<7} {:<15} pid={:<7} ppid={:<7} uid={:<5} {}  {}{}",
        clock_time(e.ts_ns),
        e.detail.kind(),
        e.comm,
        e.pid,
        e.ppid,
        e.uid,
        e.workload.id,
        describe(&e.detail),
        if e.existing {
            "  (already running)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use profiles::{Access, Family, Protocol, Workload};

    use super::*;

    fn event(detail: EventDetail) -> Event {
        Event {
            schema: 1,
            ts_ns: 3_723_004_000_000, // 01:02:03.004 on day one
            workload: Workload {
                id: "/system.slice/nginx.service".into(),
                cgroup_id: 9,
                cgroup: "/system.slice/nginx.service".into(),
                runtime: None,
                container_id: None,
                pod_uid: None,
                unit: Some("nginx.service".into()),
                k8s: None,
            },
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "nginx".into(),
            exe: Some("/usr/sbin/nginx".into()),
            parent_exe: None,
            existing: false,
            blocked: false,
            detail,
        }
    }

    #[test]
    fn lines_read_well() {
        let l = line(&event(EventDetail::Exec {
            filename: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            argv_truncated: false,
            argv_unknown: false,
        }));
        assert!(l.starts_with("01:02:03.004 exec"), "{l}");
        assert!(l.ends_with("/bin/sh -c 'echo hi'"), "{l}");
        assert!(l.contains("/system.slice/nginx.service"));
        let l = line(&event(EventDetail::Open {
            path: "/etc/shadow".into(),
            flags: 0,
            access: Access::Read,
            path_truncated: false,
        }));
        assert!(l.ends_with("/etc/shadow (read)"), "{l}");
        let l = line(&event(EventDetail::Connect {
            dest: Endpoint {
                family: Family::Inet6,
                protocol: Protocol::Tcp,
                addr: "::1".into(),
                port: 443,
            },
        }));
        assert!(l.ends_with("[::1]:443 (tcp)"), "{l}");
    }

    #[test]
    fn processes_found_running_are_marked() {
        let mut e = event(EventDetail::Exec {
            filename: "/usr/sbin/nginx".into(),
            argv: vec!["nginx".into()],
            argv_truncated: false,
            argv_unknown: false,
        });
        assert!(!line(&e).contains("already running"));
        e.existing = true;
        let l = line(&e);
        assert!(l.ends_with("/usr/sbin/nginx   (already running)"), "{l}");
    }
}
