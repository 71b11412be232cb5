//! The evidence store (`profiles::evidence`): append throughput, disk use and query latency.
//!
//! Appends `BENCH_EVENTS` (default 1,000,000) events made from every recorded trace under
//! `datasets/traces` to a fresh store: `BENCH_WORKLOADS` (default 20) workloads, each replaying
//! one trace over and over (new pids each time round), interleaved at random over 24 simulated
//! hours, with `flush` called every simulated second as the agent does. Then prints append
//! throughput, the size of the sled directory after `Store::flush`, bytes per event, the
//! latency of `BENCH_QUERIES` (default 50) one-workload one-hour queries, an all-workload
//! one-minute query, a full `read_after` walk (an exporter's read), reopening, and retention of
//! half the data. `BENCH_BLOCK_AGE_S` sets the block age (default: the default config's).
//! No root needed: `cargo bench -p baseliner-tests --bench evidence`. Prints figures; asserts
//! only correctness (counts), never timings.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use baseliner_tests::{bench_main, env_num};
use profiles::{
    Event,
    evidence::{EvidenceQuery, EvidenceStore, RetentionConfig},
    store::Store,
};

const SEC: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SEC;
const T0: u64 = 1_795_000_000 * SEC;

fn main() -> ExitCode {
    bench_main("evidence bench", bench)
}

/// Every event of every recorded trace, one list per trace.
fn traces() -> Result<Vec<Vec<Event>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/traces");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.to_string_lossy().ends_with(".jsonl.gz"));
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        let mut events = Vec::new();
        for line in BufReader::new(flate2::read::GzDecoder::new(f)).lines() {
            let line = line?;
            events.push(
                serde_json::from_str::<Event>(&line)
                    .with_context(|| format!("decoding a line of {}", p.display()))?,
            );
        }
        out.push(events);
    }
    ensure!(!out.is_empty(), "no traces in {}", dir.display());
    Ok(out)
}

/// xorshift64*: a fixed sequence, so every run appends the same events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One workload replaying a trace.
struct Replayer<'a> {
    trace: &'a [Event],
    workload: profiles::Workload,
    next: usize,
    round: u32,
}

