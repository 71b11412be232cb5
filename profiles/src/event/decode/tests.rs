//! The hand-written decoder against the derived one it replaced (kept here as the reference),
//! on every recorded trace line and on generated events with shuffled and extra fields.

use std::io::{BufRead, BufReader};

use proptest::prelude::*;
use serde::Deserialize;

use crate::event::{Access, Endpoint, Event, EventDetail, Family, KubeMeta, Protocol, Workload};

/// The derived decoder `Event` had before: flatten over the internally tagged `EventDetail`.
#[derive(Deserialize)]
struct Reference {
    schema: u32,
    ts_ns: u64,
    workload: Workload,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    comm: String,
    #[serde(default)]
    exe: Option<String>,
    #[serde(default)]
    parent_exe: Option<String>,
    #[serde(default)]
    existing: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(flatten)]
    detail: EventDetail,
}

impl From<Reference> for Event {
    fn from(r: Reference) -> Event {
        Event {
            schema: r.schema,
            ts_ns: r.ts_ns,
            workload: r.workload,
            pid: r.pid,
            tid: r.tid,
            ppid: r.ppid,
            uid: r.uid,
            gid: r.gid,
            comm: r.comm,
            exe: r.exe,
            parent_exe: r.parent_exe,
            existing: r.existing,
            blocked: r.blocked,
            detail: r.detail,
        }
    }
}

fn reference(json: &str) -> Result<Event, serde_json::Error> {
    serde_json::from_str::<Reference>(json).map(Event::from)
}

fn decode(json: &str) -> Result<Event, serde_json::Error> {
    serde_json::from_str(json)
}

/// Both decoders accept `json` and agree, or both reject it.
fn assert_same(json: &str) {
    match (decode(json), reference(json)) {
        (Ok(new), Ok(old)) => assert_eq!(new, old, "{json}"),
        (Err(_), Err(_)) => {}
        (new, old) => panic!("{json}\nnew: {new:?}\nold: {old:?}"),
    }
    // Decoding into a reused event (the fast path for plain lines) agrees too.
    let mut reused = other_event();
    match (super::decode_json_into(json, &mut reused), reference(json)) {
        (Ok(()), Ok(old)) => assert_eq!(reused, old, "into: {json}"),
        (Err(_), Err(_)) => {}
        (new, old) => panic!("into: {json}\nnew: {new:?} {reused:?}\nold: {old:?}"),
    }
}

/// An event unlike those tested, to decode into.
fn other_event() -> Event {
    reference(
        r#"{"schema":9,"ts_ns":1,"workload":{"id":"/o","cgroup_id":1,"cgroup":"/o","unit":"u"},
        "pid":1,"tid":1,"ppid":0,"uid":0,"gid":0,"comm":"o","exe":"/o","kind":"exec",
        "filename":"/o","argv":["/o","a","b","c"],"argv_truncated":true}"#,
    )
    .unwrap()
}

/// The object's fields as JSON text, in the given order.
fn object(fields: &[(String, serde_json::Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn fields_of(json: &str) -> Vec<(String, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_object().unwrap().clone().into_iter().collect()
}

fn trace_lines() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets/traces");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".jsonl.gz") {
            let file = std::fs::File::open(&path).unwrap();
            let reader = BufReader::new(flate2::read::GzDecoder::new(file));
            lines.extend(reader.lines().map(Result::unwrap));
        }
    }
    lines
}

#[test]
fn every_recorded_line_decodes_as_before_in_any_field_order() {
    let lines = trace_lines();
    assert!(lines.len() > 1000, "{} lines", lines.len());
    let mut kinds = std::collections::BTreeSet::new();
    for line in &lines {
        let old = reference(line).unwrap();
        assert_eq!(decode(line).unwrap(), old, "{line}");
        kinds.insert(old.detail.kind());
        // `kind` last: the kind-specific fields are buffered until it is known.
        let mut fields = fields_of(line);
        fields.reverse();
        assert_eq!(decode(&object(&fields)).unwrap(), old, "reversed {line}");
    }
    for kind in [
        "exec", "open", "connect", "bind", "listen", "setuid", "setgid",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in the traces");
    }
}

#[test]
fn recorded_lines_take_the_fast_path() {
    let lines = trace_lines();
    let mut event = other_event();
    let mut argv = Vec::new();
    let fast = lines
        .iter()
        .filter(|l| super::super::fast::decode_plain(l, &mut event, &mut argv))
        .count();
    assert!(
        fast * 100 >= lines.len() * 99,
        "{fast} of {} lines took the fast path",
        lines.len()
    );
}

