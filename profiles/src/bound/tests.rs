//! Widening to the size bound: each kind's strategy, the learning state, recording after
//! widening, and the guarantees (bounded, nothing dropped, counts kept, deterministic).

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::{
    diff::{DiffEntry, entries},
    event::{Access, Endpoint, EventDetail, Protocol},
    learning::Status,
    model::tests::{event_with_parent as event, profile_of},
};

fn open(ts_ns: u64, path: &str) -> Event {
    let detail = EventDetail::Open {
        path: path.into(),
        flags: 0,
        access: Access::Read,
        path_truncated: false,
    };
    event(ts_ns, None, detail)
}

fn connect(ts_ns: u64, family: Family, addr: &str, port: u16) -> Event {
    let protocol = if family == Family::Unix {
        Protocol::Stream
    } else {
        Protocol::Tcp
    };
    let dest = Endpoint {
        family,
        protocol,
        addr: addr.into(),
        port,
    };
    event(ts_ns, None, EventDetail::Connect { dest })
}

fn file(path: &str) -> FileEntry {
    FileEntry {
        path: path.into(),
        access: Access::Read,
    }
}

fn net(family: Family, addr: &str, port: u16) -> NetEntry {
    let protocol = if family == Family::Unix {
        Protocol::Stream
    } else {
        Protocol::Tcp
    };
    NetEntry {
        family,
        protocol,
        addr: addr.into(),
        port,
    }
}

fn exec(path: &str, args: Option<&[&str]>) -> ExecEntry {
    ExecEntry {
        path: path.into(),
        args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
    }
}

fn lineage(parent: &str, child: &str) -> LineageEntry {
    LineageEntry {
        parent: parent.into(),
        child: child.into(),
    }
}

/// A name without digits, so generalisation keeps it: `a`, `b`, ..., `z`, `ba`, ...
fn name(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.insert(0, (b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return format!("item-{s}");
        }
    }
}

fn keys<K: Clone>(m: &BTreeMap<K, Seen>) -> Vec<K> {
    m.keys().cloned().collect()
}

fn rendered(ws: &[Widening]) -> Vec<String> {
    ws.iter().map(|w| w.to_string()).collect()
}

#[test]
fn many_files_in_one_directory_collapse_and_stay_bounded() {
    let limits = Limits {
        max_entries: 10,
        max_dir_children: usize::MAX,
    };
    let mut sp = StoredProfile {
        profile: Profile::default(),
        learning: Learning::new(0),
    };
    let argv = vec!["app".to_string()];
    let detail = EventDetail::Exec {
        filename: "/usr/bin/app".into(),
        argv,
        argv_truncated: false,
        argv_unknown: false,
    };
    let start = sp.record_bounded(&event(1, Some("/usr/bin/bash"), detail), &limits);
    assert_eq!(start.new, [EntryKind::Exec, EntryKind::Lineage]);
    let mut widenings = Vec::new();
    for i in 0..50 {
        let out = sp.record_bounded(
            &open(10 + i, &format!("/var/cache/app/{}", name(i as usize))),
            &limits,
        );
        assert!(sp.profile.len() <= 10, "{i}: {}", sp.profile.len());
        if i >= 9 {
            assert!(out.new.is_empty(), "{i}: a covered file adds no entry");
        }
        widenings.extend(out.widenings);
    }
    let expected = "files: 9 read entries under /var/cache/app collapsed to /var/cache/app/*";
    assert_eq!(rendered(&widenings), [expected]);
    assert_eq!(widenings[0].removed, 8);
    assert_eq!(keys(&sp.profile.files), [file("/var/cache/app/*")]);
    let seen = sp.profile.files[&file("/var/cache/app/*")];
    assert_eq!((seen.count, seen.first_ns, seen.last_ns), (50, 10, 59));

    let reason = "size bound (10 entries) forced widening of files (once); \
                  latest: 9 read entries under /var/cache/app collapsed to /var/cache/app/*";
    assert_eq!(sp.learning.incomplete, [reason]);
    assert!(sp.learning.widened());
    let status = sp.learning.status(u64::MAX, Duration::from_secs(1));
    assert_eq!(status, Status::Incomplete);
    // A file elsewhere is new behaviour, recorded as itself.
    let out = sp.record_bounded(&open(99, "/etc/hosts"), &limits);
    assert_eq!(out.new, [EntryKind::File]);
    assert!(sp.profile.covers(&open(100, "/var/cache/app/other")));
    assert!(!sp.profile.covers(&open(100, "/var/cache/app/sub/other")));
}

