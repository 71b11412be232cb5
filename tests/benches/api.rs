//! The HTTP API under load: latency of the two heaviest reads with 64 concurrent clients over
//! loopback TCP with a bearer token, each both uncompressed and gzip-encoded, and the memory the
//! API adds to the agent. Targets: GET of a 200-entry profile and GET of a 200-proposal review
//! queue p99 ≤ 5 ms; the API adds ≤ 5 MB.
//!
//! The bench seeds a fresh store with a 200-entry profile (80 execs with arguments, 60 files,
//! 40 connects, 20 listens) and 200 pending review proposals for the workload of a small test
//! cgroup, then starts `baseliner run` (the build beside this bench: `target/release/baseliner`)
//! twice on that store, one after the other, watching only that cgroup:
//! 1. without `[api] listen`: its VmRSS once settled is the baseline (the unix-socket API is
//!    there in both runs; the TCP listener, its connections and the load are the difference);
//! 2. with `[api] listen` on a free 127.0.0.1 port and an admin bearer token: VmRSS once
//!    settled (idle), then, after single checked calls (200 answers, 200 entries, 200
//!    proposals, 401 without a token, and with `Accept-Encoding: gzip` a gzip answer that
//!    decompresses to the uncompressed one), `wrk -t2 -c64 --latency` against each URL twice,
//!    as sent (wrk asks for no encoding) and with `-H "Accept-Encoding: gzip"` (as browsers,
//!    `curl --compressed` and most HTTP clients do), each after a short warm-up run; then VmRSS
//!    after the load and the peak (VmHWM).
//!
//! wrk does not decode answers; the bytes it read per answer (its `read` total over its
//! request count) show that the loaded gzip answers were the compressed ones. The bench also
//! prints what gzip levels 1, 6 and 9 make of each body and how long they take here (flate2,
//! as the agent; the agent compresses each cached answer once, at [`api::cache::GZIP_LEVEL`]).
//!
//! Needs root and `wrk` (Debian package `wrk`). Build the agent first:
//! `cargo build --release -p learner`, then `cargo bench -p baseliner-tests --bench api`.
//! Environment: `BENCH_SECS` (each measured wrk run, default 10; 3 under `CI=true`),
//! `BENCH_WARMUP_SECS` (default 2; 1 under CI), `BENCH_CLIENTS` (wrk connections, default 64),
//! `BENCH_SETTLE_MS` (before each memory reading, default 3000), `WRK` (the wrk binary).
//!
//! The figures are printed, not enforced (the machine is shared and noisy): the bench fails
//! only when something does not work — an agent that does not start or exits with failure, a
//! wrong answer (a gzip answer that is not the uncompressed one compressed), wrk failing, any
//! non-2xx answer or socket error under load, gzip runs reading as much per answer as the
//! uncompressed body.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use baseliner_tests::{
    LearnAgent, TestCgroup, bench_main, env_num, free_port, http_call, proc_status_kib,
};
use profiles::{
    Access, Event, Family, Protocol,
    learning::Learning,
    model::{EntryKind, ExecEntry, FileEntry, NetEntry, Profile, Seen},
    review,
    store::{ProfileKey, Store, StoredProfile},
};
use serde_json::{Value, json};

/// The latency target: p99 of each URL.
const TARGET_P99_MS: f64 = 5.0;
/// The memory target: what the TCP API may add to the agent.
const TARGET_MB: f64 = 5.0;
/// Entries of the seeded profile, by kind.
const EXECS: usize = 80;
const FILES: usize = 60;
const CONNECTS: usize = 40;
const LISTENS: usize = 20;
/// Pending proposals seeded in the review queue.
const PROPOSALS: usize = 200;
/// wrk threads.
const WRK_THREADS: u32 = 2;
/// One second in nanoseconds.
const S: u64 = 1_000_000_000;

