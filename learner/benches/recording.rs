//! Recording throughput: how many events per second learn mode turns into profile entries.
//!
//! A deterministic, realistic mixed stream (exec with arguments, opens under a few directories
//! including `/proc/<pid>/…` and temporary names, loopback connects, a few listens and events
//! that carry no entry) for `BENCH_WORKLOADS` workloads is generated in chunks outside the timed
//! sections. Most events repeat each workload's stable set, with pids, temp names (`mktemp` and
//! Python `tempfile` style) and ids that generalisation is meant to fold away (entries of the
//! largest profile seen only once are printed: what it did not fold); about one in
//! `BENCH_NOVEL_EVERY` events is a genuinely new entry.
//!
//! Measured on one thread:
//! 1. `Profile::record` alone (the workload's profile is looked up by index);
//! 2. `Recorder::record` with redaction, mode lookup and a sled store in a scratch directory,
//!    flushing on every simulated second (`BENCH_RATE` events of stream = one second), plus the
//!    final flush.
//!
//! Run: `cargo bench -p learner --bench recording`. Environment: `BENCH_EVENTS` (default
//! 1,500,000), `BENCH_WORKLOADS` (50), `BENCH_RATE` (simulated events per second, 200,000: at the
//! persistence target the agent flushes once per that many events), `BENCH_NOVEL_EVERY` (500).
//! Figures are wall-clock on a possibly shared machine; the CPU-time rate is shown beside them.