#[test]
fn widening_is_counted_once_per_kind() {
    let limits = Limits {
        max_entries: 3,
        max_dir_children: usize::MAX,
    };
    let mut sp = StoredProfile {
        profile: Profile::default(),
        learning: Learning::new(0),
    };
    sp.learning.mark_incomplete("agent was down");
    for (i, dir) in ["/a", "/b", "/c"].iter().enumerate() {
        for f in ["x", "y", "z"] {
            sp.record_bounded(&open(i as u64, &format!("{dir}/{f}")), &limits);
        }
    }
    assert_eq!(
        keys(&sp.profile.files),
        [file("/a/*"), file("/b/*"), file("/c/*")]
    );
    let reason = "size bound (3 entries) forced widening of files (3 times); \
                  latest: 2 read entries under /c collapsed to /c/*";
    assert_eq!(sp.learning.incomplete, ["agent was down", reason]);
    let out = sp.record_bounded(&open(9, "/d/x"), &limits);
    assert_eq!(
        rendered(&out.widenings),
        ["files: 4 read entries below / collapsed to /*/*"]
    );
    assert_eq!(keys(&sp.profile.files), [file("/*/*")]);
    assert!(sp.learning.incomplete[1].contains("files (4 times); latest: 4 read entries below /"));
}

#[test]
fn each_kind_widens_its_own_way() {
    let mut p = Profile::default();
    let s = Seen::at(1);
    for args in [None, Some(&["-s"][..]), Some(&["-v", "<num>"][..])] {
        p.execs.insert(exec("/usr/bin/curl", args), s);
    }
    p.execs.insert(exec("/usr/bin/wget", Some(&["-q"])), s);
    p.execs.insert(exec("/usr/bin/wget", None), s);
    for child in ["/usr/bin/curl", "/usr/bin/wget", "/usr/sbin/ip"] {
        p.lineage.insert(lineage("/bin/sh", child), s);
    }
    for addr in ["10.1.2.3", "10.1.2.4", "10.1.3.9"] {
        p.connects.insert(net(Family::Inet, addr, 443), s);
    }
    p.connects.insert(net(Family::Inet, "10.1.2.3", 80), s);
    for addr in ["fd00:1:2:3::5", "fd00:1:2:3::6"] {
        p.connects.insert(net(Family::Inet6, addr, 53), s);
    }
    for path in ["/run/app/a.sock", "/run/app/b.sock"] {
        p.listens.insert(net(Family::Unix, path, 0), s);
    }
    let total = p.len();
    // The largest kind first (ties in profile order), least widening first.
    let widenings = p.widen_to(&Limits {
        max_entries: 10,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&widenings),
        [
            "connects: 2 tcp addresses with port 443 collapsed to 10.1.2.0/24",
            "execs: 3 argument lists of /usr/bin/curl merged into any arguments (<any>)",
            "connects: 2 tcp addresses with port 53 collapsed to fd00:1:2:3::/64",
            "connects: 2 tcp addresses with port 443 collapsed to 10.1.0.0/16",
            "execs: 2 argument lists of /usr/bin/wget merged into any arguments (<any>)",
        ]
    );
    assert_eq!(
        total - p.len(),
        widenings.iter().map(|w| w.removed).sum::<usize>()
    );
    let any = Some(&[ANY_ARGS][..]);
    let execs = [exec("/usr/bin/curl", any), exec("/usr/bin/wget", any)];
    assert_eq!(keys(&p.execs), execs);
    let connects = [
        net(Family::Inet, "10.1.0.0/16", 443),
        net(Family::Inet, "10.1.2.3", 80),
        net(Family::Inet6, "fd00:1:2:3::/64", 53),
    ];
    assert_eq!(keys(&p.connects), connects);

    // Further: lineage children by directory, then upwards; addresses of one /16 with any port;
    // programs by directory, with any arguments; unix sockets by directory.
    let widenings = p.widen_to(&Limits {
        max_entries: 5,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&widenings),
        [
            "lineage: 2 programs started by /bin/sh under /usr/bin collapsed to /usr/bin/*",
            "connects: 2 tcp addresses with any port collapsed to 10.1.0.0/16",
            "execs: 2 programs (any arguments) under /usr/bin collapsed to /usr/bin/*",
            "lineage: 2 programs started by /bin/sh below /usr collapsed to /usr/*/*",
            "listens: 2 stream unix sockets under /run/app collapsed to /run/app/*",
        ]
    );
    assert_eq!(keys(&p.execs), [exec("/usr/bin/*", any)]);
    assert_eq!(keys(&p.lineage), [lineage("/bin/sh", "/usr/*/*")]);
    let connects = [
        net(Family::Inet, "10.1.0.0/16", 0),
        net(Family::Inet6, "fd00:1:2:3::/64", 53),
    ];
    assert_eq!(keys(&p.connects), connects);
    assert_eq!(keys(&p.listens), [net(Family::Unix, "/run/app/*", 0)]);
}