fn main() -> ExitCode {
    // cargo passes `--bench`; nothing else is taken from the command line.
    bench_main("api bench", bench)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A lower-case name for `i` made only of letters (generalisation turns digits into `<num>`,
/// so names with digits could collapse into one pattern).
fn word(i: usize) -> String {
    let mut n = i;
    let mut out = String::new();
    loop {
        out.insert(0, char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
        n -= 1;
    }
    format!("x{out}")
}

/// The seeded profile: 80 execs with arguments, 60 files, 40 connects and 20 listens.
fn seeded_profile(now: u64) -> Profile {
    let seen = |i: usize| Seen {
        count: 1 + i as u64 % 7,
        first_ns: now - 3600 * S + i as u64 * S,
        last_ns: now - 60 * S + i as u64,
    };
    let mut p = Profile::default();
    for i in 0..EXECS {
        let w = word(i);
        p.execs.insert(
            ExecEntry {
                path: format!("/opt/app/bin/{w}"),
                args: Some(vec![
                    "--config".into(),
                    format!("/etc/app/{w}.conf"),
                    "--workers".into(),
                    "<num>".into(),
                ]),
            },
            seen(i),
        );
    }
    let access = [Access::Read, Access::Write, Access::Create];
    for i in 0..FILES {
        p.files.insert(
            FileEntry {
                path: format!("/var/lib/app/{}/data.db", word(i)),
                access: access[i % 3],
            },
            seen(i),
        );
    }
    for i in 0..CONNECTS {
        p.connects.insert(
            NetEntry {
                family: Family::Inet,
                protocol: Protocol::Tcp,
                addr: format!("10.1.{}.{}", i / 200, i % 200 + 1),
                port: 5432,
            },
            seen(i),
        );
    }
    for i in 0..LISTENS {
        p.listens.insert(
            NetEntry {
                family: Family::Inet6,
                protocol: Protocol::Tcp,
                addr: "::".into(),
                port: 8000 + i as u16,
            },
            seen(i),
        );
    }
    p
}

/// The `i`th deviating event of `workload` (cgroup `cgroup_id`): execs, opens, connects and
/// listens in turn, each a distinct entry none of the others generalises into.
fn deviation(workload: &str, cgroup_id: u64, i: usize, ts_ns: u64) -> Result<Event> {
    let w = word(i);
    let mut ev = json!({
        "schema": 1,
        "ts_ns": ts_ns,
        "workload": {"id": workload, "cgroup_id": cgroup_id, "cgroup": workload},
        "pid": 4000 + i,
        "tid": 4000 + i,
        "ppid": 1,
        "uid": 0,
        "gid": 0,
        "comm": "app",
        "exe": "/opt/app/bin/app",
    });
    let detail = match i % 4 {
        0 => json!({"kind": "exec", "filename": format!("/usr/local/bin/{w}"),
                    "argv": [w, "--fetch", format!("https://example.org/{w}.sh")],
                    "argv_truncated": false}),
        1 => json!({"kind": "open", "path": format!("/etc/app/secrets/{w}.key"), "flags": 0,
                    "access": "read"}),
        2 => json!({"kind": "connect", "family": "inet", "protocol": "tcp",
                    "addr": format!("192.0.2.{}", i / 4 + 1), "port": 4444}),
        _ => json!({"kind": "listen", "family": "inet", "protocol": "tcp",
                    "addr": "0.0.0.0", "port": 20000 + i}),
    };
    if let (Some(obj), Value::Object(d)) = (ev.as_object_mut(), detail) {
        obj.extend(d);
    }
    serde_json::from_value(ev).context("building a deviating event")
}

/// Seeds `dir` (a new store) with the profile and the review queue of `workload`.
fn seed(dir: &Path, workload: &str, cgroup_id: u64) -> Result<()> {
    let store = Store::open(dir).context("opening the store")?;
    let now = now_ns();
    let mut learning = Learning::new(now - 3600 * S);
    learning.changed(
        &[
            EntryKind::Exec,
            EntryKind::File,
            EntryKind::Connect,
            EntryKind::Listen,
        ],
        now - 60 * S,
    );
    let stored = StoredProfile {
        profile: seeded_profile(now),
        learning,
    };
    ensure!(
        stored.profile.len() == EXECS + FILES + CONNECTS + LISTENS,
        "the seeded profile has {} entries",
        stored.profile.len()
    );
    let key = ProfileKey::new(workload, "r1")?;
    store.save_batch([(&key, &stored)])?;
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..PROPOSALS {
        let event = deviation(workload, cgroup_id, i, now - 30 * S + i as u64 * 1000)?;
        for entry in profiles::model::event_entries(&event) {
            let p = review::observe(&store, workload, &entry, &event, Some("alert-key"))?;
            ids.insert(p.id);
        }
    }
    ensure!(
        ids.len() == PROPOSALS,
        "seeding gave {} distinct proposals, not {PROPOSALS}",
        ids.len()
    );
    store.flush()?;
    Ok(())
}

/// What one wrk run reported.
#[derive(Debug, Default)]
struct Wrk {
    /// Latency percentiles (ms) by percent: 50, 75, 90, 99.
    pct: Vec<(u32, f64)>,
    /// The largest latency (ms), from the thread stats.
    max_ms: f64,
    rps: f64,
    requests: u64,
    /// Bytes read in all (wrk's rounded total: headers and bodies).
    read_bytes: f64,
    /// Socket errors: connect, read, write, timeout.
    socket_errors: [u64; 4],
    non_2xx: u64,
}

impl Wrk {
    /// Bytes read per answer, headers included.
    fn bytes_per_answer(&self) -> f64 {
        self.read_bytes / self.requests as f64
    }

    fn p(&self, percent: u32) -> f64 {
        self.pct
            .iter()
            .find(|(p, _)| *p == percent)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

/// A wrk duration ("812.00us", "1.23ms", "1.02s", "1.50m", "1.00h") in milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let units = [
        ("us", 1e-3),
        ("ms", 1.0),
        ("s", 1e3),
        ("m", 60e3),
        ("h", 3600e3),
    ];
    units.iter().find_map(|(u, f)| {
        let n: f64 = s.strip_suffix(u)?.parse().ok()?;
        Some(n * f)
    })
}

/// A wrk size ("512B", "1.23KB", "4.56MB", "7.89GB"; powers of 1024) in bytes.
fn wrk_bytes(s: &str) -> Option<f64> {
    let units = [
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    units.iter().find_map(|(u, f)| {
        let n: f64 = s.strip_suffix(u)?.parse().ok()?;
        Some(n * f)
    })
}

/// Parses wrk's `--latency` report.
fn parse_wrk(out: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    let mut in_dist = false;
    for line in out.lines() {
        let t = line.trim();
        let fields: Vec<&str> = t.split_whitespace().collect();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let [p, v] = fields[..]
                && let Some(p) = p.strip_suffix('%').and_then(|p| p.parse::<f64>().ok())
            {
                let v = wrk_ms(v).with_context(|| format!("wrk latency {v:?}"))?;
                w.pct.push((p as u32, v));
                continue;
            }
            in_dist = false;
        }
        match fields[..] {
            ["Latency", _avg, _stdev, max, ..] => {
                w.max_ms = wrk_ms(max).with_context(|| format!("wrk max latency {max:?}"))?;
            }
            ["Requests/sec:", v] => w.rps = v.parse().context("wrk requests/sec")?,
            [n, "requests", "in", _, read, "read"] => {
                w.requests = n.parse().context("wrk request count")?;
                w.read_bytes =
                    wrk_bytes(read).with_context(|| format!("wrk bytes read {read:?}"))?;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                w.non_2xx = n.parse().context("wrk non-2xx count")?;
            }
            ["Socket", "errors:", ..] => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                let nums: Vec<u64> = fields[2..]
                    .chunks(2)
                    .filter_map(|c| c.get(1)?.trim_end_matches(',').parse().ok())
                    .collect();
                ensure!(nums.len() == 4, "unexpected wrk line {t:?}");
                w.socket_errors.copy_from_slice(&nums);
            }
            _ => {}
        }
    }
    ensure!(
        [50, 75, 90, 99]
            .iter()
            .all(|p| w.pct.iter().any(|(q, _)| q == p)),
        "no latency distribution in wrk's output:\n{out}"
    );
    ensure!(w.requests > 0, "wrk made no requests:\n{out}");
    ensure!(w.read_bytes > 0.0, "no bytes read in wrk's output:\n{out}");
    Ok(w)
}

/// Runs wrk for `secs` against `url` (with `Accept-Encoding: gzip` when `gzip`); fails on wrk
/// errors, non-2xx answers or socket errors.
fn run_wrk(url: &str, token: &str, gzip: bool, clients: u32, secs: u64) -> Result<Wrk> {
    let wrk = std::env::var("WRK").unwrap_or_else(|_| "wrk".into());
    let mut cmd = Command::new(&wrk);
    cmd.arg(format!("-t{}", WRK_THREADS.min(clients)))
        .arg(format!("-c{clients}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"));
    if gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    let out = cmd
        .arg(url)
        .output()
        .with_context(|| format!("running {wrk} (Debian package `wrk`)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let w = parse_wrk(&stdout)?;
    ensure!(
        w.non_2xx == 0,
        "{} of {} answers were not 2xx/3xx:\n{stdout}",
        w.non_2xx,
        w.requests
    );
    ensure!(
        w.socket_errors == [0; 4],
        "wrk socket errors (connect, read, write, timeout) {:?}:\n{stdout}",
        w.socket_errors
    );
    Ok(w)
}

/// GETs `path` with the token; the body, parsed, and its size. Fails unless 200.
fn get_json(port: u16, path: &str, token: &str) -> Result<(Value, usize)> {
    let (code, body) =
        http_call(port, "GET", path, Some(token), None).with_context(|| format!("GET {path}"))?;
    ensure!(code == 200, "GET {path}: {code} {body}");
    let v = serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))?;
    Ok((v, body.len()))
}

/// One answer as sent: status, headers (lower-case names) and the raw body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GETs `path` with the token and `Accept-Encoding: accept` when given (HTTP/1.0, so the body
/// ends with the connection); the answer as sent, not decoded.
fn get_raw(port: u16, path: &str, token: &str, accept: Option<&str>) -> Result<RawAnswer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connecting")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let accept = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n{accept}\r\n"
    )
    .with_context(|| format!("sending GET {path}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("GET {path}: no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path}: no status in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(RawAnswer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .context("decompressing a gzip answer")?;
    Ok(out)
}

/// Checks that `path` asked with `Accept-Encoding: gzip` comes gzip-encoded, with `Vary`, and
/// decompresses to the uncompressed answer; the size of the gzip body. (The cached answer may be
/// rebuilt between two calls, with times relative to now moved, so the gzip answer is compared
/// with the uncompressed answers just before and after it, and the check is tried three times.)
fn check_gzip(port: u16, path: &str, token: &str) -> Result<usize> {
    let mut last = String::new();
    for _ in 0..3 {
        let before = get_raw(port, path, token, None)?;
        let gz = get_raw(port, path, token, Some("gzip"))?;
        let after = get_raw(port, path, token, None)?;
        for a in [&before, &gz, &after] {
            ensure!(a.status == 200, "GET {path}: {}", a.status);
            ensure!(
                a.header("vary")
                    .is_some_and(|v| v.eq_ignore_ascii_case("accept-encoding")),
                "GET {path}: no Vary: Accept-Encoding in {:?}",
                a.headers
            );
        }
        ensure!(
            before.header("content-encoding").is_none(),
            "GET {path} without Accept-Encoding came encoded: {:?}",
            before.headers
        );
        ensure!(
            gz.header("content-encoding") == Some("gzip"),
            "GET {path} with Accept-Encoding: gzip came as {:?}",
            gz.headers
        );
        let plain = gunzip(&gz.body).with_context(|| format!("GET {path}"))?;
        if plain == before.body || plain == after.body {
            return Ok(gz.body.len());
        }
        last = format!(
            "{} bytes decompressed, {} and {} uncompressed",
            plain.len(),
            before.body.len(),
            after.body.len()
        );
    }
    anyhow::bail!("GET {path}: the gzip answer is not the uncompressed answer ({last})")
}

/// What gzip makes of one body at one level here: compressed bytes and the median time.
struct Level {
    level: u32,
    bytes: usize,
    micros: f64,
}

/// `body` compressed at levels 1, 6 and 9 (median of 21 runs each).
fn gzip_levels(body: &[u8]) -> Result<Vec<Level>> {
    [1, 6, 9]
        .into_iter()
        .map(|level| {
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..21 {
                let t = Instant::now();
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                enc.write_all(body)?;
                bytes = enc.finish()?.len();
                times.push(t.elapsed().as_secs_f64() * 1e6);
            }
            times.sort_by(f64::total_cmp);
            Ok(Level {
                level,
                bytes,
                micros: times[times.len() / 2],
            })
        })
        .collect()
}

/// Waits until something accepts on 127.0.0.1:`port` (no request is sent).
fn wait_listening(port: u16, agent: &LearnAgent) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        ensure!(
            Path::new(&format!("/proc/{}", agent.pid())).exists(),
            "the agent exited before serving on port {port}"
        );
        ensure!(
            Instant::now() < until,
            "the agent does not serve on 127.0.0.1:{port}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// VmRSS and VmHWM (KiB) of `pid`.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let rss = proc_status_kib(pid, "VmRSS").context("reading the agent's VmRSS")?;
    let hwm = proc_status_kib(pid, "VmHWM").context("reading the agent's VmHWM")?;
    Ok((rss, hwm))
}

/// Stops the agent; fails (with its log) unless it exited successfully.
fn stop(agent: LearnAgent, what: &str) -> Result<()> {
    let (status, log) = agent.stop().with_context(|| format!("stopping {what}"))?;
    ensure!(
        status.success(),
        "{what} exited with {status}:\n{}",
        log.join("\n")
    );
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mb_diff(a: u64, b: u64) -> f64 {
    (a as f64 - b as f64) / 1024.0
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Everything measured, printed at the end.
struct Figures {
    base: (u64, u64),
    idle: (u64, u64),
    loaded: (u64, u64),
    /// Per URL and encoding: what it is, its path, the size of one answer and wrk's report.
    runs: Vec<Run>,
    /// Per URL: what gzip levels make of its body.
    levels: Vec<(&'static str, usize, Vec<Level>)>,
}

/// One loaded URL in one encoding.
struct Run {
    what: &'static str,
    path: String,
    /// Sent with `Accept-Encoding: gzip`.
    gzip: bool,
    /// The body of one answer as sent (compressed when `gzip`).
    bytes: usize,
    wrk: Wrk,
}

impl Run {
    fn encoding(&self) -> &'static str {
        if self.gzip { "gzip" } else { "identity" }
    }
}

fn bench() -> Result<ExitCode> {
    if !baseliner_tests::live_enabled("api") {
        return Ok(ExitCode::SUCCESS);
    }
    let ci = baseliner_tests::in_ci();
    let secs: u64 = env_num("BENCH_SECS", if ci { 3 } else { 10 })?;
    let warmup: u64 = env_num("BENCH_WARMUP_SECS", if ci { 1 } else { 2 })?;
    let clients: u32 = env_num("BENCH_CLIENTS", 64)?;
    let settle = Duration::from_millis(env_num("BENCH_SETTLE_MS", 3000)?);
    ensure!(
        secs > 0 && clients > 0,
        "BENCH_SECS and BENCH_CLIENTS must be positive"
    );

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    println!("baseliner API under load (wrk over loopback TCP, bearer token)");
    println!(
        "agent {}; kernel {}; {cpus} CPUs (load average {}); wrk -t{} -c{clients} -d{secs}s (warm-up {warmup}s)",
        baseliner_tests::baseliner_bin().display(),
        kernel.trim(),
        loadavg.join(" "),
        WRK_THREADS.min(clients)
    );

    let dir = baseliner_tests::temp_dir("api-bench");
    let result = run(&dir, secs, warmup, clients, settle);
    let _ = std::fs::remove_dir_all(&dir);
    let figures = result?;
    report(&figures, clients);
    Ok(ExitCode::SUCCESS)
}

fn run(dir: &Path, secs: u64, warmup: u64, clients: u32, settle: Duration) -> Result<Figures> {
    let store = dir.join("store");
    let cg = TestCgroup::new("api").context("creating a cgroup")?;
    seed(&store, &cg.rel, cg.id).context("seeding the store")?;

    let token = api::auth::new_token().context("making a token")?;
    let tokens = format!(
        "[[api.tokens]]\nname = \"bench\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        api::auth::token_sha256(&token)
    );
    let port = free_port();
    let without = dir.join("without-tcp.toml");
    let with = dir.join("with-tcp.toml");
    std::fs::write(&without, format!("[api]\n{tokens}"))?;
    std::fs::write(
        &with,
        format!("[api]\nlisten = \"127.0.0.1:{port}\"\n{tokens}"),
    )?;
    let path = |p: &Path| p.to_str().context("temp dir path").map(str::to_string);

    // 1. Without the TCP API: the baseline.
    let agent = LearnAgent::start(&store, &[&cg.path], &["--config", &path(&without)?])
        .context("starting the agent without the TCP API")?;
    thread::sleep(settle);
    let base = memory(agent.pid());
    stop(agent, "the agent without the TCP API")?;
    let base = base?;

    // 2. With the TCP API.
    let agent = LearnAgent::start(&store, &[&cg.path], &["--config", &path(&with)?])
        .context("starting the agent with the TCP API")?;
    let measured = (|| {
        wait_listening(port, &agent)?;
        thread::sleep(settle);
        let idle = memory(agent.pid())?;
        let (runs, levels) = load(port, &cg.rel, &token, secs, warmup, clients)?;
        thread::sleep(Duration::from_secs(1));
        let loaded = memory(agent.pid())?;
        Ok::<_, anyhow::Error>((idle, loaded, runs, levels))
    })();
    stop(agent, "the agent with the TCP API")?;
    let (idle, loaded, runs, levels) = measured?;
    drop(cg);
    Ok(Figures {
        base,
        idle,
        loaded,
        runs,
        levels,
    })
}

/// Checks single calls, then loads each URL with wrk, uncompressed and gzip-encoded; per URL
/// and encoding its body size and wrk's report, and per URL what gzip levels make of its body.
#[allow(clippy::type_complexity)]
fn load(
    port: u16,
    workload: &str,
    token: &str,
    secs: u64,
    warmup: u64,
    clients: u32,
) -> Result<(Vec<Run>, Vec<(&'static str, usize, Vec<Level>)>)> {
    let segment = api::workload_segment(workload);
    let profile_path = format!("/v1/workloads/{segment}/profile");
    let reviews_path = format!("/v1/reviews?workload={segment}");

    let (code, body) = http_call(port, "GET", &profile_path, None, None)
        .context("GET of the profile without a token")?;
    ensure!(
        code == 401,
        "GET {profile_path} without a token answered {code}: {body}"
    );
    let (profile, profile_bytes) = get_json(port, &profile_path, token)?;
    let entries: usize = ["execs", "lineage", "files", "connects", "listens"]
        .iter()
        .map(|k| profile["profile"][k].as_array().map_or(0, Vec::len))
        .sum();
    ensure!(
        entries == EXECS + FILES + CONNECTS + LISTENS,
        "the profile served has {entries} entries"
    );
    let (reviews, reviews_bytes) = get_json(port, &reviews_path, token)?;
    let proposals = reviews.as_array().map_or(0, Vec::len);
    ensure!(
        proposals == PROPOSALS,
        "the review queue served has {proposals} proposals"
    );

    let profile_gzip = check_gzip(port, &profile_path, token)?;
    let reviews_gzip = check_gzip(port, &reviews_path, token)?;

    let mut levels = Vec::new();
    for (what, path) in [("profile", &profile_path), ("reviews", &reviews_path)] {
        let body = get_raw(port, path, token, None)?.body;
        levels.push((what, body.len(), gzip_levels(&body)?));
    }

    let mut runs = Vec::new();
    let urls = [
        (
            "profile (200 entries)",
            profile_path,
            profile_bytes,
            profile_gzip,
        ),
        (
            "reviews (200 proposals)",
            reviews_path,
            reviews_bytes,
            reviews_gzip,
        ),
    ];
    for (what, path, identity_bytes, gzip_bytes) in urls {
        let url = format!("http://127.0.0.1:{port}{path}");
        for gzip in [false, true] {
            let enc = if gzip { "gzip" } else { "identity" };
            if warmup > 0 {
                run_wrk(&url, token, gzip, clients, warmup)
                    .with_context(|| format!("warm-up of {path} ({enc})"))?;
            }
            let wrk = run_wrk(&url, token, gzip, clients, secs)
                .with_context(|| format!("loading {path} ({enc})"))?;
            // wrk does not decode: gzip answers read under load must be the compressed ones
            // (headers are a few hundred bytes; wrk's total is rounded to 3 digits).
            ensure!(
                !gzip || wrk.bytes_per_answer() < (gzip_bytes + 2048) as f64,
                "loading {path} with Accept-Encoding: gzip read {:.0} bytes per answer, more than the {gzip_bytes}-byte gzip body",
                wrk.bytes_per_answer()
            );
            ensure!(
                gzip || wrk.bytes_per_answer() > identity_bytes as f64 * 0.98,
                "loading {path} read {:.0} bytes per answer, less than the {identity_bytes}-byte body",
                wrk.bytes_per_answer()
            );
            runs.push(Run {
                what,
                path: path.clone(),
                gzip,
                bytes: if gzip { gzip_bytes } else { identity_bytes },
                wrk,
            });
        }
    }
    Ok((runs, levels))
}

fn report(f: &Figures, clients: u32) {
    println!();
    println!(
        "| GET ({clients} clients) | encoding | body bytes | read per answer | requests | requests/s | p50 ms | p75 ms | p90 ms | p99 ms | max ms | p99 ≤ {TARGET_P99_MS} ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for run in &f.runs {
        let Run {
            what,
            bytes,
            wrk: w,
            ..
        } = run;
        let p99 = w.p(99);
        println!(
            "| {what} | {} | {bytes} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {p99:.2} | {:.2} | {} |",
            run.encoding(),
            w.bytes_per_answer(),
            w.requests,
            w.rps,
            w.p(50),
            w.p(75),
            w.p(90),
            w.max_ms,
            met(p99 <= TARGET_P99_MS)
        );
    }
    println!();
    println!(
        "| gzip of one body here (the agent uses level {}) | level | bytes | ratio | median µs |",
        api::cache::GZIP_LEVEL
    );
    println!("|---|---:|---:|---:|---:|");
    for (what, identity, levels) in &f.levels {
        for l in levels {
            println!(
                "| {what} ({identity} bytes) | {} | {} | {:.3} | {:.0} |",
                l.level,
                l.bytes,
                l.bytes as f64 / *identity as f64,
                l.micros
            );
        }
    }
    let (base_rss, base_hwm) = f.base;
    let (idle_rss, _) = f.idle;
    let (loaded_rss, peak) = f.loaded;
    println!();
    println!("| agent memory | MB | vs without TCP API |");
    println!("|---|---:|---:|");
    println!(
        "| VmRSS without TCP API (settled) | {:.1} | |",
        mb(base_rss)
    );
    println!("| VmHWM without TCP API | {:.1} | |", mb(base_hwm));
    println!(
        "| VmRSS with TCP API, idle | {:.1} | {:+.1} |",
        mb(idle_rss),
        mb_diff(idle_rss, base_rss)
    );
    println!(
        "| VmRSS with TCP API, after load | {:.1} | {:+.1} |",
        mb(loaded_rss),
        mb_diff(loaded_rss, base_rss)
    );
    println!(
        "| VmHWM with TCP API (peak) | {:.1} | {:+.1} (vs its VmHWM) |",
        mb(peak),
        mb_diff(peak, base_hwm)
    );
    let added = mb_diff(idle_rss, base_rss)
        .max(mb_diff(loaded_rss, base_rss))
        .max(mb_diff(peak, base_hwm));
    println!();
    for run in &f.runs {
        let Run {
            what, path, wrk: w, ..
        } = run;
        let p99 = w.p(99);
        println!(
            "GET {what} {path} ({}) p99 {p99:.2} ms: target ≤ {TARGET_P99_MS} ms {}",
            run.encoding(),
            met(p99 <= TARGET_P99_MS)
        );
    }
    println!(
        "memory the API adds (largest of idle, after load, peak vs peak) {added:+.1} MB: target ≤ {TARGET_MB} MB {}",
        met(added <= TARGET_MB)
    );
}
