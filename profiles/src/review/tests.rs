//! The review queue against a real sled store in a temporary directory.

use super::*;
use crate::store::temp::TempDir;
use crate::{
    event::{Endpoint, EventDetail, SCHEMA_VERSION, Workload},
    model::event_entries,
};

const WEB: &str = "/system.slice/web.service";
const DB: &str = "/system.slice/db.service";

fn event(workload: &str, ts_ns: u64, pid: u32, detail: EventDetail) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        ts_ns,
        workload: Workload {
            id: workload.into(),
            cgroup_id: 7,
            cgroup: workload.into(),
            runtime: None,
            container_id: None,
            pod_uid: None,
            unit: None,
            k8s: None,
        },
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        gid: 0,
        comm: "app".into(),
        exe: None,
        parent_exe: None,
        existing: false,
        blocked: false,
        detail,
    }
}

fn exec(workload: &str, ts_ns: u64, pid: u32, argv: &[&str]) -> Event {
    let detail = EventDetail::Exec {
        filename: argv[0].into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        argv_truncated: false,
        argv_unknown: false,
    };
    event(workload, ts_ns, pid, detail)
}

fn open(workload: &str, ts_ns: u64, pid: u32, path: &str) -> Event {
    let detail = EventDetail::Open {
        path: path.into(),
        flags: 0,
        access: Access::Read,
        path_truncated: false,
    };
    event(workload, ts_ns, pid, detail)
}

fn connect(workload: &str, ts_ns: u64, addr: &str, port: u16) -> Event {
    let dest = Endpoint {
        family: if addr.contains(':') {
            Family::Inet6
        } else {
            Family::Inet
        },
        protocol: Protocol::Tcp,
        addr: addr.into(),
        port,
    };
    event(workload, ts_ns, 42, EventDetail::Connect { dest })
}

/// The (first) entry an event records: what the scorer reports as the deviation.
fn entry(e: &Event) -> DiffEntry {
    event_entries(e).remove(0)
}

/// Observes `e` directly (no buffer) with an optional alert key.
fn seen(store: &Store, e: &Event, alert: Option<&str>) -> Proposal {
    let w = e.workload.id.clone();
    observe(store, &w, &entry(e), e, alert).unwrap()
}

fn is_invalid_pattern(r: &Result<Approval, ReviewError>) -> bool {
    matches!(r, Err(ReviewError::InvalidPattern { .. }))
}

#[test]
fn observe_dedupes_by_generalised_entry() {
    let dir = TempDir::new("dedupe");
    let store = dir.open();
    // Different pids, times (out of order) and the number in the name: one generalised entry.
    let events = [
        open(WEB, 500, 10, "/srv/cache/1001.tmp"),
        open(WEB, 200, 11, "/srv/cache/1002.tmp"),
        open(WEB, 900, 12, "/srv/cache/1003.tmp"),
        open(WEB, 700, 13, "/srv/cache/1004.tmp"),
        open(WEB, 600, 14, "/srv/cache/1005.tmp"),
    ];
    assert!(events.iter().all(|e| entry(e) == entry(&events[0])));
    let alerts = [Some("a1"), Some("a1"), None, Some("a2"), Some("a1")];
    for (e, a) in events.iter().zip(alerts) {
        seen(&store, e, a);
    }
    let all = list(&store, None, None).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let p = &all[0];
    assert_eq!(p.id, proposal_id(WEB, &entry(&events[0])));
    assert_eq!(p.id.len(), 16);
    assert!(p.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(p.entry.to_string(), "file /srv/cache/<num>.tmp (read)");
    assert_eq!((p.count, p.first_ns, p.last_ns), (5, 200, 900));
    assert_eq!(p.state, State::Pending);
    assert_eq!(p.decision, None);
    // The first three events are the examples, in arrival order.
    let pids: Vec<u32> = p.examples.iter().map(|e| e.pid).collect();
    assert_eq!(pids, [10, 11, 12]);
    assert_eq!(p.examples[0], events[0]);
    assert_eq!(p.alerts, ["a1", "a2"]);
    assert_eq!(&get(&store, &p.id).unwrap(), p);

    // Alert keys are bounded too.
    for i in 0..40 {
        seen(&store, &events[0], Some(&format!("k{i}")));
    }
    let p = get(&store, &p.id).unwrap();
    assert_eq!(p.alerts.len(), MAX_ALERTS);
    assert_eq!(&p.alerts[..3], ["a1", "a2", "k0"]);
    assert_eq!((p.count, p.examples.len()), (45, MAX_EXAMPLES));
}

#[test]
fn workloads_and_entries_get_their_own_proposals() {
    let dir = TempDir::new("separate");
    let store = dir.open();
    let a = seen(&store, &open(WEB, 1, 1, "/etc/shadow"), None);
    let b = seen(&store, &open(DB, 2, 1, "/etc/shadow"), None);
    let c = seen(&store, &open(WEB, 3, 1, "/etc/gshadow"), None);
    assert_eq!(a.entry, b.entry);
    assert_ne!(a.id, b.id);
    assert_ne!(a.id, c.id);
    assert_eq!(list(&store, None, None).unwrap().len(), 3);
    let web: Vec<String> = list(&store, Some(WEB), None)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        web,
        [c.id.clone(), a.id.clone()],
        "most recently seen first"
    );
    assert_eq!(list(&store, Some(DB), None).unwrap(), [b]);
    assert!(list(&store, Some("/nope"), None).unwrap().is_empty());
    // A workload that cannot be a key is refused.
    let e = open("", 1, 1, "/x");
    let err = observe(&store, "", &entry(&e), &e, None).unwrap_err();
    assert_eq!(err.to_string(), "invalid workload: is empty");
}