#[test]
fn lineage_with_distinct_parents_and_children_widens_both_sides() {
    let mut p = Profile::default();
    for (parent, child) in [("/usr/bin/a", "/opt/x/b"), ("/usr/sbin/c", "/opt/y/z/d")] {
        p.lineage.insert(lineage(parent, child), Seen::at(1));
    }
    p.lineage.insert(lineage("/etc/e", "/srv/f"), Seen::at(1));
    let w = p.widen_to(&Limits {
        max_entries: 2,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&w),
        ["lineage: 2 entries collapsed to /usr/** -> /opt/**"]
    );
    let w = p.widen_to(&Limits {
        max_entries: 1,
        max_dir_children: usize::MAX,
    });
    assert_eq!(rendered(&w), ["lineage: 2 entries collapsed to /** -> /**"]);
}

#[test]
fn patterns_group_only_above_their_wildcard_tail() {
    let cases = [
        ("/a/*/*", "/a"),
        ("/a/*/", "/a"),
        ("/a/**", "/a"),
        ("/*", "/"),
        ("/", "/"),
        ("*/*", ""),
        ("a/b", "a/b"),
        ("/proc/*/status", "/proc/*/status"),
    ];
    for (p, s) in cases {
        assert_eq!(stem(p), s, "{p}");
    }
    assert_eq!(ancestors("/a/*/*").collect::<Vec<_>>(), ["/a", "/"]);
    assert_eq!(
        ancestors("/proc/*/status").collect::<Vec<_>>(),
        ["/proc/*", "/proc", "/"]
    );
    assert_eq!(ancestors("a/b").collect::<Vec<_>>(), ["a", ""]);
    // So `/a/*/*` and `/a/*/*/*` merge into `/a/**`, never `/a/*/**`, which `/a/b/c` would
    // not find among the patterns of its own directories.
    let mut p = Profile::default();
    for path in ["/a/*/*", "/a/*/*/*"] {
        p.files.insert(file(path), Seen::at(1));
    }
    p.widen_to(&Limits {
        max_entries: 1,
        max_dir_children: usize::MAX,
    });
    assert_eq!(keys(&p.files), [file("/a/**")]);
}