use std::{
    hint::black_box,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use learner::recorder::Recorder;
use profiles::{
    Access, Endpoint, Event, EventDetail, Family, Protocol, SCHEMA_VERSION, Workload, mode::Mode,
    model::Profile, redact::Redactor, store::Store,
};

/// Target of in-memory recording, events per second on one core.
const TARGET_MEMORY: f64 = 1_000_000.0;
/// Target including persistence, events per second.
const TARGET_PERSISTED: f64 = 200_000.0;
/// Events generated (and recorded) at a time, so the stream never has to be held whole.
const CHUNK: usize = 100_000;
/// Simulated start of the stream (2026-11-25, Unix-epoch nanoseconds).
const START_NS: u64 = 1_795_600_000_000_000_000;

struct Config {
    events: usize,
    workloads: usize,
    rate: u64,
    novel_every: u64,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace(['_', ','], "")
            .parse()
            .map_err(|_| anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env() -> Result<Config> {
        let c = Config {
            events: env_num("BENCH_EVENTS", 1_500_000)?,
            workloads: env_num("BENCH_WORKLOADS", 50)?,
            rate: env_num("BENCH_RATE", 200_000)?,
            novel_every: env_num("BENCH_NOVEL_EVERY", 500)?,
        };
        if c.events == 0 || c.workloads == 0 || c.rate == 0 || c.novel_every == 0 {
            return Err(anyhow!("BENCH_* values must be positive"));
        }
        Ok(c)
    }
}

/// splitmix64: a small deterministic generator, so every run sees the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` characters from `alphabet`.
    fn word(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }

    /// A temporary file name as programs make them: `mktemp` (`tmp.` + 10 of `[A-Za-z0-9]`)
    /// or Python's `tempfile` (`tmp` + 8 of `[a-z0-9_]`).
    fn tmp_name(&mut self) -> String {
        const MKTEMP: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const PYTHON: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
        if self.below(2) == 0 {
            format!("tmp.{}", self.word(MKTEMP, 10))
        } else {
            format!("tmp{}", self.word(PYTHON, 8))
        }
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The shape of one workload: what it runs, reads and talks to.
struct Shape {
    workload: Workload,
    exe: String,
    comm: String,
    app: String,
    port: u16,
    /// Stable configuration / data files (read), with their access.
    files: Vec<(String, Access)>,
    /// Programs the workload starts: path, argv[0], argument templates.
    programs: Vec<(&'static str, &'static str, &'static [&'static str])>,
    /// Loopback destinations.
    dests: Vec<Endpoint>,
    pid_base: u32,
}

const LIBS: &[&str] = &[
    "/etc/ld.so.cache",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
    "/usr/lib/locale/C.utf8/LC_CTYPE",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/localtime",
    "/usr/share/zoneinfo/Etc/UTC",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// Argument templates: `{n}` a number, `{pid}` a pid, `{tmp}` a temp file, `{app}` the app
/// name, `{port}` its port, `{uuid}` a request id, `{secret}` a credential.
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    (
        "/usr/bin/bash",
        "bash",
        &["-c", "/opt/{app}/bin/healthcheck"],
    ),
    (
        "/opt/{app}/bin/healthcheck",
        "healthcheck",
        &["--port", "{port}"],
    ),
    ("/usr/bin/cat", "cat", &["/proc/{pid}/status"]),
    ("/usr/bin/ls", "ls", &["-l", "/var/lib/{app}/data"]),
    (
        "/usr/bin/grep",
        "grep",
        &["-c", "ERROR", "/var/log/{app}/current.log"],
    ),
    ("/usr/bin/sleep", "sleep", &["{n}"]),
    ("/usr/bin/date", "date", &["+%s"]),
    (
        "/usr/bin/gzip",
        "gzip",
        &["-9", "/var/log/{app}/app.log.{n}"],
    ),
    (
        "/usr/bin/curl",
        "curl",
        &[
            "-fsS",
            "-H",
            "Authorization: Bearer {secret}",
            "http://127.0.0.1:{port}/health",
        ],
    ),
    (
        "/usr/bin/psql",
        "psql",
        &[
            "postgresql://app:{secret}@127.0.0.1:5432/{app}",
            "-c",
            "select 1",
        ],
    ),
    (
        "/usr/bin/python3",
        "python3",
        &["/opt/{app}/worker.py", "--job-id={uuid}", "--out", "{tmp}"],
    ),
    (
        "/usr/bin/mv",
        "mv",
        &["{tmp}", "/var/lib/{app}/data/report-{n}.json"],
    ),
];

fn expand(template: &str, shape: &Shape, pid: u32, rng: &mut Rng) -> String {
    let mut out = template
        .replace("{app}", &shape.app)
        .replace("{port}", &shape.port.to_string());
    if out.contains("{n}") {
        out = out.replace("{n}", &(1 + rng.below(30)).to_string());
    }
    if out.contains("{pid}") {
        out = out.replace("{pid}", &pid.to_string());
    }
    if out.contains("{tmp}") {
        out = out.replace("{tmp}", &format!("/tmp/{}", rng.tmp_name()));
    }
    if out.contains("{uuid}") {
        out = out.replace("{uuid}", &rng.uuid());
    }
    if out.contains("{secret}") {
        out = out.replace("{secret}", &format!("s3cr3t{:x}", rng.next()));
    }
    out
}

fn loopback(protocol: Protocol, port: u16) -> Endpoint {
    Endpoint {
        family: Family::Inet,
        protocol,
        addr: "127.0.0.1".into(),
        port,
    }
}

fn shapes(n: usize, rng: &mut Rng) -> Vec<Shape> {
    const KINDS: &[(&str, &str, u16)] = &[
        ("/usr/sbin/nginx", "nginx", 8080),
        ("/usr/bin/redis-server", "redis-server", 6379),
        ("/usr/lib/postgresql/15/bin/postgres", "postgres", 5432),
        ("/usr/bin/python3", "gunicorn", 8000),
        ("/usr/bin/java", "java", 9090),
    ];
    (0..n)
        .map(|w| {
            let (exe, comm, base_port) = KINDS[w % KINDS.len()];
            let app = format!("{comm}{w}");
            let cgroup = format!("/system.slice/{app}.service");
            let mut files: Vec<(String, Access)> =
                LIBS.iter().map(|p| (p.to_string(), Access::Read)).collect();
            files.extend(
                (0..12).map(|i| (format!("/etc/{app}/conf.d/{i:02}-site.conf"), Access::Read)),
            );
            files.extend(
                (0..24).map(|i| (format!("/var/lib/{app}/data/table_{i}.db"), Access::Write)),
            );
            files.push((format!("/var/log/{app}/access.log"), Access::Write));
            files.push((format!("/var/log/{app}/error.log"), Access::Write));
            files.push((
                format!("/usr/share/{app}/templates/index.html"),
                Access::Read,
            ));
            let programs = (0..PROGRAMS.len())
                .filter(|_| rng.below(4) != 0)
                .map(|i| PROGRAMS[i])
                .collect();
            let mut dests = vec![
                loopback(Protocol::Tcp, 5432),
                loopback(Protocol::Tcp, 6379),
                loopback(Protocol::Udp, 53),
                Endpoint {
                    family: Family::Unix,
                    protocol: Protocol::Stream,
                    addr: "/run/systemd/journal/stdout".into(),
                    port: 0,
                },
            ];
            dests.push(loopback(Protocol::Tcp, 9100 + (w % 7) as u16));
            Shape {
                workload: Workload {
                    id: cgroup.clone(),
                    cgroup_id: 10_000 + w as u64,
                    cgroup,
                    runtime: None,
                    container_id: None,
                    pod_uid: None,
                    unit: Some(format!("{app}.service")),
                    k8s: None,
                },
                exe: exe.into(),
                comm: comm.into(),
                app,
                port: base_port + w as u16,
                files,
                programs,
                dests,
                pid_base: 2_000 + 1_000 * w as u32,
            }
        })
        .collect()
}

/// The stream: an endless, deterministic sequence of (workload index, event).
struct Stream {
    rng: Rng,
    shapes: Vec<Shape>,
    emitted: u64,
    rate: u64,
    novel_every: u64,
    novel: u64,
    /// Redacts exec arguments at generation, for `Profile::record` (which expects redacted
    /// argv; the recorder redacts itself).
    redactor: Option<Redactor>,
}

impl Stream {
    fn new(cfg: &Config, pre_redact: bool) -> Stream {
        let mut rng = Rng(0x5eed);
        let shapes = shapes(cfg.workloads, &mut rng);
        Stream {
            rng,
            shapes,
            emitted: 0,
            rate: cfg.rate,
            novel_every: cfg.novel_every,
            novel: 0,
            redactor: pre_redact.then(Redactor::default),
        }
    }

    /// Simulated time of the next event.
    fn now_ns(&self) -> u64 {
        START_NS + self.emitted * 1_000_000_000 / self.rate
    }

    fn next_event(&mut self) -> (usize, Event) {
        let ts_ns = self.now_ns();
        self.emitted += 1;
        let w = self.rng.below(self.shapes.len() as u64) as usize;
        let rng = &mut self.rng;
        let shape = &self.shapes[w];
        // A few long-lived server processes plus short-lived helpers.
        let spread = if rng.below(4) == 0 { 900 } else { 8 };
        let pid = shape.pid_base + rng.below(spread) as u32;
        let novel = rng.below(self.novel_every) == 0;
        let roll = rng.below(100);
        let (exe, comm, parent_exe, detail) = if novel {
            self.novel += 1;
            let detail = match roll % 3 {
                // A new static asset / data file: a name no rule generalises.
                0 => EventDetail::Open {
                    path: format!("/usr/share/{}/static/page{}.html", shape.app, self.novel),
                    flags: 0,
                    access: Access::Read,
                    path_truncated: false,
                },
                1 => EventDetail::Open {
                    path: format!("/var/lib/{}/data/shard_{}/index", shape.app, self.novel),
                    flags: 0o2,
                    access: Access::Write,
                    path_truncated: false,
                },
                _ => EventDetail::Connect {
                    dest: loopback(Protocol::Tcp, 20_000 + (self.novel % 40_000) as u16),
                },
            };
            (shape.exe.clone(), shape.comm.clone(), None, detail)
        } else if roll < 70 {
            let path = match rng.below(10) {
                0 => format!(
                    "/proc/{pid}/{}",
                    rng.pick(&["stat", "status", "cmdline", "fd", "limits"])
                ),
                1 => format!("/proc/{pid}/task/{}/comm", pid + rng.below(4) as u32),
                2 => format!("/tmp/{}", rng.tmp_name()),
                3 => format!("/run/{}/{}.pid", shape.app, pid),
                4 => format!("/var/tmp/{}-{}.lock", shape.app, rng.uuid()),
                5 => "/proc/self/mountinfo".into(),
                _ => rng.pick(&shape.files).0.clone(),
            };
            let access = if path.starts_with("/tmp/") || path.starts_with("/run/") {
                Access::Create
            } else if path.starts_with("/var/tmp/")
                || path.contains("/data/")
                || path.contains(".log")
            {
                Access::Write
            } else {
                Access::Read
            };
            let flags = match access {
                Access::Read => 0o2_000_000,
                Access::Write => 0o2,
                Access::Create => 0o101,
            };
            let detail = EventDetail::Open {
                path,
                flags,
                access,
                path_truncated: false,
            };
            (shape.exe.clone(), shape.comm.clone(), None, detail)
        } else if roll < 85 && !shape.programs.is_empty() {
            let (path, argv0, args) = *rng.pick(&shape.programs);
            let filename = path.replace("{app}", &shape.app);
            let mut argv = vec![argv0.to_string()];
            argv.extend(args.iter().map(|a| expand(a, shape, pid, rng)));
            if let Some(r) = &self.redactor {
                argv = r.redact_argv(&argv).0;
            }
            let parent = if argv0 == "bash" {
                shape.exe.clone()
            } else {
                "/usr/bin/bash".into()
            };
            let detail = EventDetail::Exec {
                filename: filename.clone(),
                argv,
                argv_truncated: false,
                argv_unknown: false,
            };
            (filename, argv0.into(), Some(parent), detail)
        } else if roll < 98 {
            let dest = rng.pick(&shape.dests).clone();
            (
                shape.exe.clone(),
                shape.comm.clone(),
                None,
                EventDetail::Connect { dest },
            )
        } else {
            let detail = match rng.below(3) {
                0 => EventDetail::Listen {
                    local: Some(loopback(Protocol::Tcp, shape.port)),
                },
                1 => EventDetail::Bind {
                    local: loopback(Protocol::Tcp, 0),
                },
                _ => EventDetail::Setuid {
                    call: "setresuid".into(),
                    ids: vec![Some(33), Some(33), Some(33)],
                },
            };
            (shape.exe.clone(), shape.comm.clone(), None, detail)
        };
        let event = Event {
            schema: SCHEMA_VERSION,
            ts_ns,
            workload: shape.workload.clone(),
            pid,
            tid: pid,
            ppid: shape.pid_base,
            uid: 33,
            gid: 33,
            comm,
            exe: Some(exe),
            parent_exe: parent_exe.or_else(|| Some("/usr/lib/systemd/systemd".into())),
            existing: false,
            blocked: false,
            detail,
        };
        (w, event)
    }

    fn chunk(&mut self, n: usize) -> Vec<(usize, Event)> {
        (0..n).map(|_| self.next_event()).collect()
    }
}

/// CPU time of this process (all threads, including sled's).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall and CPU time accumulated over the timed sections only.
#[derive(Default)]
struct Timer {
    wall: Duration,
    cpu: Duration,
}

impl Timer {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (w, c) = (Instant::now(), process_cpu());
        let out = f();
        self.wall += w.elapsed();
        self.cpu += process_cpu().saturating_sub(c);
        out
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(label: &str, events: usize, t: &Timer, target: f64) {
    let rate = events as f64 / t.wall.as_secs_f64();
    let cpu_rate = events as f64 / t.cpu.as_secs_f64();
    println!(
        "{label}: {} events in {:.3} s = {} events/s ({:.2}× the {} target); per CPU-second {} events/s ({:.2}×)",
        group(events as u64),
        t.wall.as_secs_f64(),
        group(rate as u64),
        rate / target,
        group(target as u64),
        group(cpu_rate as u64),
        cpu_rate / target,
    );
}

fn entries_summary(profiles: &[Profile]) -> String {
    let total: usize = profiles.iter().map(Profile::len).sum();
    let sum = |f: fn(&Profile) -> usize| profiles.iter().map(f).sum::<usize>();
    format!(
        "{} entries in {} profiles (execs {}, lineage {}, files {}, connects {}, listens {}; largest {})",
        group(total as u64),
        profiles.len(),
        sum(|p| p.execs.len()),
        sum(|p| p.lineage.len()),
        sum(|p| p.files.len()),
        sum(|p| p.connects.len()),
        sum(|p| p.listens.len()),
        profiles.iter().map(Profile::len).max().unwrap_or(0),
    )
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One pass of the stream through `Profile::record`; returns the new entries.
fn profile_pass(cfg: &Config, profiles: &mut [Profile], t: &mut Timer) -> usize {
    let mut stream = Stream::new(cfg, true);
    let (mut left, mut new_entries) = (cfg.events, 0usize);
    while left > 0 {
        let chunk = stream.chunk(left.min(CHUNK));
        t.time(|| {
            for (w, e) in &chunk {
                new_entries += black_box(profiles[*w].record(e)).len();
            }
        });
        left -= chunk.len();
    }
    new_entries
}

/// Entries seen exactly once in the largest profile: where generalisation left ids behind.
fn singletons(profiles: &[Profile]) -> Vec<String> {
    let Some(p) = profiles.iter().max_by_key(|p| p.len()) else {
        return Vec::new();
    };
    let files = p.files.iter().filter(|(_, s)| s.count == 1);
    let execs = p.execs.iter().filter(|(_, s)| s.count == 1);
    let mut out: Vec<String> = files
        .map(|(k, _)| format!("file {} ({})", k.path, k.access))
        .take(4)
        .collect();
    out.extend(
        execs
            .map(|(k, _)| format!("exec {} {:?}", k.path, k.args.as_deref().unwrap_or(&[])))
            .take(3),
    );
    out
}

fn bench_profile(cfg: &Config) -> Result<()> {
    let mut profiles = vec![Profile::default(); cfg.workloads];
    let mut t = Timer::default();
    let new_entries = profile_pass(cfg, &mut profiles, &mut t);
    report(
        "(a) Profile::record, in memory, 1 thread, from empty profiles",
        cfg.events,
        &t,
        TARGET_MEMORY,
    );
    println!(
        "    {} new entries; {}",
        group(new_entries as u64),
        entries_summary(&profiles)
    );
    for s in singletons(&profiles) {
        println!("    seen once: {s}");
    }
    let mut t = Timer::default();
    let again = profile_pass(cfg, &mut profiles, &mut t);
    report(
        "(a') the same stream again (steady state: only repeats)",
        cfg.events,
        &t,
        TARGET_MEMORY,
    );
    println!("    {} new entries", group(again as u64));
    Ok(())
}

fn bench_recorder(cfg: &Config, dir: &std::path::Path) -> Result<()> {
    let store = Store::open(&dir.join("store")).context("opening the sled store")?;
    let mut rec = Recorder::new(store, Redactor::default(), Mode::Learn);
    let mut stream = Stream::new(cfg, false);
    let mut t = Timer::default();
    let (mut flushes, mut flushed, mut flush_time, mut flush_max) =
        (0u64, 0usize, Duration::ZERO, Duration::ZERO);
    let mut next_second = START_NS + 1_000_000_000;
    let mut left = cfg.events;
    let mut flush = |rec: &mut Recorder, t: &mut Timer| -> Result<()> {
        let start = Instant::now();
        flushed += t.time(|| rec.flush())?;
        let d = start.elapsed();
        flushes += 1;
        flush_time += d;
        flush_max = flush_max.max(d);
        Ok(())
    };
    while left > 0 {
        let chunk = stream.chunk(left.min(CHUNK));
        left -= chunk.len();
        // Flush points (simulated seconds) inside this chunk, timed with the records.
        let mut events = chunk.into_iter().map(|(_, e)| e).peekable();
        while events.peek().is_some() {
            let mut batch = Vec::new();
            while let Some(e) = events.next_if(|e| e.ts_ns < next_second) {
                batch.push(e);
            }
            t.time(|| -> Result<()> {
                for e in batch {
                    rec.record(e)?;
                }
                Ok(())
            })?;
            if events.peek().is_some() {
                flush(&mut rec, &mut t)?;
                next_second += 1_000_000_000;
            }
        }
    }
    flush(&mut rec, &mut t)?;
    report(
        "(b) Recorder::record + flush every simulated second, sled",
        cfg.events,
        &t,
        TARGET_PERSISTED,
    );
    println!(
        "    {} flushes writing {} profiles in all; flush mean {:.1} ms, max {:.1} ms, {:.1}% of the time; {} recorded, {} secrets redacted",
        flushes,
        group(flushed as u64),
        flush_time.as_secs_f64() * 1e3 / flushes.max(1) as f64,
        flush_max.as_secs_f64() * 1e3,
        100.0 * flush_time.as_secs_f64() / t.wall.as_secs_f64(),
        group(rec.recorded),
        group(rec.redactions),
    );
    let keys = rec.store().keys()?;
    let mut stored = Vec::new();
    for k in &keys {
        if let Some(p) = rec.store().load(k)? {
            stored.push(p.profile);
        }
    }
    drop(rec);
    println!(
        "    store: {}; {:.1} MiB on disk",
        entries_summary(&stored),
        dir_bytes(&dir.join("store")) as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recording bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cfg = Config::from_env()?;
    println!(
        "recording bench: {} events, {} workloads, {} simulated events/s (flush once per simulated second), one novel entry candidate per {} events",
        group(cfg.events as u64),
        cfg.workloads,
        group(cfg.rate),
        cfg.novel_every
    );
    bench_profile(&cfg)?;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("baseliner-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).context("creating a scratch directory")?;
    let result = bench_recorder(&cfg, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
