//! A synthetic web workload for the hot-path test and the bench: a learned profile and a
//! replay stream of its covered events (opens, execs with arguments, connects).

use profiles::{
    Access, Endpoint, Event, EventDetail, Family, Protocol, SCHEMA_VERSION, Workload,
    model::Profile,
};

fn base(ts_ns: u64, detail: EventDetail) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        ts_ns,
        workload: Workload {
            id: "/kubepods/web".into(),
            cgroup_id: 1,
            cgroup: "/kubepods/web".into(),
            runtime: None,
            container_id: None,
            pod_uid: None,
            unit: None,
            k8s: None,
        },
        pid: 100,
        tid: 100,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: "web".into(),
        exe: Some("/usr/local/bin/web".into()),
        parent_exe: Some("/usr/local/bin/web".into()),
        existing: false,
        blocked: false,
        detail,
    }
}

/// Event `i` of the stream: 80% opens, 10% execs, 10% connects, over a few hundred entries.
pub fn event(i: u64) -> Event {
    match i % 10 {
        0 => base(
            i,
            EventDetail::Exec {
                filename: format!("/usr/bin/tool{}", i % 37),
                argv: vec![
                    format!("tool{}", i % 37),
                    "--config".into(),
                    "/etc/web/tool.yaml".into(),
                    "--verbose".into(),
                ],
                argv_truncated: false,
                argv_unknown: false,
            },
        ),
        1 => base(
            i,
            EventDetail::Connect {
                dest: Endpoint {
                    family: Family::Inet,
                    protocol: Protocol::Tcp,
                    addr: format!("10.0.{}.{}", i % 3, i % 7),
                    port: 5432,
                },
            },
        ),
        _ => base(
            i,
            EventDetail::Open {
                path: format!("/srv/web/static/assets/page{}.html", i % 300),
                flags: 0,
                access: Access::Read,
                path_truncated: false,
            },
        ),
    }
}

/// The profile learned from the first `n` events of the stream.
pub fn learned(n: u64) -> Profile {
    let mut p = Profile::default();
    for i in 0..n {
        p.record(&event(i));
    }
    p
}