#[test]
fn approving_the_exact_entry_covers_it() {
    let dir = TempDir::new("exact");
    let store = dir.open();
    let e = exec(WEB, 100, 9, &["/usr/bin/curl", "-s", "http://x"]);
    let p = seen(&store, &e, Some("alert-1"));
    let mut profile = Profile::default();
    assert!(!profile.covers(&e));

    let a = approve(
        &store,
        &p.id,
        "alice",
        "needed for health checks",
        None,
        1_000,
    )
    .unwrap();
    assert_eq!(a.entry, p.entry);
    assert_eq!(a.exact, p.entry);
    assert_eq!(
        (a.proposal_id.as_str(), a.workload.as_str()),
        (p.id.as_str(), WEB)
    );
    assert_eq!((a.reviewer.as_str(), a.at_ns), ("alice", 1_000));
    assert_eq!(a.comment, "needed for health checks");
    assert!(a.apply(&mut profile));
    assert!(profile.covers_entry(&p.entry));
    assert!(profile.covers(&e));
    assert_eq!(profile.execs.values().next(), Some(&Seen::at(1_000)));
    assert!(!a.apply(&mut profile), "applying twice changes nothing");
    assert_eq!(profile.len(), 1);

    let p = get(&store, &p.id).unwrap();
    assert_eq!(p.state, State::Approved);
    let d = p.decision.unwrap();
    assert_eq!((d.reviewer.as_str(), d.at_ns), ("alice", 1_000));
    assert_eq!(d.comment, "needed for health checks");
    assert_eq!(d.approved_as, Some(a.entry.clone()));
    assert_eq!(
        approvals(&store, Some(WEB)).unwrap(),
        std::slice::from_ref(&a)
    );
    assert_eq!(approvals(&store, None).unwrap(), [a]);
    assert!(approvals(&store, Some(DB)).unwrap().is_empty());
}

