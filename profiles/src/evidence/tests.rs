use std::{io::BufRead, path::PathBuf};

use super::*;
use crate::store::temp::TempDir;
use crate::{Family, Protocol, SCHEMA_VERSION};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_795_000_000 * SEC;

fn workload(id: &str) -> Workload {
    Workload {
        id: id.into(),
        cgroup_id: 42,
        cgroup: id.into(),
        runtime: Some("containerd".into()),
        container_id: Some("abc123".into()),
        pod_uid: None,
        unit: None,
        k8s: None,
    }
}

fn ep(port: u16) -> Endpoint {
    Endpoint {
        family: Family::Inet6,
        protocol: Protocol::Tcp,
        addr: "::1".into(),
        port,
    }
}

/// One event of every kind and shape, including every optional field set and unset.
fn every_kind() -> Vec<EventDetail> {
    vec![
        EventDetail::Exec {
            filename: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "echo 'a b'".into()],
            argv_truncated: true,
            argv_unknown: false,
        },
        EventDetail::Exec {
            filename: "/usr/bin/x32".into(),
            argv: vec![],
            argv_truncated: false,
            argv_unknown: true,
        },
        EventDetail::Open {
            path: "/etc/shadow".into(),
            flags: 0o2000000,
            access: Access::Read,
            path_truncated: false,
        },
        EventDetail::Open {
            path: "/tmp/é/x".into(),
            flags: 0o101,
            access: Access::Create,
            path_truncated: true,
        },
        EventDetail::Connect { dest: ep(443) },
        EventDetail::Bind {
            local: Endpoint {
                family: Family::Unix,
                protocol: Protocol::Seqpacket,
                addr: "@abstract".into(),
                port: 0,
            },
        },
        EventDetail::Listen {
            local: Some(ep(8080)),
        },
        EventDetail::Listen { local: None },
        EventDetail::Ptrace {
            request: 0x4206,
            request_name: "PTRACE_SEIZE".into(),
            target_pid: 7,
        },
        EventDetail::Setuid {
            call: "setresuid".into(),
            ids: vec![Some(0), None, Some(u32::MAX - 1)],
        },
        EventDetail::Setgid {
            call: "setgid".into(),
            ids: vec![Some(0)],
        },
    ]
}

fn event(id: &str, ts_ns: u64, detail: EventDetail) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        ts_ns,
        workload: workload(id),
        pid: 100 + (ts_ns % 1000) as u32,
        tid: 101,
        ppid: 1,
        uid: 33,
        gid: 33,
        comm: "worker".into(),
        exe: Some("/usr/bin/worker".into()),
        parent_exe: None,
        existing: false,
        blocked: false,
        detail,
    }
}

/// Every event of every recorded trace, as captured.
fn trace_events() -> Vec<Event> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/traces");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "traces in {}", dir.display());
    let mut out = Vec::new();
    for p in names {
        let f = flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap());
        for line in std::io::BufReader::new(f).lines() {
            out.push(serde_json::from_str(&line.unwrap()).unwrap());
        }
    }
    out
}

fn config() -> RetentionConfig {
    RetentionConfig {
        max_age: Duration::from_secs(3600),
        max_bytes: 1 << 30,
        block_events: 16,
        block_age: Duration::from_secs(10),
    }
}

fn all(ev: &EvidenceStore) -> Vec<Event> {
    ev.query(&EvidenceQuery::default()).unwrap()
}

fn sorted(mut v: Vec<Event>) -> Vec<Event> {
    v.sort_by(by_time);
    v
}

#[test]
fn every_kind_and_every_trace_event_round_trips() {
    let dir = TempDir::new("roundtrip");
    let store = Store::open(&dir.0).unwrap();
    let mut ev = EvidenceStore::open(&store, config()).unwrap();
    let mut input = Vec::new();
    for (i, d) in every_kind().into_iter().enumerate() {
        let mut e = event("/kinds", T0 + i as u64, d);
        e.existing = i % 2 == 0;
        e.blocked = i % 3 == 0;
        e.parent_exe = (i % 2 == 1).then(|| "/bin/bash".to_string());
        e.exe = (i != 4).then(|| "/usr/bin/worker".to_string());
        input.push(e);
    }
    let traces = trace_events();
    let kinds: std::collections::BTreeSet<_> = traces.iter().map(|e| e.detail.kind()).collect();
    assert_eq!(
        kinds.len(),
        7,
        "the traces have every kind but ptrace: {kinds:?}"
    );
    input.extend(traces);
    for e in &input {
        ev.append(e).unwrap();
    }
    // Some events written as blocks, the rest still buffered: a query sees both.
    assert!(ev.stats().unwrap().blocks > 0);
    assert!(ev.stats().unwrap().buffered_events > 0);
    let want = sorted(input.clone());
    assert_eq!(all(&ev), want);
    ev.flush_all().unwrap();
    assert_eq!(ev.stats().unwrap().buffered_events, 0);
    assert_eq!(all(&ev), want);
    // And through JSON, as an API would serve them.
    for e in all(&ev).iter().take(50) {
        let line = serde_json::to_string(e).unwrap();
        assert_eq!(&serde_json::from_str::<Event>(&line).unwrap(), e);
    }
}

