//! Event builders for unit tests: an nginx workload (`/usr/sbin/nginx`, uid 33, parent
//! systemd) unless a test changes a field.

use profiles::{Access, Endpoint, Event, EventDetail, Family, Protocol, SCHEMA_VERSION, Workload};

/// An event of the nginx test workload with `detail`.
pub(crate) fn event(detail: EventDetail) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        ts_ns: 1_795_000_000_000_000_000,
        workload: Workload {
            id: "/system.slice/nginx.service".into(),
            cgroup_id: 42,
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
        uid: 33,
        gid: 33,
        comm: "nginx".into(),
        exe: Some("/usr/sbin/nginx".into()),
        parent_exe: Some("/usr/lib/systemd/systemd".into()),
        existing: false,
        blocked: false,
        detail,
    }
}

/// An exec of `filename` with `argv`, started by `parent` (unknown when `None`); `exe` and
/// `comm` are the new program's.
pub(crate) fn exec(filename: &str, argv: &[&str], parent: Option<&str>) -> Event {
    let mut e = event(EventDetail::Exec {
        filename: filename.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        argv_truncated: false,
        argv_unknown: false,
    });
    e.exe = Some(filename.into());
    e.comm = filename
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    e.parent_exe = parent.map(String::from);
    e
}

/// An open of `path` by nginx.
pub(crate) fn open(path: &str, access: Access) -> Event {
    let flags = match access {
        Access::Read => 0,
        Access::Write => 0o1,
        Access::Create => 0o101,
    };
    event(EventDetail::Open {
        path: path.into(),
        flags,
        access,
        path_truncated: false,
    })
}

/// A TCP connect by nginx to `addr:port`.
pub(crate) fn connect(addr: &str, port: u16) -> Event {
    let family = if addr.contains(':') {
        Family::Inet6
    } else {
        Family::Inet
    };
    event(EventDetail::Connect {
        dest: Endpoint {
            family,
            protocol: Protocol::Tcp,
            addr: addr.into(),
            port,
        },
    })
}

/// The same event by another process of the workload.
pub(crate) fn by(mut e: Event, exe: &str, uid: u32) -> Event {
    e.exe = Some(exe.into());
    e.comm = exe
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    e.uid = uid;
    e.gid = uid;
    e
}