#[test]
fn approving_a_directory_glob_covers_siblings() {
    let dir = TempDir::new("glob");
    let store = dir.open();
    let tool = exec(WEB, 1, 1, &["/opt/app/bin/tool", "-x"]);
    let p = seen(&store, &tool, None);
    let a = approve(&store, &p.id, "bob", "app tools", Some("/opt/app/bin/*"), 5).unwrap();
    let any = Some(vec![ANY_ARGS.to_string()]);
    let want = DiffEntry::Exec(ExecEntry {
        path: "/opt/app/bin/*".into(),
        args: any,
    });
    assert_eq!(
        a.entry, want,
        "a path-only exec pattern allows any arguments"
    );
    assert_eq!(a.entry.to_string(), "exec /opt/app/bin/* <any>");
    let mut profile = Profile::default();
    a.apply(&mut profile);
    assert!(profile.covers(&tool));
    assert!(profile.covers(&exec(WEB, 2, 2, &["/opt/app/bin/other", "--y", "1"])));
    assert!(!profile.covers(&exec(WEB, 2, 2, &["/opt/app/sbin/other"])));
    assert!(!profile.covers(&exec(WEB, 2, 2, &["/opt/app/bin/sub/deeper"])));

    // `**` covers anything below, with the access class of the entry.
    let data = open(WEB, 3, 1, "/opt/app/data/a/b.json");
    let p = seen(&store, &data, None);
    let a = approve(&store, &p.id, "bob", "", Some("file /opt/app/** (read)"), 6).unwrap();
    assert_eq!(a.entry.to_string(), "file /opt/app/** (read)");
    let mut profile = Profile::default();
    a.apply(&mut profile);
    assert!(profile.covers(&data));
    assert!(profile.covers(&open(WEB, 4, 1, "/opt/app/x/y/z")));
    assert!(!profile.covers(&open(WEB, 4, 1, "/opt/other")));
}

#[test]
fn approving_a_cidr_covers_the_address() {
    let dir = TempDir::new("cidr");
    let store = dir.open();
    let e = connect(WEB, 1, "10.1.2.3", 443);
    let p = seen(&store, &e, None);
    // Host bits are cleared; the port and protocol are kept.
    let a = approve(&store, &p.id, "carol", "internal", Some("10.1.2.3/8"), 9).unwrap();
    assert_eq!(a.entry.to_string(), "connect tcp 10.0.0.0/8:443");
    let mut profile = Profile::default();
    a.apply(&mut profile);
    assert!(profile.covers(&e));
    assert!(profile.covers(&connect(WEB, 2, "10.200.0.1", 443)));
    assert!(!profile.covers(&connect(WEB, 2, "10.200.0.1", 80)));
    assert!(!profile.covers(&connect(WEB, 2, "11.0.0.1", 443)));

    // Port 0 (or *) is any port; IPv6 in brackets.
    let e6 = connect(WEB, 3, "fd00::1", 8080);
    let p6 = seen(&store, &e6, None);
    let a6 = approve(&store, &p6.id, "carol", "", Some("tcp [fd00::/8]:*"), 10).unwrap();
    assert_eq!(a6.entry.to_string(), "connect tcp [fd00::/8]:0");
    let mut profile = Profile::default();
    a6.apply(&mut profile);
    assert!(profile.covers(&e6));
    assert!(profile.covers(&connect(WEB, 4, "fd12::9", 22)));
}

#[test]
fn a_pattern_that_does_not_cover_the_entry_changes_nothing() {
    let dir = TempDir::new("nocover");
    let store = dir.open();
    let p = seen(&store, &exec(WEB, 1, 1, &["/opt/app/bin/tool"]), None);
    let r = approve(&store, &p.id, "dave", "", Some("/opt/other/*"), 5);
    let msg = r.as_ref().unwrap_err().to_string();
    assert!(is_invalid_pattern(&r), "{r:?}");
    assert_eq!(
        msg,
        "invalid pattern \"/opt/other/*\": \"exec /opt/other/* <any>\" does not cover the \
         proposed entry \"exec /opt/app/bin/tool\""
    );
    assert_eq!(get(&store, &p.id).unwrap(), p, "still pending, unchanged");
    assert!(approvals(&store, None).unwrap().is_empty());
    assert!(
        store
            .all_json::<Approval>(APPROVALS_TREE)
            .unwrap()
            .is_empty()
    );
    // An empty reviewer changes nothing either.
    let r = approve(&store, &p.id, " ", "", None, 5).unwrap_err();
    assert_eq!(r.to_string(), "invalid reviewer: is empty");
    let r = reject(&store, &p.id, "", "", 5).unwrap_err();
    assert!(matches!(
        r,
        ReviewError::Invalid {
            what: "reviewer",
            ..
        }
    ));
    assert_eq!(get(&store, &p.id).unwrap(), p);
}

