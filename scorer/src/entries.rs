//! The profile entries an event stands for, and what an alert is about.
//!
//! [`event_entries`] is what [`profiles::model::Profile::record`] records for an event.

use std::fmt::Write as _;

use profiles::{Event, EventDetail, Protocol, diff::DiffEntry, generalize};

/// True when the event records a profile entry: exec, open, connect, a listen with a known
/// address, a UDP bind to a fixed port. Ptrace, set*id and the rest carry none, so a profile
/// can never learn them. Allocation-free.
pub(crate) fn has_entries(e: &Event) -> bool {
    match &e.detail {
        EventDetail::Exec { .. } | EventDetail::Open { .. } | EventDetail::Connect { .. } => true,
        EventDetail::Listen { local } => local.is_some(),
        EventDetail::Bind { local } => local.protocol == Protocol::Udp && local.port != 0,
        EventDetail::Ptrace { .. } | EventDetail::Setuid { .. } | EventDetail::Setgid { .. } => {
            false
        }
    }
}

pub(crate) use profiles::model::event_entries;

/// The event's main entry rendered ([`DiffEntry`]'s `Display`): the exec entry of an exec,
/// the file, connect or listen entry otherwise; `None` when it records none.
pub(crate) fn primary_entry(e: &Event) -> Option<String> {
    event_entries(e).first().map(ToString::to_string)
}

/// The event's lineage entry rendered, for an exec whose parent is known.
pub(crate) fn lineage_entry(e: &Event) -> Option<String> {
    let entries = event_entries(e);
    let lineage = entries.iter().find(|x| matches!(x, DiffEntry::Lineage(_)));
    lineage.map(ToString::to_string)
}

/// What an alert about `e` is about, for its key: the event's generalised entries, one per
/// line; for events without entries, a generalised description of the act (`ptrace
/// PTRACE_ATTACH by /usr/bin/gdb`, `setuid setresuid(0, -, 0) by /usr/bin/app`,
/// `bind tcp 0.0.0.0:0 by …`), leaving out what changes between repeats (pids, times).
pub(crate) fn subject(e: &Event) -> String {
    let entries = event_entries(e);
    if !entries.is_empty() {
        let mut out = String::new();
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = write!(out, "{entry}");
        }
        return out;
    }
    let by = e
        .exe
        .as_deref()
        .map_or_else(|| format!("comm {}", e.comm), generalize::path);
    let ids = |ids: &[Option<u32>]| {
        let shown: Vec<String> = ids
            .iter()
            .map(|i| i.map_or_else(|| "-".to_string(), |i| i.to_string()))
            .collect();
        shown.join(", ")
    };
    match &e.detail {
        EventDetail::Ptrace {
            request,
            request_name,
            ..
        } => format!("ptrace {request_name} ({request}) by {by}"),
        EventDetail::Setuid { call, ids: v } | EventDetail::Setgid { call, ids: v } => {
            format!("{} {call}({}) by {by}", e.detail.kind(), ids(v))
        }
        EventDetail::Bind { local } => {
            let proto = format!("{:?}", local.protocol).to_ascii_lowercase();
            format!("bind {proto} {}:{} by {by}", local.addr, local.port)
        }
        other => format!("{} by {by}", other.kind()),
    }
}

#[cfg(test)]
mod tests {
    use profiles::{Access, Endpoint, Family, model::Profile};

    use super::*;
    use crate::test_support::{event, exec};

    fn ep(family: Family, protocol: Protocol, addr: &str, port: u16) -> Endpoint {
        Endpoint {
            family,
            protocol,
            addr: addr.into(),
            port,
        }
    }

    /// Whatever `Profile::record` adds is exactly what `event_entries` names.
    #[test]
    fn entries_match_what_profiles_record() {
        let tcp = |port| ep(Family::Inet, Protocol::Tcp, "10.0.0.5", port);
        let udp = |port| ep(Family::Inet, Protocol::Udp, "0.0.0.0", port);
        let details = vec![
            EventDetail::Open {
                path: "/proc/1234/status".into(),
                flags: 0,
                access: Access::Read,
                path_truncated: false,
            },
            EventDetail::Connect { dest: tcp(5432) },
            EventDetail::Connect {
                dest: ep(Family::Unix, Protocol::Stream, "/run/app/1234.sock", 0),
            },
            EventDetail::Listen {
                local: Some(tcp(8080)),
            },
            EventDetail::Listen { local: None },
            EventDetail::Bind { local: udp(53) },
            EventDetail::Bind { local: udp(0) },
            EventDetail::Bind { local: tcp(8080) },
            EventDetail::Ptrace {
                request: 16,
                request_name: "PTRACE_ATTACH".into(),
                target_pid: 3,
            },
            EventDetail::Setuid {
                call: "setuid".into(),
                ids: vec![Some(0)],
            },
        ];
        let mut events: Vec<Event> = details.into_iter().map(event).collect();
        events.push(exec(
            "/usr/bin/curl",
            &["curl", "-s", "http://x/1234"],
            None,
        ));
        let mut with_parent = exec("/tmp/a1b2c3d4e5", &["a"], None);
        with_parent.parent_exe = Some("/usr/sbin/nginx".into());
        events.push(with_parent);
        let mut unknown = exec("/bin/true", &[], None);
        if let EventDetail::Exec { argv_unknown, .. } = &mut unknown.detail {
            *argv_unknown = true;
        }
        events.push(unknown);
        for e in events {
            let mut p = Profile::default();
            p.record(&e);
            let ours = event_entries(&e);
            assert_eq!(ours.len(), p.len(), "{e:?}");
            assert_eq!(has_entries(&e), !ours.is_empty(), "{e:?}");
            for entry in &ours {
                assert!(p.covers_entry(entry), "{entry} not recorded for {e:?}");
            }
        }
    }

    #[test]
    fn subjects_leave_out_what_changes_between_repeats() {
        let trace = |pid| {
            event(EventDetail::Ptrace {
                request: 16,
                request_name: "PTRACE_ATTACH".into(),
                target_pid: pid,
            })
        };
        assert_eq!(subject(&trace(1)), subject(&trace(2)));
        assert_eq!(
            subject(&trace(1)),
            "ptrace PTRACE_ATTACH (16) by /usr/sbin/nginx"
        );
        let mut e = exec("/tmp/x", &["x", "--port", "1234"], None);
        e.parent_exe = Some("/usr/sbin/nginx".into());
        assert_eq!(
            subject(&e),
            "exec /tmp/x --port <num>\nlineage /usr/sbin/nginx -> /tmp/x"
        );
        let setuid = event(EventDetail::Setuid {
            call: "setresuid".into(),
            ids: vec![Some(0), None, Some(0)],
        });
        assert_eq!(
            subject(&setuid),
            "setuid setresuid(0, -, 0) by /usr/sbin/nginx"
        );
    }
}