#[test]
fn decoding_into_a_reused_event_gives_the_same_events() {
    let lines = trace_lines();
    let mut reused = decode(&lines[0]).unwrap();
    for line in &lines {
        super::decode_json_into(line, &mut reused).unwrap();
        assert_eq!(reused, decode(line).unwrap(), "{line}");
    }
    let bad = with(r#""kind":"exec""#);
    assert!(super::decode_json_into(&bad, &mut reused).is_err());
    let trailing = format!("{} x", lines[0]);
    assert!(super::decode_json_into(&trailing, &mut reused).is_err());
    super::decode_json_into(&lines[1], &mut reused).unwrap();
    assert_eq!(reused, decode(&lines[1]).unwrap());
}

const BASE: &str = r#""schema":1,"ts_ns":5,"workload":{"id":"/w","cgroup_id":7,"cgroup":"/w","extra":[1]},"pid":10,"tid":11,"ppid":1,"uid":0,"gid":0,"comm":"x""#;

fn with(rest: &str) -> String {
    format!("{{{BASE},{rest}}}")
}

#[test]
fn edge_cases_decode_as_before() {
    for rest in [
        // Foreign fields of another kind are ignored whatever their type.
        r#""kind":"exec","filename":"/x","argv":[],"argv_truncated":false,"port":"no","path":7"#,
        r#""port":"no","kind":"exec","filename":"/x","argv":[],"argv_truncated":false"#,
        // Unknown fields, nested or null optional fields.
        r#""exe":null,"parent_exe":null,"zz":{"a":[{}]},"kind":"open","path":"/p","flags":0,"access":"read""#,
        // A listen endpoint is all-or-nothing.
        r#""kind":"listen""#,
        r#""kind":"listen","family":"inet","protocol":"tcp","addr":"0.0.0.0","port":80"#,
        r#""kind":"listen","family":"inet","protocol":"tcp","addr":"0.0.0.0""#,
        r#""kind":"listen","family":"bogus","protocol":"tcp","addr":"0.0.0.0","port":80"#,
        r#""kind":"listen","family":"inet","protocol":"tcp","addr":"0.0.0.0","port":80,"port":81"#,
        r#""port":80,"family":"inet6","protocol":"tcp","addr":"::","kind":"listen""#,
        // The tag as a variant index.
        r#""kind":1,"path":"/p","flags":0,"access":"write""#,
        r#""kind":9,"path":"/p","flags":0,"access":"write""#,
        r#""kind":"ptrace","request":16,"request_name":"PTRACE_ATTACH","target_pid":3"#,
        r#""kind":"setgid","call":"setgid","ids":[null,0]"#,
        r#""existing":true,"kind":"exec","filename":"/x","argv":["a"],"argv_truncated":true,"argv_unknown":true"#,
        // Rejected by both.
        r#""kind":"open","path":"/p","flags":0,"access":"read","path":"/q""#,
        r#""kind":"open","kind":"open","path":"/p","flags":0,"access":"read""#,
        r#""kind":"connect","family":"inet","protocol":"tcp","addr":"1.1.1.1","port":70000"#,
        r#""flags":"x","kind":"open","path":"/p","access":"read""#,
        r#""kind":null"#,
        r#""pid":3,"kind":"listen""#,
    ] {
        assert_same(&with(rest));
    }
    assert_same(
        r#"{"schema":1,"ts_ns":5,"workload":["/w",7,"/w"],"pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"x","kind":"listen"}"#,
    );
    assert_same(
        r#"{"schema":1,"ts_ns":5,"workload":{"id":"/w","cgroup_id":7,"cgroup":"/w","unit":null,"runtime":"docker","id":"/v"},"pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"x","kind":"listen"}"#,
    );
    assert_same("{}");
    assert_same("[]");
    assert_same("7");
}

fn message(json: &str) -> String {
    let err = decode(json).unwrap_err().to_string();
    assert!(reference(json).is_err(), "the derive accepted {json}");
    err
}

#[test]
fn errors_name_the_field() {
    let m = message(&with(r#""path":"/p""#));
    assert!(m.contains("missing field `kind`"), "{m}");
    let m = message(&with(r#""kind":"teleport""#));
    assert!(m.contains("unknown variant `teleport`"), "{m}");
    assert!(m.contains("expected one of `exec`, `open`"), "{m}");
    let m = message(&with(
        r#""kind":"exec","filename":"/x","argv_truncated":false"#,
    ));
    assert!(m.contains("missing field `argv`"), "{m}");
    let m = message(&with(
        r#""kind":"connect","family":"inet","addr":"a","port":1"#,
    ));
    assert!(m.contains("missing field `protocol`"), "{m}");
    let m = message(&with(r#""argv":[],"kind":"exec","argv_truncated":false"#));
    assert!(m.contains("missing field `filename`"), "{m}");
    let m = message(&with(
        r#""kind":"setuid","call":"setuid","call":"x","ids":[]"#,
    ));
    assert!(m.contains("duplicate field `call`"), "{m}");
    let m = message(r#"{"schema":1,"kind":"listen"}"#);
    assert!(m.contains("missing field `ts_ns`"), "{m}");
    let m = message(&with(
        r#""kind":"open","path":"/p","flags":"x","access":"read""#,
    ));
    assert!(
        m.contains("invalid type: string \"x\", expected u32"),
        "{m}"
    );
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z/._-]{0,12}", any::<String>()]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    let family = prop_oneof![Just(Family::Inet), Just(Family::Inet6), Just(Family::Unix)];
    let protocol = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Raw),
        Just(Protocol::Stream),
        Just(Protocol::Dgram),
        Just(Protocol::Seqpacket),
        Just(Protocol::Unknown),
    ];
    (family, protocol, name(), any::<u16>()).prop_map(|(family, protocol, addr, port)| Endpoint {
        family,
        protocol,
        addr,
        port,
    })
}

fn detail() -> impl Strategy<Value = EventDetail> {
    let access = prop_oneof![
        Just(Access::Read),
        Just(Access::Write),
        Just(Access::Create)
    ];
    let ids = prop::collection::vec(any::<Option<u32>>(), 0..4);
    prop_oneof![
        (
            name(),
            prop::collection::vec(name(), 0..4),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(filename, argv, argv_truncated, argv_unknown)| {
                EventDetail::Exec {
                    filename,
                    argv,
                    argv_truncated,
                    argv_unknown,
                }
            }),
        (name(), any::<u32>(), access, any::<bool>()).prop_map(
            |(path, flags, access, path_truncated)| EventDetail::Open {
                path,
                flags,
                access,
                path_truncated,
            }
        ),
        endpoint().prop_map(|dest| EventDetail::Connect { dest }),
        endpoint().prop_map(|local| EventDetail::Bind { local }),
        proptest::option::of(endpoint()).prop_map(|local| EventDetail::Listen { local }),
        (any::<u64>(), name(), any::<u32>()).prop_map(|(request, request_name, target_pid)| {
            EventDetail::Ptrace {
                request,
                request_name,
                target_pid,
            }
        }),
        (name(), ids.clone()).prop_map(|(call, ids)| EventDetail::Setuid { call, ids }),
        (name(), ids).prop_map(|(call, ids)| EventDetail::Setgid { call, ids }),
    ]
}

fn kube_meta() -> impl Strategy<Value = KubeMeta> {
    (
        (name(), name(), name(), name()),
        (name(), name(), name()),
        proptest::collection::btree_map(name(), name(), 0..3),
    )
        .prop_map(
            |((namespace, pod, container, image), (owner_kind, owner_name, revision), labels)| {
                KubeMeta {
                    namespace,
                    pod,
                    container,
                    image,
                    owner_kind,
                    owner_name,
                    revision,
                    labels,
                }
            },
        )
}

fn workload() -> impl Strategy<Value = Workload> {
    let opt = || proptest::option::of(name());
    (
        (name(), any::<u64>(), name()),
        (opt(), opt(), opt(), opt()),
        proptest::option::of(kube_meta()),
    )
        .prop_map(
            |((id, cgroup_id, cgroup), (runtime, container_id, pod_uid, unit), k8s)| Workload {
                id,
                cgroup_id,
                cgroup,
                runtime,
                container_id,
                pod_uid,
                unit,
                k8s: k8s.map(std::sync::Arc::new),
            },
        )
}

prop_compose! {
    fn event()(
        schema in any::<u32>(),
        ts_ns in any::<u64>(),
        workload in workload(),
        ids in any::<[u32; 5]>(),
        comm in name(),
        exe in proptest::option::of(name()),
        parent_exe in proptest::option::of(name()),
        flags in any::<(bool, bool)>(),
        detail in detail(),
    ) -> Event {
        let [pid, tid, ppid, uid, gid] = ids;
        let (existing, blocked) = flags;
        Event { schema, ts_ns, workload, pid, tid, ppid, uid, gid, comm, exe, parent_exe, existing, blocked, detail }
    }
}

/// A JSON value of any shape, for fields the decoder must ignore (or reject as the derive did).
fn junk() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(Into::into),
        any::<u64>().prop_map(Into::into),
        any::<i32>().prop_map(Into::into),
        name().prop_map(Into::into),
        Just(serde_json::json!(["a", null, 3])),
        Just(serde_json::json!({"k": [1, {}]})),
        Just(serde_json::json!("inet")),
        Just(serde_json::json!("read")),
    ]
}

const KEYS: &[&str] = &[
    "filename",
    "argv",
    "argv_truncated",
    "argv_unknown",
    "path",
    "flags",
    "access",
    "path_truncated",
    "family",
    "protocol",
    "addr",
    "port",
    "request",
    "request_name",
    "target_pid",
    "call",
    "ids",
    "unknown",
    "kind2",
];

proptest! {
    #[test]
    fn any_event_round_trips(e in event()) {
        let line = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(&decode(&line).unwrap(), &e);
        let mut reused = other_event();
        super::decode_json_into(&line, &mut reused).unwrap();
        prop_assert_eq!(&reused, &e);
        prop_assert_eq!(serde_json::from_value::<Event>(serde_json::to_value(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn shuffled_and_extended_events_decode_as_before(
        e in event(),
        extra in prop::collection::vec((prop::sample::select(KEYS), junk()), 0..4),
        seed in any::<u64>(),
    ) {
        let mut fields = fields_of(&serde_json::to_string(&e).unwrap());
        fields.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        // A deterministic shuffle from the seed (proptest shrinks the seed, not the order).
        let mut s = seed | 1;
        for i in (1..fields.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            fields.swap(i, (s % (i as u64 + 1)) as usize);
        }
        assert_same(&object(&fields));
    }
}