#[test]
fn directories_collapse_upwards_and_the_root_comes_last() {
    let mut p = Profile::default();
    for path in ["/srv/a/x", "/srv/b/y", "/srv/c/z", "/opt/k/l", "/etc/hosts"] {
        p.files.insert(file(path), Seen::at(1));
    }
    p.connects
        .insert(net(Family::Inet, "10.0.0.1", 80), Seen::at(1));
    p.connects
        .insert(net(Family::Inet, "192.168.0.1", 80), Seen::at(1));
    let w = p.widen_to(&Limits {
        max_entries: 5,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&w),
        ["files: 3 read entries below /srv collapsed to /srv/*/*"]
    );
    p.files.insert(file("/srv/d/e/f"), Seen::at(1));
    let w = p.widen_to(&Limits {
        max_entries: 5,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&w),
        ["files: 2 read entries below /srv collapsed to /srv/**"]
    );
    // Nothing but the root is left for files; the network widens to /8 first, then any address.
    let w = p.widen_to(&Limits {
        max_entries: 2,
        max_dir_children: usize::MAX,
    });
    assert_eq!(
        rendered(&w),
        [
            "files: 3 read entries below / collapsed to /**",
            "connects: 2 tcp addresses with port 80 collapsed to 0.0.0.0/0",
        ]
    );
    assert_eq!(keys(&p.files), [file("/**")]);
}

#[test]
fn deep_and_directory_entries_are_covered_correctly() {
    let mut p = Profile::default();
    for path in ["/a/b/**", "/a/c/", "/a/d/", "/a/e", "/a/f", "/"] {
        p.files.insert(file(path), Seen::at(1));
    }
    p.widen_to(&Limits {
        max_entries: 4,
        max_dir_children: usize::MAX,
    });
    let expected = [file("/"), file("/a/*"), file("/a/*/"), file("/a/b/**")];
    assert_eq!(keys(&p.files), expected);
    // `/` cannot be covered by any pattern, so it stays even when that breaks the bound.
    p.widen_to(&Limits {
        max_entries: 0,
        max_dir_children: usize::MAX,
    });
    assert_eq!(keys(&p.files), [file("/"), file("/a/**")]);
}

#[test]
fn coverage_of_entries() {
    let any = exec("/usr/bin/*", Some(&[ANY_ARGS]));
    assert!(any.any_args());
    assert!(any.covers(&exec("/usr/bin/curl", None)));
    assert!(any.covers(&exec("/usr/bin/curl", Some(&["-s", "x"]))));
    assert!(!any.covers(&exec("/usr/local/bin/curl", None)));
    let exact = exec("/usr/bin/*", Some(&["-s"]));
    assert!(exact.covers(&exec("/usr/bin/curl", Some(&["-s"]))));
    assert!(!exact.covers(&exec("/usr/bin/curl", None)));

    let cases = [
        (
            net(Family::Inet, "10.1.2.0/24", 443),
            net(Family::Inet, "10.1.2.9", 443),
            true,
        ),
        (
            net(Family::Inet, "10.1.2.0/24", 443),
            net(Family::Inet, "10.1.3.9", 443),
            false,
        ),
        (
            net(Family::Inet, "10.1.2.0/24", 443),
            net(Family::Inet, "10.1.2.9", 80),
            false,
        ),
        (
            net(Family::Inet, "10.1.0.0/16", 0),
            net(Family::Inet, "10.1.2.0/24", 80),
            true,
        ),
        (
            net(Family::Inet, "10.1.2.0/24", 0),
            net(Family::Inet, "10.1.0.0/16", 80),
            false,
        ),
        (
            net(Family::Inet, "0.0.0.0/0", 0),
            net(Family::Inet6, "::1", 80),
            false,
        ),
        (
            net(Family::Inet6, "fd00::/48", 53),
            net(Family::Inet6, "fd00::1", 53),
            true,
        ),
        (
            net(Family::Unix, "/run/*", 0),
            net(Family::Unix, "/run/a.sock", 0),
            true,
        ),
        (net(Family::Unix, "@a", 0), net(Family::Unix, "@a", 0), true),
    ];
    for (wide, narrow, expected) in cases {
        assert_eq!(wide.covers(&narrow), expected, "{wide:?} {narrow:?}");
    }
    let l = lineage("/bin/*", "/usr/**");
    assert!(l.covers(&lineage("/bin/sh", "/usr/bin/curl")));
    assert!(!l.covers(&lineage("/sbin/init", "/usr/bin/curl")));
    let f = DiffEntry::File(file("/a/*"));
    assert!(f.covers(&DiffEntry::File(file("/a/b"))));
    assert!(!f.covers(&DiffEntry::File(file("/a/**"))));
    assert!(!f.covers(&DiffEntry::Exec(exec("/a/b", None))));
}