impl Replayer<'_> {
    fn event(&mut self, ts_ns: u64) -> Event {
        let mut e = self.trace[self.next].clone();
        e.workload.clone_from(&self.workload);
        e.ts_ns = ts_ns;
        let shift = self.round * 7919;
        e.pid = e.pid.wrapping_add(shift);
        e.tid = e.tid.wrapping_add(shift);
        e.ppid = e.ppid.wrapping_add(shift);
        self.next += 1;
        if self.next == self.trace.len() {
            self.next = 0;
            self.round += 1;
        }
        e
    }
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn bench() -> Result<ExitCode> {
    let n: u64 = env_num("BENCH_EVENTS", 1_000_000)?;
    let workloads: usize = env_num("BENCH_WORKLOADS", 20)?;
    let queries: usize = env_num("BENCH_QUERIES", 50)?;
    let mut config = RetentionConfig::default();
    config.block_age =
        Duration::from_secs(env_num("BENCH_BLOCK_AGE_S", config.block_age.as_secs())?);
    ensure!(
        n > 0 && workloads > 0 && queries > 0,
        "BENCH_EVENTS, BENCH_WORKLOADS and BENCH_QUERIES must be positive"
    );
    let traces = traces()?;
    let lines: usize = traces.iter().map(Vec::len).sum();
    let mut replayers: Vec<Replayer> = (0..workloads)
        .map(|w| {
            let trace = &traces[w % traces.len()];
            let mut workload = trace[0].workload.clone();
            workload.id = format!("{}/replica-{w}", workload.id);
            workload.cgroup.clone_from(&workload.id);
            workload.cgroup_id += 1000 * w as u64;
            Replayer {
                trace,
                workload,
                next: 0,
                round: 0,
            }
        })
        .collect();
    let dir = baseliner_tests::temp_dir("evidence-bench");
    let step = 24 * HOUR / n;
    println!(
        "evidence store: {n} events from {lines} trace lines ({} traces) over {workloads} \
         workloads and 24 simulated hours (one every {:.1} ms); blocks of up to {} events or {} s",
        traces.len(),
        step as f64 / 1e6,
        config.block_events,
        config.block_age.as_secs()
    );

    // Append, in chunks generated ahead so only append and flush are timed.
    let store = Store::open(&dir)?;
    let mut ev = EvidenceStore::open(&store, config.clone())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut appending = Duration::ZERO;
    let mut flushing = Duration::ZERO;
    let mut flushed_blocks = 0;
    let mut worst_append = Duration::ZERO;
    let mut worst_flush = Duration::ZERO;
    let mut next_flush = T0 + SEC;
    let mut chunk = Vec::with_capacity(10_000);
    let mut i = 0;
    while i < n {
        chunk.clear();
        while chunk.len() < 10_000 && i < n {
            // Up to 50 ms of jitter: events reach userspace slightly out of order.
            let ts = T0 + i * step + rng.below(50_000_000);
            let w = rng.below(workloads as u64) as usize;
            chunk.push(replayers[w].event(ts));
            i += 1;
        }
        for e in &chunk {
            let t = Instant::now();
            ev.append(e)?;
            let took = t.elapsed();
            appending += took;
            worst_append = worst_append.max(took);
            while e.ts_ns >= next_flush {
                let t = Instant::now();
                flushed_blocks += ev.flush(next_flush)?;
                let took = t.elapsed();
                flushing += took;
                worst_flush = worst_flush.max(took);
                next_flush += SEC;
            }
        }
    }
    let t = Instant::now();
    ev.flush_all()?;
    let final_flush = t.elapsed();
    let t = Instant::now();
    store.flush()?;
    let sled_flush = t.elapsed();
    let stats = ev.stats()?;
    ensure!(stats.events == n, "stored {} events of {n}", stats.events);
    let disk = dir_size(&dir)?;
    let total = appending + flushing;
    println!(
        "append + flush every simulated second: {:.0} events/s ({:.2} us/event on average); \
         append alone {:.2} us/event (worst {:.2} ms: an append that writes a block); flush {:.0} \
         us per block written ({flushed_blocks} blocks, worst flush call {:.2} ms); then \
         flush_all {:.1} ms, sled flush {:.1} ms",
        n as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / n as f64,
        appending.as_secs_f64() * 1e6 / n as f64,
        ms(worst_append),
        flushing.as_secs_f64() * 1e6 / flushed_blocks.max(1) as f64,
        ms(worst_flush),
        ms(final_flush),
        ms(sled_flush)
    );
    println!(
        "stored: {} blocks ({:.1} events/block), {:.1} MiB of blocks ({:.1} B/event); \
         sled directory {:.1} MiB = {:.1} B/event (target: 1M events in <= 200 MB)",
        stats.blocks,
        stats.events as f64 / stats.blocks as f64,
        mib(stats.bytes),
        stats.bytes as f64 / n as f64,
        mib(disk),
        disk as f64 / n as f64
    );

    // One workload, one hour.
    let mut lat = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..queries {
        let w = rng.below(workloads as u64) as usize;
        let since = T0 + rng.below(24) * HOUR;
        let q = EvidenceQuery {
            workload: Some(replayers[w].workload.id.clone()),
            since_ns: Some(since),
            until_ns: Some(since + HOUR - 1),
            ..Default::default()
        };
        let t = Instant::now();
        let got = ev.query(&q)?;
        lat.push(t.elapsed());
        ensure!(
            got.iter().all(|e| e.workload.id == replayers[w].workload.id
                && e.ts_ns >= since
                && e.ts_ns < since + HOUR),
            "a query returned events it should not"
        );
        counts.push(got.len());
    }
    lat.sort();
    counts.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!(
        "one-workload one-hour query ({queries} random): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (target <= 50 ms); events returned min {} / median {} / max {}",
        ms(pct(50)),
        ms(pct(99)),
        ms(*lat.last().expect("queries")),
        counts[0],
        counts[counts.len() / 2],
        counts[counts.len() - 1]
    );
    let t = Instant::now();
    let got = ev.query(&EvidenceQuery {
        workload: Some(replayers[0].workload.id.clone()),
        kinds: vec!["exec".into(), "connect".into()],
        since_ns: Some(T0 + 6 * HOUR),
        until_ns: Some(T0 + 7 * HOUR),
        ..Default::default()
    })?;
    println!(
        "one-workload one-hour query of exec and connect only: {:.2} ms, {} events",
        ms(t.elapsed()),
        got.len()
    );
    let t = Instant::now();
    let got = ev.query(&EvidenceQuery {
        since_ns: Some(T0 + 12 * HOUR),
        until_ns: Some(T0 + 12 * HOUR + 60 * SEC),
        ..Default::default()
    })?;
    println!(
        "all-workload one-minute query: {:.2} ms, {} events",
        ms(t.elapsed()),
        got.len()
    );

    // An exporter reading everything in batches of 1000.
    let t = Instant::now();
    let mut cursor = None;
    let mut read = 0u64;
    loop {
        let (batch, next) = ev.read_after(cursor, 1000)?;
        if batch.is_empty() {
            break;
        }
        read += batch.len() as u64;
        cursor = next;
    }
    ensure!(read == n, "read_after walked {read} events of {n}");
    let walk = t.elapsed();
    println!(
        "read_after walk of everything in batches of 1000: {:.2} s ({:.0} events/s)",
        walk.as_secs_f64(),
        n as f64 / walk.as_secs_f64()
    );

    // Reopen: counters come from the meta record.
    drop(ev);
    drop(store);
    let t = Instant::now();
    let store = Store::open_waiting(&dir, Duration::from_secs(30))?;
    let ev = EvidenceStore::open(&store, config.clone())?;
    let reopened = ev.stats()?;
    let reopen = t.elapsed();
    ensure!(
        reopened.events == n && reopened.blocks == stats.blocks,
        "after reopening: {reopened:?}"
    );
    println!("reopen (sled recovery + stats): {:.0} ms", ms(reopen));

    // Retention: keep the last 12 hours.
    let mut cfg = config;
    cfg.max_age = Duration::from_secs(12 * 3600);
    drop(ev);
    let mut ev = EvidenceStore::open(&store, cfg)?;
    let t = Instant::now();
    let report = ev.retain(T0 + 24 * HOUR)?;
    let took = t.elapsed();
    store.flush()?;
    let after = ev.stats()?;
    println!(
        "retain(max_age 12 h): removed {} blocks / {} events / {:.1} MiB in {:.0} ms; {} events \
         left; sled directory now {:.1} MiB (sled reclaims space lazily)",
        report.expired_blocks,
        report.expired_events,
        mib(report.bytes_removed),
        ms(took),
        after.events,
        mib(dir_size(&dir)?)
    );
    drop(ev);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
