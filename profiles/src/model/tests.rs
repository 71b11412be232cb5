//! Recording and merging profiles.

use proptest::prelude::*;

use super::*;
use crate::event::{SCHEMA_VERSION, Workload};

fn event(ts_ns: u64, detail: EventDetail) -> Event {
    event_with_parent(ts_ns, Some("/usr/bin/bash"), detail)
}

/// An event of the test workload `/system.slice/app.service` (pid 100, `/usr/bin/app`).
pub(crate) fn event_with_parent(
    ts_ns: u64,
    parent_exe: Option<&str>,
    detail: EventDetail,
) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        ts_ns,
        workload: Workload {
            id: "/system.slice/app.service".into(),
            cgroup_id: 7,
            cgroup: "/system.slice/app.service".into(),
            runtime: None,
            container_id: None,
            pod_uid: None,
            unit: Some("app.service".into()),
            k8s: None,
        },
        pid: 100,
        tid: 100,
        ppid: 1,
        uid: 0,
        gid: 0,
        comm: "app".into(),
        exe: Some("/usr/bin/app".into()),
        parent_exe: parent_exe.map(String::from),
        existing: false,
        blocked: false,
        detail,
    }
}

/// The five entry maps of a profile, in field order.
pub(crate) type EntryMaps = (
    BTreeMap<ExecEntry, Seen>,
    BTreeMap<LineageEntry, Seen>,
    BTreeMap<FileEntry, Seen>,
    BTreeMap<NetEntry, Seen>,
    BTreeMap<NetEntry, Seen>,
);

/// The profile of its entry maps, for `prop_map` over a tuple of map strategies.
pub(crate) fn profile_of((execs, lineage, files, connects, listens): EntryMaps) -> Profile {
    Profile {
        execs,
        lineage,
        files,
        connects,
        listens,
    }
}

fn exec(path: &str, argv: &[&str]) -> EventDetail {
    EventDetail::Exec {
        filename: path.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        argv_truncated: false,
        argv_unknown: false,
    }
}

fn open(path: &str, access: Access) -> EventDetail {
    EventDetail::Open {
        path: path.into(),
        flags: 0,
        access,
        path_truncated: false,
    }
}

fn ep(protocol: Protocol, addr: &str, port: u16) -> Endpoint {
    Endpoint {
        family: Family::Inet,
        protocol,
        addr: addr.into(),
        port,
    }
}

#[test]
fn records_execs_lineage_files_and_network() {
    let mut p = Profile::default();
    assert_eq!(
        p.record(&event(
            10,
            exec("/usr/bin/curl", &["curl", "-s", "http://127.0.0.1:8080/"])
        )),
        vec![EntryKind::Exec, EntryKind::Lineage]
    );
    assert_eq!(
        p.record(&event(
            20,
            exec("/usr/bin/curl", &["curl", "-s", "http://127.0.0.1:8080/"])
        )),
        vec![]
    );
    assert_eq!(
        p.record(&event(30, open("/proc/4242/status", Access::Read))),
        vec![EntryKind::File]
    );
    assert_eq!(
        p.record(&event(40, open("/proc/777/status", Access::Read))),
        vec![],
        "same pattern /proc/*/status"
    );
    assert_eq!(
        p.record(&event(
            50,
            EventDetail::Connect {
                dest: ep(Protocol::Tcp, "127.0.0.1", 5432)
            }
        )),
        vec![EntryKind::Connect]
    );
    assert_eq!(
        p.record(&event(
            60,
            EventDetail::Listen {
                local: Some(ep(Protocol::Tcp, "0.0.0.0", 8080))
            }
        )),
        vec![EntryKind::Listen]
    );
    // A TCP bind is recorded through its listen; a port-0 bind is an ephemeral port: no entry.
    assert_eq!(
        p.record(&event(
            70,
            EventDetail::Bind {
                local: ep(Protocol::Tcp, "0.0.0.0", 8080)
            }
        )),
        vec![]
    );
    assert_eq!(
        p.record(&event(
            75,
            EventDetail::Bind {
                local: ep(Protocol::Udp, "0.0.0.0", 0)
            }
        )),
        vec![]
    );
    assert_eq!(
        p.record(&event(
            80,
            EventDetail::Bind {
                local: ep(Protocol::Udp, "0.0.0.0", 53)
            }
        )),
        vec![EntryKind::Listen]
    );
    assert_eq!(
        p.record(&event(
            90,
            EventDetail::Ptrace {
                request: 16,
                request_name: "PTRACE_ATTACH".into(),
                target_pid: 1
            }
        )),
        vec![]
    );

    assert_eq!(p.len(), 6);
    let (entry, seen) = p.execs.iter().next().unwrap();
    assert_eq!(entry.path, "/usr/bin/curl");
    assert_eq!(
        *seen,
        Seen {
            count: 2,
            first_ns: 10,
            last_ns: 20
        }
    );
    let lineage = p.lineage.keys().next().unwrap();
    assert_eq!(
        (lineage.parent.as_str(), lineage.child.as_str()),
        ("/usr/bin/bash", "/usr/bin/curl")
    );
    let (file, seen) = p.files.iter().next().unwrap();
    assert_eq!(file.path, "/proc/*/status");
    assert_eq!(seen.count, 2);
}