#[test]
fn recording_after_widening_counts_on_the_widened_entry() {
    let limits = Limits {
        max_entries: 2,
        max_dir_children: usize::MAX,
    };
    let mut sp = StoredProfile {
        profile: Profile::default(),
        learning: Learning::new(0),
    };
    for (i, addr) in ["10.1.2.3", "10.1.2.4", "10.1.2.5"].iter().enumerate() {
        sp.record_bounded(&connect(i as u64, Family::Inet, addr, 443), &limits);
    }
    assert_eq!(
        keys(&sp.profile.connects),
        [net(Family::Inet, "10.1.2.0/24", 443)]
    );
    let out = sp.record_bounded(&connect(7, Family::Inet, "10.1.2.200", 443), &limits);
    assert_eq!(out, RecordOutcome::default());
    assert_eq!(sp.profile.connects.values().next().unwrap().count, 4);
    let out = sp.record_bounded(&connect(8, Family::Inet, "10.1.2.200", 80), &limits);
    assert_eq!(out.new, [EntryKind::Connect]);
    // Without widening, recording stays exact: a literal `*` file name covers nothing.
    let mut p = Profile::default();
    p.record(&open(1, "/a/*"));
    assert_eq!(p.record(&open(2, "/a/b")), [EntryKind::File]);
    let mut q = Profile::default();
    q.record(&open(1, "/a/*"));
    assert_eq!(q.record_covered(&open(2, "/a/b")), []);
}

// --- Properties ---------------------------------------------------------------------------

fn segment() -> impl Strategy<Value = String> {
    let words = "etc var usr lib cache app data srv log a b c x y 12 345 * **";
    prop::sample::select(words.split(' ').map(String::from).collect::<Vec<_>>())
}

/// Mostly absolute paths of 1–4 segments, some directories (`/x/`), a few relative.
fn path() -> impl Strategy<Value = String> {
    let segs = prop::collection::vec(segment(), 1..5);
    (segs, 0..20u8).prop_map(|(segs, shape)| {
        let p = segs.join("/");
        match shape {
            0 => p,
            1 | 2 => format!("/{p}/"),
            _ => format!("/{p}"),
        }
    })
}

fn abs_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn seen() -> impl Strategy<Value = Seen> {
    (1u64..5, 0u64..1000, 0u64..1000).prop_map(|(count, a, b)| Seen {
        count,
        first_ns: a.min(b),
        last_ns: a.max(b),
    })
}

fn args() -> impl Strategy<Value = Option<Vec<String>>> {
    let arg = prop::sample::select(vec!["-c", "-v", "<num>", "--x=1", "run"]);
    let list = prop::collection::vec(arg.prop_map(String::from), 0..3);
    prop::option::weighted(0.9, list)
}

/// A network endpoint: IPv4 or IPv6 from a few networks, or a unix socket path or name.
fn endpoint() -> impl Strategy<Value = (Family, Protocol, String, u16)> {
    let v4 = (0u8..3, 0u8..3, 0u8..=255).prop_map(|(a, b, c)| format!("10.{a}.{b}.{c}"));
    let v6 = (0u16..3, 0u16..3, 0u16..=255).prop_map(|(a, b, c)| format!("fd00:{a}::{b}:{c:x}"));
    let unix = prop_oneof![abs_path(), Just("@sock".to_string())];
    let ip_proto = prop::sample::select(vec![Protocol::Tcp, Protocol::Udp]);
    let unix_proto = prop::sample::select(vec![Protocol::Stream, Protocol::Dgram]);
    let port = prop::sample::select(vec![53u16, 80, 443, 8080, 5432]);
    prop_oneof![
        (v4, ip_proto.clone(), port.clone()).prop_map(|(a, p, n)| (Family::Inet, p, a, n)),
        (v6, ip_proto, port).prop_map(|(a, p, n)| (Family::Inet6, p, a, n)),
        (unix, unix_proto).prop_map(|(a, p)| (Family::Unix, p, a, 0)),
    ]
}