#[test]
fn nonsense_patterns_are_rejected_with_a_reason() {
    let tool = entry(&exec(WEB, 1, 1, &["/opt/app/bin/tool", "-v"]));
    let file = entry(&open(WEB, 1, 1, "/etc/app.conf"));
    let net = entry(&connect(WEB, 1, "10.1.2.3", 443));
    let sock = DiffEntry::Connect(NetEntry {
        family: Family::Unix,
        protocol: Protocol::Stream,
        addr: "/run/app.sock".into(),
        port: 0,
    });
    // entry | pattern | part of the reason
    let cases: [(&DiffEntry, &str, &str); 17] = [
        (&tool, "", "empty"),
        (&tool, "   ", "empty"),
        (&tool, "opt/app/bin/*", "is relative but the entry's path"),
        (
            &tool,
            "file /opt/app/**",
            "a file pattern cannot approve the exec entry \"exec /opt/app/bin/tool -v\"",
        ),
        (&tool, "exec", "nothing follows"),
        (&tool, "'/opt/app", "unterminated quote"),
        (&tool, "/opt/app/bin/* -q", "does not cover"),
        (&file, "/etc/* (write)", "does not cover"),
        (&file, "/etc/* (exec)", "unknown access class"),
        (&file, "/etc/my app.conf", "quote paths with spaces"),
        (
            &net,
            "10.0.0.0/33",
            "prefix /33 of \"10.0.0.0/33\" is out of range for IPv4",
        ),
        (&net, "10.0.0.0/x", "invalid prefix length"),
        (&net, "300.1.1.1", "is not an IP address or CIDR"),
        (&net, "10.0.0.0/8:99999", "is not a port"),
        (
            &net,
            "fd00::/8",
            "is an IPv6 address but the entry's is IPv4",
        ),
        (&net, "udp 10.0.0.0/8", "does not cover"),
        (&sock, "unix:run/*", "is relative"),
    ];
    for (exact, pattern, needle) in cases {
        match parse_pattern(exact, pattern) {
            Err(e @ ReviewError::InvalidPattern { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{pattern:?}: {msg}");
            }
            other => panic!("{pattern:?} for {exact}: {other:?}"),
        }
    }
    let brackets = parse_pattern(&net, "[10.0.0.0/8]:443").unwrap_err();
    assert!(
        brackets.to_string().contains("brackets are for IPv6"),
        "{brackets}"
    );
}

#[test]
fn patterns_parse_in_rendered_and_short_forms() {
    let curl = entry(&exec(WEB, 1, 1, &["/usr/bin/curl", "-s", "it's here"]));
    let mut with_parent = exec(WEB, 1, 1, &["/opt/app/bin/job"]);
    with_parent.parent_exe = Some("/bin/sh".into());
    let lineage = event_entries(&with_parent).remove(1);
    let file = entry(&open(WEB, 1, 1, "/opt/my app/data.db"));
    let listen = DiffEntry::Listen(NetEntry {
        family: Family::Inet6,
        protocol: Protocol::Udp,
        addr: "fd00::5".into(),
        port: 53,
    });
    let sock = DiffEntry::Connect(NetEntry {
        family: Family::Unix,
        protocol: Protocol::Stream,
        addr: "/run/app/db.sock".into(),
        port: 0,
    });
    // Every entry's rendering gives the entry back.
    for e in [&curl, &lineage, &file, &listen, &sock] {
        assert_eq!(&parse_pattern(e, &e.to_string()).unwrap(), e);
    }
    // exact | pattern | the pattern as rendered
    let cases: [(&DiffEntry, &str, &str); 11] = [
        (
            &curl,
            "exec /usr/bin/* -s 'it'\\''s here'",
            "exec /usr/bin/* -s 'it'\\''s here'",
        ),
        (&curl, "/usr/bin/curl <any>", "exec /usr/bin/curl <any>"),
        (&curl, "/usr/**", "exec /usr/** <any>"),
        (
            &lineage,
            "/bin/* -> /opt/app/**",
            "lineage /bin/* -> /opt/app/**",
        ),
        (
            &lineage,
            "lineage /bin/sh -> /opt/app/bin/*",
            "lineage /bin/sh -> /opt/app/bin/*",
        ),
        (&file, "'/opt/my app/*'", "file '/opt/my app/*' (read)"),
        (&file, "file /opt/** (read)", "file /opt/** (read)"),
        (
            &listen,
            "listen [fd00::/16]:53",
            "listen udp [fd00::/16]:53",
        ),
        (&listen, "fd00::/64", "listen udp [fd00::/64]:53"),
        (&listen, "udp [fd00::5]:0", "listen udp [fd00::5]:0"),
        (
            &sock,
            "stream unix:/run/app/*",
            "connect stream unix:/run/app/*",
        ),
    ];
    for (exact, pattern, rendered) in cases {
        let p = parse_pattern(exact, pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(p.to_string(), rendered, "{pattern}");
        assert!(p.covers(exact), "{pattern}");
        // The rendering of a pattern parses back to it.
        assert_eq!(parse_pattern(exact, rendered).unwrap(), p, "{rendered}");
    }
}

#[test]
fn rejected_proposals_stay_rejected_and_keep_counting() {
    let dir = TempDir::new("reject");
    let store = dir.open();
    let e = connect(WEB, 10, "203.0.113.9", 25);
    let p = seen(&store, &e, Some("al-1"));
    let r = reject(&store, &p.id, "erin", "no mail from the web tier", 50).unwrap();
    assert_eq!(r.state, State::Rejected);
    let d = r.decision.clone().unwrap();
    assert_eq!(
        (d.reviewer.as_str(), d.at_ns, d.approved_as),
        ("erin", 50, None)
    );
    assert_eq!(d.comment, "no mail from the web tier");
    let again = seen(&store, &connect(WEB, 99, "203.0.113.9", 25), Some("al-2"));
    assert_eq!(again.state, State::Rejected);
    assert_eq!((again.count, again.last_ns), (2, 99));
    assert_eq!(again.alerts, ["al-1", "al-2"]);
    assert_eq!(again.decision, r.decision);
    assert!(approvals(&store, None).unwrap().is_empty());
}

#[test]
fn decisions_are_final_and_unknown_ids_are_not_found() {
    let dir = TempDir::new("final");
    let store = dir.open();
    let a = seen(&store, &open(WEB, 1, 1, "/etc/a"), None);
    let b = seen(&store, &open(WEB, 1, 1, "/etc/b"), None);
    approve(&store, &a.id, "frank", "", None, 5).unwrap();
    reject(&store, &b.id, "frank", "", 5).unwrap();
    let twice = approve(&store, &a.id, "gina", "", None, 6).unwrap_err();
    assert!(
        matches!(
            &twice,
            ReviewError::AlreadyDecided {
                state: State::Approved,
                ..
            }
        ),
        "{twice:?}"
    );
    assert_eq!(
        twice.to_string(),
        format!("review proposal {} was already approved", a.id)
    );
    let r = reject(&store, &a.id, "gina", "", 6).unwrap_err();
    assert!(matches!(
        r,
        ReviewError::AlreadyDecided {
            state: State::Approved,
            ..
        }
    ));
    let r = approve(&store, &b.id, "gina", "", Some("/etc/*"), 6).unwrap_err();
    assert!(matches!(
        r,
        ReviewError::AlreadyDecided {
            state: State::Rejected,
            ..
        }
    ));
    // The first decisions stand, and only one approval exists.
    assert_eq!(
        get(&store, &a.id).unwrap().decision.unwrap().reviewer,
        "frank"
    );
    assert_eq!(
        get(&store, &b.id).unwrap().decision.unwrap().reviewer,
        "frank"
    );
    assert_eq!(approvals(&store, None).unwrap().len(), 1);

    for r in [
        get(&store, "0123456789abcdef").map(|_| ()),
        approve(&store, "0123456789abcdef", "x", "", None, 1).map(|_| ()),
        reject(&store, "nope", "x", "", 1).map(|_| ()),
    ] {
        assert!(matches!(r, Err(ReviewError::NotFound { .. })), "{r:?}");
    }
    let msg = get(&store, "nope").unwrap_err().to_string();
    assert_eq!(msg, "no review proposal \"nope\"");
}

#[test]
fn list_filters_by_workload_and_state() {
    let dir = TempDir::new("list");
    let store = dir.open();
    let w1 = seen(&store, &open(WEB, 10, 1, "/etc/one"), None);
    let w2 = seen(&store, &open(WEB, 30, 1, "/etc/two"), None);
    let w3 = seen(&store, &open(WEB, 20, 1, "/etc/three"), None);
    let d1 = seen(&store, &open(DB, 40, 1, "/etc/one"), None);
    approve(&store, &w1.id, "h", "", None, 50).unwrap();
    reject(&store, &d1.id, "h", "", 50).unwrap();
    let ids = |v: Vec<Proposal>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    // Pending first (latest first), then approved, then rejected.
    assert_eq!(
        ids(list(&store, None, None).unwrap()),
        [&*w2.id, &w3.id, &w1.id, &d1.id]
    );
    let pending = list(&store, Some(WEB), Some(State::Pending)).unwrap();
    assert_eq!(ids(pending), [&*w2.id, &w3.id]);
    assert_eq!(
        ids(list(&store, None, Some(State::Approved)).unwrap()),
        [w1.id.as_str()]
    );
    assert_eq!(
        ids(list(&store, None, Some(State::Rejected)).unwrap()),
        [d1.id.as_str()]
    );
    assert!(
        list(&store, Some(DB), Some(State::Pending))
            .unwrap()
            .is_empty()
    );

    for s in [State::Pending, State::Approved, State::Rejected] {
        assert_eq!(s.as_str().parse::<State>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
    }
    let bad = "Pending".parse::<State>().unwrap_err().to_string();
    assert_eq!(
        bad,
        "invalid state: \"Pending\" is not pending, approved or rejected"
    );
}

#[test]
fn everything_survives_reopening() {
    let dir = TempDir::new("reopen");
    let e = exec(WEB, 7, 3, &["/opt/app/bin/tool", "--sync"]);
    let (p, a, r) = {
        let store = dir.open();
        let p = seen(&store, &e, Some("k"));
        let q = seen(&store, &open(WEB, 8, 3, "/tmp/x"), None);
        let a = approve(&store, &p.id, "ivy", "ok", Some("/opt/app/**"), 100).unwrap();
        let r = reject(&store, &q.id, "ivy", "no", 101).unwrap();
        store.flush().unwrap();
        (get(&store, &p.id).unwrap(), a, r)
    };
    let store = dir.open();
    assert_eq!(get(&store, &p.id).unwrap(), p);
    assert_eq!(get(&store, &r.id).unwrap(), r);
    assert_eq!(p.examples, std::slice::from_ref(&e));
    assert_eq!(
        approvals(&store, Some(WEB)).unwrap(),
        std::slice::from_ref(&a)
    );
    let mut profile = Profile::default();
    a.apply(&mut profile);
    assert!(profile.covers(&e));
}

#[test]
fn approvals_are_listed_in_time_order_and_only_when_committed() {
    let dir = TempDir::new("order");
    let store = dir.open();
    let later = seen(&store, &open(WEB, 1, 1, "/etc/later"), None);
    let earlier = seen(&store, &open(WEB, 1, 1, "/etc/earlier"), None);
    let orphaned = seen(&store, &open(WEB, 1, 1, "/etc/orphaned"), None);
    approve(&store, &later.id, "j", "", None, 2_000).unwrap();
    approve(&store, &earlier.id, "j", "", None, 1_000).unwrap();
    // A crash after writing the approval record but before the proposal: not in effect.
    let orphan = Approval {
        proposal_id: orphaned.id.clone(),
        workload: WEB.into(),
        entry: orphaned.entry.clone(),
        exact: orphaned.entry.clone(),
        reviewer: "j".into(),
        at_ns: 1_500,
        comment: String::new(),
    };
    store
        .put_json(APPROVALS_TREE, &orphan.key(), &orphan)
        .unwrap();
    let got: Vec<String> = approvals(&store, Some(WEB))
        .unwrap()
        .into_iter()
        .map(|a| a.proposal_id)
        .collect();
    assert_eq!(got, [earlier.id, later.id]);
    // Approving it for real later supersedes the orphan.
    approve(&store, &orphaned.id, "k", "", None, 3_000).unwrap();
    let last = approvals(&store, Some(WEB)).unwrap().pop().unwrap();
    assert_eq!(
        (last.proposal_id, last.reviewer, last.at_ns),
        (orphaned.id, "k".into(), 3_000)
    );
    assert_eq!(approvals(&store, Some(WEB)).unwrap().len(), 3);
}

#[test]
fn the_buffer_counts_repeats_without_writing() {
    let dir = TempDir::new("buffer");
    let store = dir.open();
    let mut buf = ReviewBuffer::new();
    let ev = |ts: u64| open(WEB, ts, ts as u32, "/var/lib/app/state");
    let e = entry(&ev(0));
    let first = buf.observe(&store, WEB, &e, &ev(100), Some("a1")).unwrap();
    assert!(first.new && first.written);
    assert_eq!(first.id, proposal_id(WEB, &e));
    // The second and third sightings add examples: written through.
    for ts in [110, 120] {
        let o = buf.observe(&store, WEB, &e, &ev(ts), Some("a1")).unwrap();
        assert!(!o.new && o.written, "{o:?}");
    }
    // Then repeats are only counted.
    for ts in 130..140 {
        let o = buf.observe(&store, WEB, &e, &ev(ts), Some("a1")).unwrap();
        assert!(!o.written, "{ts}");
    }
    assert_eq!(buf.unwritten(), 1);
    assert_eq!(buf.len(), 1);
    let stored = get(&store, &first.id).unwrap();
    assert_eq!((stored.count, stored.last_ns), (3, 120));
    // A new alert key is written through, with the counts gathered so far.
    let o = buf.observe(&store, WEB, &e, &ev(140), Some("a2")).unwrap();
    assert!(o.written);
    assert_eq!(buf.unwritten(), 0);
    let stored = get(&store, &first.id).unwrap();
    assert_eq!(
        (stored.count, stored.first_ns, stored.last_ns),
        (14, 100, 140)
    );
    assert_eq!(stored.alerts, ["a1", "a2"]);
    assert_eq!(stored.examples.len(), MAX_EXAMPLES);

    for ts in 150..155 {
        buf.observe(&store, WEB, &e, &ev(ts), Some("a2")).unwrap();
    }
    assert_eq!(get(&store, &first.id).unwrap().count, 14);
    // A decision made meanwhile is kept by the flush.
    reject(&store, &first.id, "kim", "", 151).unwrap();
    assert_eq!(buf.flush(&store).unwrap(), 1);
    assert_eq!(buf.flush(&store).unwrap(), 0, "nothing left");
    let stored = get(&store, &first.id).unwrap();
    assert_eq!((stored.count, stored.last_ns), (19, 154));
    assert_eq!(stored.state, State::Rejected);
    assert_eq!(stored.decision.unwrap().reviewer, "kim");

    // Flushed counts survive reopening.
    store.flush().unwrap();
    drop(store);
    let store = dir.open();
    assert_eq!(get(&store, &first.id).unwrap().count, 19);
}

#[test]
fn a_full_buffer_flushes_and_starts_over() {
    let dir = TempDir::new("capacity");
    let store = dir.open();
    let mut buf = ReviewBuffer::with_capacity(2);
    let paths = ["/etc/p1", "/etc/p2", "/etc/p3"];
    let mut ids = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let e = open(WEB, 1, 1, path);
        for ts in 0..6 {
            let o = buf.observe(&store, WEB, &entry(&e), &open(WEB, ts, 1, path), None);
            ids.extend(o.unwrap().new.then(|| (i, proposal_id(WEB, &entry(&e)))));
        }
    }
    assert_eq!(ids.len(), 3);
    assert!(buf.len() <= 2, "{}", buf.len());
    // The first two were flushed when the third came; the third is flushed now.
    assert_eq!(get(&store, &ids[0].1).unwrap().count, 6);
    assert_eq!(get(&store, &ids[1].1).unwrap().count, 6);
    assert_eq!(get(&store, &ids[2].1).unwrap().count, 3);
    buf.flush(&store).unwrap();
    assert_eq!(get(&store, &ids[2].1).unwrap().count, 6);
    assert!(!buf.is_empty());
}