/// Events of three workloads, every kind, one every 100 ms over 60 s, out of order by up to
/// 300 ms as per-CPU buffers deliver them.
fn mixed() -> Vec<Event> {
    let kinds = every_kind();
    let mut out = Vec::new();
    for i in 0..600u64 {
        let jitter = (i * 7919) % 4 * 100_000_000;
        let id = ["/a", "/b", "/c"][(i % 3) as usize];
        out.push(event(
            id,
            T0 + i * 100_000_000 + jitter,
            kinds[(i as usize * 5) % kinds.len()].clone(),
        ));
    }
    out
}

fn brute(input: &[Event], q: &EvidenceQuery) -> Vec<Event> {
    let mut v: Vec<Event> = input
        .iter()
        .filter(|e| q.workload.as_ref().is_none_or(|w| *w == e.workload.id))
        .filter(|e| q.kinds.is_empty() || q.kinds.iter().any(|k| k == e.detail.kind()))
        .filter(|e| q.since_ns.is_none_or(|s| e.ts_ns >= s))
        .filter(|e| q.until_ns.is_none_or(|u| e.ts_ns <= u))
        .cloned()
        .collect();
    v.sort_by(by_time);
    if let Some(l) = q.limit {
        v.truncate(l);
    }
    v
}

#[test]
fn queries_filter_by_workload_kind_and_time_in_time_order() {
    let dir = TempDir::new("query");
    let store = Store::open(&dir.0).unwrap();
    let config = RetentionConfig {
        block_events: 64,
        ..config()
    };
    let mut ev = EvidenceStore::open(&store, config).unwrap();
    let input = mixed();
    // The first 500 written (in blocks of up to 64 events or 10 s), the last 100 buffered.
    for (i, e) in input.iter().enumerate() {
        ev.append(e).unwrap();
        if i == 499 {
            ev.flush_all().unwrap();
        }
        if i < 500 && i % 50 == 0 {
            ev.flush(e.ts_ns).unwrap();
        }
    }
    let stats = ev.stats().unwrap();
    assert_eq!(stats.events, 500);
    assert_eq!(stats.buffered_events, 100);
    let s = |x: u64| Some(T0 + x * SEC);
    let queries = [
        EvidenceQuery::default(),
        EvidenceQuery {
            workload: Some("/b".into()),
            ..Default::default()
        },
        EvidenceQuery {
            workload: Some("/nobody".into()),
            ..Default::default()
        },
        EvidenceQuery {
            kinds: vec!["exec".into(), "setgid".into()],
            ..Default::default()
        },
        EvidenceQuery {
            workload: Some("/a".into()),
            kinds: vec!["connect".into()],
            since_ns: s(10),
            until_ns: s(20),
            limit: None,
        },
        // Across the written and the buffered events.
        EvidenceQuery {
            workload: Some("/c".into()),
            since_ns: s(45),
            until_ns: s(55),
            ..Default::default()
        },
        EvidenceQuery {
            since_ns: s(5),
            until_ns: s(6),
            ..Default::default()
        },
        // Only buffered events.
        EvidenceQuery {
            since_ns: s(58),
            ..Default::default()
        },
        // A single instant.
        EvidenceQuery {
            since_ns: Some(input[42].ts_ns),
            until_ns: Some(input[42].ts_ns),
            ..Default::default()
        },
        EvidenceQuery {
            limit: Some(25),
            ..Default::default()
        },
        EvidenceQuery {
            workload: Some("/a".into()),
            since_ns: s(30),
            limit: Some(40),
            ..Default::default()
        },
        EvidenceQuery {
            limit: Some(0),
            ..Default::default()
        },
    ];
    for q in &queries {
        let got = ev.query(q).unwrap();
        let want = brute(&input, q);
        assert_eq!(got.len(), want.len(), "{q:?}");
        assert_eq!(got, want, "{q:?}");
        assert!(got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
    assert_eq!(ev.query(&queries[1]).unwrap().len(), 200);
    assert_eq!(ev.query(&queries[9]).unwrap().len(), 25);
}

#[test]
fn bad_queries_are_clear_errors() {
    let dir = TempDir::new("badquery");
    let store = Store::open(&dir.0).unwrap();
    let ev = EvidenceStore::open(&store, config()).unwrap();
    let err = ev
        .query(&EvidenceQuery {
            since_ns: Some(20),
            until_ns: Some(10),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("since_ns is after until_ns"),
        "{err}"
    );
    let err = ev
        .query(&EvidenceQuery {
            kinds: vec!["teleport".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("teleport"), "{err}");
}

/// Appends one open event per second per workload ("/a", "/b") for `secs` seconds from `T0`,
/// flushing every second: blocks of up to 10 s (`block_age`).
fn fill(ev: &mut EvidenceStore, secs: u64) -> Vec<Event> {
    let mut input = Vec::new();
    for i in 0..secs {
        ev.flush(T0 + i * SEC).unwrap();
        for id in ["/a", "/b"] {
            let e = event(
                id,
                T0 + i * SEC,
                EventDetail::Open {
                    path: format!("/var/lib/data/{i}"),
                    flags: 0,
                    access: Access::Read,
                    path_truncated: false,
                },
            );
            ev.append(&e).unwrap();
            input.push(e);
        }
    }
    ev.flush_all().unwrap();
    input
}

#[test]
fn retention_by_age_removes_exactly_the_old_blocks() {
    let dir = TempDir::new("age");
    let store = Store::open(&dir.0).unwrap();
    let mut ev = EvidenceStore::open(
        &store,
        RetentionConfig {
            max_age: Duration::from_secs(100),
            block_events: 1000,
            ..config()
        },
    )
    .unwrap();
    let input = fill(&mut ev, 300);
    let before = ev.stats().unwrap();
    assert_eq!(before.events, 600);
    assert_eq!(before.oldest_ns, Some(T0));
    assert_eq!(before.newest_ns, Some(T0 + 299 * SEC));
    // Blocks of 10 s: [0, 9], [10, 19], ... per workload (flushed when 10 s old).
    assert_eq!(before.blocks, 60);

    // Now T0 + 325 s: the cutoff is T0 + 225 s. Blocks whose newest event is before it go: the
    // block [220, 229] keeps its events before the cutoff.
    let report = ev.retain(T0 + 325 * SEC).unwrap();
    assert_eq!(report.expired_blocks, 44);
    assert_eq!(report.expired_events, 440);
    assert_eq!(report.evicted_blocks, 0);
    let after = ev.stats().unwrap();
    assert_eq!(after.blocks, 16);
    assert_eq!(after.events, 160);
    assert_eq!(after.bytes + report.bytes_removed, before.bytes);
    assert_eq!(after.oldest_ns, Some(T0 + 220 * SEC));
    assert_eq!(all(&ev), sorted(input[440..].to_vec()));
    // Nothing more to do at the same time.
    assert_eq!(
        ev.retain(T0 + 325 * SEC).unwrap(),
        RetentionReport::default()
    );
    assert_eq!(ev.read_after(None, usize::MAX).unwrap().0.len(), 160);
}

#[test]
fn retention_by_size_keeps_the_newest_within_the_limit() {
    let dir = TempDir::new("size");
    let store = Store::open(&dir.0).unwrap();
    let mut ev = EvidenceStore::open(&store, config()).unwrap();
    let input = fill(&mut ev, 300);
    let before = ev.stats().unwrap();
    let max_bytes = before.bytes / 3;
    ev.config.max_bytes = max_bytes;
    let report = ev.retain(T0 + 300 * SEC).unwrap();
    assert_eq!(report.expired_blocks, 0, "all younger than an hour");
    assert!(report.evicted_blocks > 0);
    let after = ev.stats().unwrap();
    assert!(after.bytes <= max_bytes, "{after:?} > {max_bytes}");
    // Only about as many removed as needed (blocks are about the same size).
    let block = before.bytes / before.blocks;
    assert!(after.bytes + 2 * block > max_bytes, "{after:?} {report:?}");
    assert_eq!(after.bytes + report.bytes_removed, before.bytes);
    assert_eq!(after.events + report.evicted_events, before.events);
    assert_eq!(after.blocks + report.evicted_blocks, before.blocks);
    // Oldest first: every remaining event is newer than every removed one.
    let kept = all(&ev);
    assert_eq!(kept.len() as u64, after.events);
    let first_kept = kept[0].ts_ns;
    let removed: Vec<_> = input.iter().filter(|e| !kept.contains(e)).collect();
    assert_eq!(removed.len() as u64, report.evicted_events);
    // (Blocks go by their newest event; a block spans at most 10 s.)
    assert!(removed.iter().all(|e| e.ts_ns < first_kept + 10 * SEC));
    assert_eq!(after.oldest_ns, Some(first_kept));
}

#[test]
fn evidence_and_stats_survive_reopening() {
    let dir = TempDir::new("reopen");
    let input = mixed();
    let (stats, cursor) = {
        let store = Store::open(&dir.0).unwrap();
        let mut ev = EvidenceStore::open(&store, config()).unwrap();
        for e in &input[..400] {
            ev.append(e).unwrap();
        }
        ev.flush_all().unwrap();
        let (read, cursor) = ev.read_after(None, 250).unwrap();
        assert_eq!(read.len(), 250);
        store.flush().unwrap();
        (ev.stats().unwrap(), cursor)
    };
    let store = Store::open_waiting(&dir.0, Duration::from_secs(10)).unwrap();
    let mut ev = EvidenceStore::open(&store, config()).unwrap();
    assert_eq!(ev.stats().unwrap(), stats);
    assert_eq!(stats.events, 400);
    assert_eq!(all(&ev), sorted(input[..400].to_vec()));
    // Appending goes on after the blocks already there.
    for e in &input[400..] {
        ev.append(e).unwrap();
    }
    ev.flush_all().unwrap();
    assert_eq!(ev.stats().unwrap().events, 600);
    assert_eq!(all(&ev), sorted(input.clone()));
    let (rest, _) = ev.read_after(cursor, usize::MAX).unwrap();
    assert_eq!(rest.len(), 350);
}

#[test]
fn read_after_walks_every_event_once_in_write_order() {
    let dir = TempDir::new("readafter");
    let store = Store::open(&dir.0).unwrap();
    let mut ev = EvidenceStore::open(&store, config()).unwrap();
    assert_eq!(ev.read_after(None, 10).unwrap(), (vec![], None));
    let input = mixed();
    for e in &input[..300] {
        ev.append(e).unwrap();
    }
    ev.flush_all().unwrap();
    // Buffered events are not read until written.
    ev.append(&input[300]).unwrap();

    let walk = |ev: &EvidenceStore, mut cursor: Option<BlockCursor>, step: usize| {
        let mut got = Vec::new();
        loop {
            let (batch, next) = ev.read_after(cursor, step).unwrap();
            assert!(batch.len() <= step);
            if batch.is_empty() {
                assert_eq!(next, cursor, "nothing new leaves the cursor");
                return (got, cursor);
            }
            // A cursor survives its text form.
            let text = next.unwrap().to_string();
            cursor = Some(text.parse().unwrap());
            assert_eq!(cursor, next);
            got.extend(batch);
        }
    };
    let (got, cursor) = walk(&ev, None, 7);
    assert_eq!(got.len(), 300);
    // The same as one read of everything, in write order: each workload's events as appended.
    assert_eq!(got, ev.read_after(None, usize::MAX).unwrap().0);
    for id in ["/a", "/b", "/c"] {
        let mine: Vec<_> = got.iter().filter(|e| e.workload.id == id).collect();
        let want: Vec<_> = input[..300]
            .iter()
            .filter(|e| e.workload.id == id)
            .collect();
        assert_eq!(mine, want, "{id}");
    }
    // More written later: only the new ones follow the cursor.
    for e in &input[301..] {
        ev.append(e).unwrap();
    }
    ev.flush_all().unwrap();
    let (more, _) = walk(&ev, cursor, 50);
    assert_eq!(more.len(), 300);
    let mut everything = got;
    everything.extend(more);
    assert_eq!(sorted(everything), sorted(input));
    assert!("12".parse::<BlockCursor>().is_err());
}

#[test]
fn blocks_are_cut_by_count_age_span_and_workload_change() {
    let dir = TempDir::new("blocks");
    let store = Store::open(&dir.0).unwrap();
    let mut ev = EvidenceStore::open(&store, config()).unwrap();
    let open = |i: u64| EventDetail::Open {
        path: format!("/f{i}"),
        flags: 0,
        access: Access::Read,
        path_truncated: false,
    };
    // 16 events: one full block.
    for i in 0..16 {
        ev.append(&event("/a", T0 + i, open(i))).unwrap();
    }
    assert_eq!(ev.stats().unwrap().blocks, 1);
    // An event from long ago (a process already running at start) starts its own block.
    let mut old = event("/a", T0 - 86_400 * SEC, open(99));
    old.existing = true;
    ev.append(&event("/a", T0 + 20, open(20))).unwrap();
    ev.append(&old).unwrap();
    assert_eq!(ev.stats().unwrap().blocks, 2);
    // Not yet 10 s old: stays buffered; then written.
    assert_eq!(ev.flush(T0 - 86_395 * SEC).unwrap(), 0);
    assert_eq!(ev.flush(T0 - 86_390 * SEC).unwrap(), 1);
    // The same workload id with new metadata (its cgroup was recreated).
    let mut moved = event("/a", T0 + 30, open(30));
    moved.workload.cgroup_id = 43;
    ev.append(&event("/a", T0 + 25, open(25))).unwrap();
    ev.append(&moved).unwrap();
    ev.flush_all().unwrap();
    let stats = ev.stats().unwrap();
    assert_eq!(stats.blocks, 5);
    assert_eq!(stats.events, 20);
    assert_eq!(stats.oldest_ns, Some(old.ts_ns));
    let got = all(&ev);
    assert_eq!(got[0], old);
    assert_eq!(got.last().unwrap(), &moved);
    assert_eq!(got[got.len() - 2].workload.cgroup_id, 42);
    // A block spans at most block_age, so queries look back no further than that.
    assert!(ev.meta.max_span_ns <= 10 * SEC);
}

/// Not a test of behaviour: prints how the block encodings compare on the recorded traces.
/// `cargo test -p profiles --release evidence::tests::encodings -- --ignored --nocapture`
#[test]
#[ignore]
fn encodings() {
    let events = trace_events();
    for block in [16usize, 64, 512] {
        let mut sizes = [0usize; 5];
        let mut times = [Duration::ZERO; 5];
        for chunk in events.chunks(block) {
            let json: Vec<u8> = chunk
                .iter()
                .flat_map(|e| {
                    let mut l = serde_json::to_vec(e).unwrap();
                    l.push(b'\n');
                    l
                })
                .collect();
            let mut bin = Vec::new();
            for e in chunk {
                bincode::serde::encode_into_std_write(
                    Rec::borrow(e, chunk[0].ts_ns),
                    &mut bin,
                    bincode_config(),
                )
                .unwrap();
            }
            let t = std::time::Instant::now();
            sizes[0] += zstd::bulk::compress(&json, 1).unwrap().len();
            times[0] += t.elapsed();
            let t = std::time::Instant::now();
            sizes[1] += zstd::bulk::compress(&bin, 1).unwrap().len();
            times[1] += t.elapsed();
            let t = std::time::Instant::now();
            sizes[2] += zstd::bulk::compress(&bin, 3).unwrap().len();
            times[2] += t.elapsed();
            let t = std::time::Instant::now();
            sizes[3] += lz4_flex::compress_prepend_size(&bin).len();
            times[3] += t.elapsed();
            let t = std::time::Instant::now();
            sizes[4] += lz4_flex::compress_prepend_size(&json).len();
            times[4] += t.elapsed();
        }
        let n = events.len() as f64;
        for (i, name) in [
            "json+zstd1",
            "bincode+zstd1",
            "bincode+zstd3",
            "bincode+lz4",
            "json+lz4",
        ]
        .iter()
        .enumerate()
        {
            println!(
                "block {block:4} {name:14} {:6.1} B/event {:6.2} us/event to compress",
                sizes[i] as f64 / n,
                times[i].as_secs_f64() * 1e6 / n
            );
        }
    }
}

#[test]
fn the_store_can_move_to_a_writer_thread() {
    fn send<T: Send>() {}
    send::<EvidenceStore>();
    send::<BlockCursor>();
}