fn net_entry() -> impl Strategy<Value = NetEntry> {
    endpoint().prop_map(|(family, protocol, addr, port)| NetEntry {
        family,
        protocol,
        addr,
        port,
    })
}

fn profile() -> impl Strategy<Value = Profile> {
    let access = prop::sample::select(vec![Access::Read, Access::Write, Access::Create]);
    let exec = (abs_path(), args()).prop_map(|(path, args)| ExecEntry { path, args });
    let lineage =
        (abs_path(), abs_path()).prop_map(|(parent, child)| LineageEntry { parent, child });
    let file = (path(), access).prop_map(|(path, access)| FileEntry { path, access });
    (
        prop::collection::btree_map(exec, seen(), 0..40),
        prop::collection::btree_map(lineage, seen(), 0..30),
        prop::collection::btree_map(file, seen(), 0..80),
        prop::collection::btree_map(net_entry(), seen(), 0..50),
        prop::collection::btree_map(net_entry(), seen(), 0..20),
    )
        .prop_map(profile_of)
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let exec =
        (abs_path(), args(), prop::option::of(abs_path())).prop_map(|(path, args, parent)| {
            let unknown = args.is_none();
            let mut argv = vec![path.clone()];
            argv.extend(args.unwrap_or_default());
            let detail = EventDetail::Exec {
                filename: path,
                argv,
                argv_truncated: false,
                argv_unknown: unknown,
            };
            event(0, parent.as_deref(), detail)
        });
    let access = prop::sample::select(vec![Access::Read, Access::Write]);
    let open = (path(), access).prop_map(|(path, access)| {
        let detail = EventDetail::Open {
            path,
            flags: 0,
            access,
            path_truncated: false,
        };
        event(0, None, detail)
    });
    let net = (endpoint(), any::<bool>()).prop_map(|((family, protocol, addr, port), out)| {
        let ep = Endpoint {
            family,
            protocol,
            addr,
            port,
        };
        let detail = if out {
            EventDetail::Connect { dest: ep }
        } else {
            EventDetail::Listen { local: Some(ep) }
        };
        event(0, None, detail)
    });
    let one = prop_oneof![exec, open, net];
    prop::collection::vec(one, 0..150).prop_map(|mut es| {
        for (i, e) in es.iter_mut().enumerate() {
            e.ts_ns = i as u64;
        }
        es
    })
}

/// One entry per line.
fn dump(p: &Profile) -> String {
    let lines: Vec<String> = entries(p).map(|(e, _)| e.to_string()).collect();
    lines.join("\n")
}