#[test]
fn an_exec_with_unknown_arguments_is_its_own_entry() {
    let mut p = Profile::default();
    p.record(&event(1, exec("/bin/true", &["/bin/true"])));
    p.record(&event(
        2,
        EventDetail::Exec {
            filename: "/bin/true".into(),
            argv: vec![],
            argv_truncated: false,
            argv_unknown: true,
        },
    ));
    let args: Vec<_> = p.execs.keys().map(|k| k.args.clone()).collect();
    assert_eq!(args, vec![None, Some(vec![])]);
}

fn arb_seen() -> impl Strategy<Value = Seen> {
    (1u64..5, 0u64..1000, 0u64..1000).prop_map(|(count, a, b)| Seen {
        count,
        first_ns: a.min(b),
        last_ns: a.max(b),
    })
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    let name = prop::sample::select(vec![
        "/bin/sh",
        "/usr/bin/curl",
        "/etc/hosts",
        "/tmp/<tmp>",
        "/proc/*/status",
    ]);
    let access = prop::sample::select(vec![Access::Read, Access::Write, Access::Create]);
    let port = prop::sample::select(vec![53u16, 80, 443, 5432]);
    (
        prop::collection::btree_map(
            (name.clone(), prop::option::of(Just(vec!["-c".to_string()]))).prop_map(|(p, args)| {
                ExecEntry {
                    path: p.into(),
                    args,
                }
            }),
            arb_seen(),
            0..4,
        ),
        prop::collection::btree_map(
            (name.clone(), name.clone()).prop_map(|(a, b)| LineageEntry {
                parent: a.into(),
                child: b.into(),
            }),
            arb_seen(),
            0..3,
        ),
        prop::collection::btree_map(
            (name, access).prop_map(|(p, access)| FileEntry {
                path: p.into(),
                access,
            }),
            arb_seen(),
            0..4,
        ),
        prop::collection::btree_map(
            port.clone().prop_map(|port| NetEntry {
                family: Family::Inet,
                protocol: Protocol::Tcp,
                addr: "127.0.0.1".into(),
                port,
            }),
            arb_seen(),
            0..3,
        ),
        prop::collection::btree_map(
            port.prop_map(|port| NetEntry {
                family: Family::Inet6,
                protocol: Protocol::Udp,
                addr: "::".into(),
                port,
            }),
            arb_seen(),
            0..3,
        ),
    )
        .prop_map(profile_of)
}

fn merged(a: &Profile, b: &Profile) -> Profile {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #[test]
    fn merge_is_commutative(a in arb_profile(), b in arb_profile()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in arb_profile(), b in arb_profile(), c in arb_profile()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn json_round_trip_keeps_the_profile(a in arb_profile()) {
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), a);
    }

    #[test]
    fn merge_with_empty_changes_nothing(a in arb_profile()) {
        prop_assert_eq!(merged(&a, &Profile::default()), a.clone());
        prop_assert_eq!(merged(&Profile::default(), &a), a);
    }

    #[test]
    fn merged_counts_add_up(a in arb_profile(), b in arb_profile()) {
        let m = merged(&a, &b);
        let total = |p: &Profile| p.execs.values().chain(p.files.values()).map(|s| s.count).sum::<u64>();
        prop_assert_eq!(total(&m), total(&a) + total(&b));
        prop_assert!(m.len() >= a.len().max(b.len()) && m.len() <= a.len() + b.len());
    }
}