/// Per kind: total count, earliest first and latest last seen.
fn totals(p: &Profile) -> BTreeMap<EntryKind, (u64, u64, u64)> {
    let mut out = BTreeMap::new();
    for (e, s) in entries(p) {
        let t = out.entry(e.kind()).or_insert((0, u64::MAX, 0));
        *t = (t.0 + s.count, t.1.min(s.first_ns), t.2.max(s.last_ns));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn widening_bounds_covers_keeps_counts_and_is_deterministic(
        p in profile(),
        max_entries in 30usize..100,
    ) {
        let limits = Limits { max_entries, max_dir_children: usize::MAX };
        let mut w = p.clone();
        let steps = w.widen_to(&limits);
        prop_assert!(w.len() <= max_entries, "{} > {max_entries}:\n{}", w.len(), dump(&w));
        prop_assert_eq!(steps.is_empty(), p.len() <= max_entries);
        prop_assert_eq!(p.len() - w.len(), steps.iter().map(|s| s.removed).sum::<usize>());
        let wide: Vec<DiffEntry> = entries(&w).map(|(e, _)| e).collect();
        for (e, _) in entries(&p) {
            prop_assert!(wide.iter().any(|x| x.covers(&e)), "{} dropped", e);
            prop_assert!(w.covers_entry(&e), "{} not found", e);
        }
        prop_assert_eq!(totals(&w), totals(&p));
        let mut again = p.clone();
        prop_assert_eq!(again.widen_to(&limits), steps);
        prop_assert_eq!(again, w.clone());
        // Widening what is within the bound does nothing.
        prop_assert_eq!(w.clone().widen_to(&limits), vec![]);
    }

    #[test]
    fn recorded_behaviour_stays_covered_and_bounded(
        es in events(),
        max_entries in 30usize..60,
    ) {
        let limits = Limits { max_entries, max_dir_children: usize::MAX };
        let mut sp = StoredProfile { profile: Profile::default(), learning: Learning::new(0) };
        let mut widened = false;
        for e in &es {
            let out = sp.record_bounded(e, &limits);
            prop_assert!(sp.profile.len() <= max_entries);
            widened |= !out.widenings.is_empty();
        }
        prop_assert_eq!(sp.learning.widened(), widened);
        let per_kind = sp.learning.incomplete.iter().filter(|r| r.starts_with(WIDENING_REASON));
        prop_assert!(per_kind.count() <= KINDS.len());
        if widened {
            let status = sp.learning.status(u64::MAX, Duration::ZERO);
            prop_assert_eq!(status, Status::Incomplete);
        }
        let recorded = totals(&sp.profile);
        for e in &es {
            prop_assert!(sp.profile.covers(e));
            let again = sp.record_bounded(e, &limits);
            let why = format!("{:?}\n{}", e.detail, dump(&sp.profile));
            prop_assert_eq!(again, RecordOutcome::default(), "{}", why);
        }
        let twice = totals(&sp.profile);
        for (kind, (count, ..)) in recorded {
            prop_assert_eq!(twice[&kind].0, 2 * count);
        }
    }
}

#[test]
fn a_crowded_directory_collapses_without_making_the_profile_incomplete() {
    let limits = Limits {
        max_entries: 1000,
        max_dir_children: 8,
    };
    let mut sp = StoredProfile {
        profile: Profile::default(),
        learning: Learning::new(0),
    };
    sp.record_bounded(&open(1, "/etc/app.conf"), &limits);
    for i in 0..8 {
        sp.record_bounded(
            &open(10 + i, &format!("/var/cache/app/{}", name(i as usize))),
            &limits,
        );
    }
    assert_eq!(
        sp.profile.files.len(),
        9,
        "up to the threshold, every file is its own entry"
    );
    let out = sp.record_bounded(&open(20, &format!("/var/cache/app/{}", name(8))), &limits);
    assert_eq!(out.new, [EntryKind::File]);
    assert_eq!(
        keys(&sp.profile.files),
        [file("/etc/app.conf"), file("/var/cache/app/*")],
        "the ninth distinct file collapses the directory"
    );
    let folded = sp.profile.files[&file("/var/cache/app/*")];
    assert_eq!((folded.count, folded.first_ns, folded.last_ns), (9, 10, 20));
    // Later files there count on the pattern; nothing is incomplete.
    let out = sp.record_bounded(&open(30, &format!("/var/cache/app/{}", name(20))), &limits);
    assert!(out.new.is_empty());
    assert_eq!(sp.profile.files[&file("/var/cache/app/*")].count, 10);
    assert!(sp.learning.incomplete.is_empty());
    // Deeper entries and other directories are left alone.
    sp.record_bounded(&open(40, "/var/cache/app/sub/x"), &limits);
    assert!(sp.profile.files.contains_key(&file("/var/cache/app/sub/x")));
}
