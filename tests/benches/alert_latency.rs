//! Alert latency: how long after a deviating event its alert reaches a webhook receiver (and the
//! `--alerts-jsonl` output). Target: live event → alert p99 ≤ 10 ms.
//!
//! `baseliner run` watches a workload in its own cgroup, delivering to a webhook receiver on
//! 127.0.0.1 run by this bench (it answers 200 and notes the arrival time of each alert), and
//! writing `--alerts-jsonl` to a FIFO this bench reads (so the line's arrival time is exact). A
//! small long-lived actor in the cgroup (this binary re-executed with `__actor`) learns briefly
//! (its start and one loopback connect), the workload is switched to alert mode, then the actor
//! connects to a distinct unused loopback port for each deviation: each is a new network
//! destination, hence a new alert (its own key; novelty of a connect scores low, which is raised
//! and delivered). The actor notes the wall-clock time just before each connect.
//!
//! Latency per alert = arrival − the event's `ts_ns` in the alert (the kernel-side time of the
//! event, as the agent saw it); the actor-side view (arrival − the actor's clock before the
//! connect) is shown too. Warm-up deviations (the first alert pays one-time costs such as
//! reading the profile) are reported apart.
//!
//! Needs root. Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench alert_latency`. Environment: `BENCH_DEVIATIONS`
//! (default 200; 20 under `CI=true`), `BENCH_SPACING_MS` (between deviations, default 30),
//! `BENCH_WARMUP` (deviations before the measured ones, default 3). Exits with failure when a
//! deviation raised no alert within 2 s; the latency target itself is reported, not enforced
//! (the machine is shared and noisy).

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, ExitCode, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail, ensure};
use baseliner_tests::{LearnAgent, TestCgroup, bench_main, env_num, free_port, set_mode};
use serde_json::Value;

/// The target: p99 of event → alert at the receiver.
const TARGET_P99_MS: f64 = 10.0;
/// A deviation without an alert this long after it counts as missed.
const MISSED_AFTER: Duration = Duration::from_secs(2);
const SECRET: &str = "alert-latency-bench";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__actor") {
        return bench_main("alert_latency actor", actor);
    }
    // Anything else (cargo passes `--bench`) is ignored.
    bench_main("alert_latency bench", bench)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The actor, inside the workload's cgroup: for each line `connect PORT` on stdin, notes the
/// wall-clock time, connects to 127.0.0.1:PORT (refused or not) and answers the time noted.
fn actor() -> Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let Some(port) = line.strip_prefix("connect ") else {
            bail!("unknown actor command {line:?}");
        };
        let port: u16 = port.trim().parse()?;
        let t = now_ns();
        let _ = TcpStream::connect(("127.0.0.1", port));
        writeln!(out, "{t}")?;
        out.flush()?;
    }
    Ok(())
}

/// The actor process and its pipes.
struct Actor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Actor {
    fn start(cg: &TestCgroup) -> Result<Actor> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = cg
            .command(exe)
            .arg("__actor")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the actor")?;
        let stdin = child.stdin.take().context("actor stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("actor stdout")?);
        Ok(Actor {
            child,
            stdin,
            stdout,
        })
    }

    /// Has the actor connect to 127.0.0.1:`port`; the actor's clock just before the connect.
    fn connect(&mut self, port: u16) -> Result<u64> {
        writeln!(self.stdin, "connect {port}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        ensure!(self.stdout.read_line(&mut line)? > 0, "the actor exited");
        line.trim().parse().context("the actor's answer")
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One alert as it arrived: arrival time (Unix ns) and the alert.
type Arrival = (u64, Value);

/// A minimal HTTP receiver on 127.0.0.1 answering every request with 200 and noting when each
/// request's body was complete. Blocking accept, so nothing is added by polling.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
        let port = listener.local_addr()?.port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (got.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for s in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(a) = s.ok().and_then(serve) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(a);
                }
            }
        });
        Ok(Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        })
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one POST, answers 200; the arrival time and the body as JSON.
fn serve(s: TcpStream) -> Option<Arrival> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if !line.starts_with("POST ") {
        return None;
    }
    let mut len = None;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    reader.read_exact(&mut body).ok()?;
    let at = now_ns();
    let mut s = s;
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some((at, serde_json::from_slice(&body).ok()?))
}

/// Reads the agent's `--alerts-jsonl` FIFO on a thread (open blocks until the agent opens it
/// for writing), noting when each line arrived; ends when the agent closes it.
struct JsonlReader {
    got: Arc<Mutex<Vec<Arrival>>>,
    thread: Option<JoinHandle<()>>,
}

impl JsonlReader {
    fn start(fifo: &Path) -> Result<JsonlReader> {
        let c = CString::new(fifo.as_os_str().as_bytes())?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mkfifo {}", fifo.display()));
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let fifo = fifo.to_path_buf();
        let thread = thread::spawn(move || {
            let Ok(f) = std::fs::File::open(&fifo) else {
                return;
            };
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let at = now_ns();
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push((at, v));
                }
                line.clear();
            }
        });
        Ok(JsonlReader {
            got,
            thread: Some(thread),
        })
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Unblocks a reader still waiting for the agent to open the FIFO (the agent failed).
    fn abandon(&mut self, fifo: &Path) {
        if let Some(t) = self.thread.take() {
            if !t.is_finished() {
                // Opening for writing without blocking succeeds once the reader waits; closing
                // it at once gives the reader its end of file.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(fifo);
            }
            let _ = t.join();
        }
    }
}

/// One deviation: the port connected to and the actor's clock before the connect.
struct Deviation {
    port: u16,
    actor_ns: u64,
}

/// The port of a connect alert's event.
fn alert_port(alert: &Value) -> Option<u16> {
    let ev = &alert["event"];
    (ev["kind"] == "connect")
        .then(|| ev["port"].as_u64())
        .flatten()
        .and_then(|p| u16::try_from(p).ok())
}

/// Latencies (ms) of one output, and what is missing.
struct Measured {
    /// arrival − event ts_ns, per alert matched to a measured deviation.
    from_event: Vec<f64>,
    /// arrival − the actor's clock before the connect.
    from_actor: Vec<f64>,
    /// Deviations without an alert within [`MISSED_AFTER`].
    missed: usize,
    /// Alerts of no measured deviation (warm-up ones included), or repeats of one.
    other: usize,
}

fn measure(deviations: &[Deviation], arrivals: &[Arrival]) -> Measured {
    let measured: BTreeSet<u16> = deviations.iter().map(|d| d.port).collect();
    let mut by_port: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut other = 0;
    for (at, alert) in arrivals {
        let (Some(port), Some(ts)) = (alert_port(alert), alert["event"]["ts_ns"].as_u64()) else {
            other += 1;
            continue;
        };
        if !measured.contains(&port) || by_port.insert(port, (*at, ts)).is_some() {
            other += 1;
        }
    }
    let ms = |later: u64, earlier: u64| (later as f64 - earlier as f64) / 1e6;
    let mut m = Measured {
        from_event: Vec::new(),
        from_actor: Vec::new(),
        missed: 0,
        other,
    };
    for d in deviations {
        match by_port.get(&d.port) {
            Some(&(at, ts)) if ms(at, d.actor_ns) <= MISSED_AFTER.as_secs_f64() * 1e3 => {
                m.from_event.push(ms(at, ts));
                m.from_actor.push(ms(at, d.actor_ns));
            }
            _ => m.missed += 1,
        }
    }
    m
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn row(what: &str, v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        s.len(),
        s.first().copied().unwrap_or(f64::NAN),
        pct(&s, 50.0),
        pct(&s, 90.0),
        pct(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN)
    )
}

fn bench() -> Result<ExitCode> {
    if !baseliner_tests::live_enabled("alert_latency") {
        return Ok(ExitCode::SUCCESS);
    }
    let default_n = if baseliner_tests::in_ci() { 20 } else { 200 };
    let n: usize = env_num("BENCH_DEVIATIONS", default_n)?;
    let spacing = Duration::from_millis(env_num("BENCH_SPACING_MS", 30)?);
    let warmup: usize = env_num("BENCH_WARMUP", 3)?;
    ensure!(n > 0, "BENCH_DEVIATIONS must be positive");

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!("baseliner alert latency (event → webhook receiver / --alerts-jsonl)");
    println!(
        "agent {}; kernel {}; {cpus} CPUs; {n} deviations ({warmup} warm-up before), {} ms apart",
        baseliner_tests::baseliner_bin().display(),
        kernel.trim(),
        spacing.as_millis()
    );

    let dir = baseliner_tests::temp_dir("alert-latency");
    let store = dir.join("store");
    let fifo = dir.join("alerts.jsonl");
    let config = dir.join("config.toml");
    let receiver = Receiver::start()?;
    std::fs::write(
        &config,
        format!(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:{}/hook\"\nwebhook_secret = \"{SECRET}\"\n",
            receiver.port
        ),
    )?;
    let mut jsonl = JsonlReader::start(&fifo)?;
    let cg = TestCgroup::new("alert-latency").context("creating a cgroup")?;
    let extra = [
        "--alerts-jsonl",
        fifo.to_str().context("temp dir path")?,
        "--config",
        config.to_str().context("temp dir path")?,
    ];
    let agent = match LearnAgent::start(&store, &[&cg.path], &extra) {
        Ok(a) => a,
        Err(e) => {
            jsonl.abandon(&fifo);
            return Err(e).context("starting the agent");
        }
    };

    // Learning: the actor starts and connects once to a listening port; the profile is written
    // (default flush interval 1 s), then the workload alerts.
    let mut actor = Actor::start(&cg)?;
    let learned = baseliner_tests::loopback_listener();
    actor.connect(learned)?;
    thread::sleep(Duration::from_millis(1500));
    set_mode(&store, &cg.rel, "alert");
    thread::sleep(Duration::from_millis(500));

    // Deviations: each a connect to a distinct unused loopback port.
    let mut used = BTreeSet::from([learned]);
    let mut deviations = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let port = loop {
            let p = free_port();
            if used.insert(p) {
                break p;
            }
        };
        let actor_ns = actor.connect(port)?;
        if i >= warmup {
            deviations.push(Deviation { port, actor_ns });
        }
        thread::sleep(spacing);
    }
    // Waits for the last alerts (or until they count as missed).
    let expected = warmup + n;
    let until = Instant::now() + MISSED_AFTER;
    while Instant::now() < until
        && (receiver.arrivals().len() < expected || jsonl.arrivals().len() < expected)
    {
        thread::sleep(Duration::from_millis(20));
    }
    drop(actor);
    let (status, log) = agent.stop()?;
    jsonl.abandon(&fifo);
    drop(cg);

    let hook = measure(&deviations, &receiver.arrivals());
    let file = measure(&deviations, &jsonl.arrivals());
    drop(receiver);
    let delivery = log
        .iter()
        .find(|l| l.starts_with("alert delivery:"))
        .cloned()
        .unwrap_or_else(|| "alert delivery: (not reported)".into());
    let summary = log
        .iter()
        .find(|l| l.starts_with("recorded "))
        .cloned()
        .unwrap_or_default();

    println!();
    println!("| latency (ms) | alerts | min | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("event ts_ns → webhook", &hook.from_event));
    println!("{}", row("actor clock → webhook", &hook.from_actor));
    println!("{}", row("event ts_ns → --alerts-jsonl", &file.from_event));
    println!("{}", row("actor clock → --alerts-jsonl", &file.from_actor));
    println!();
    println!(
        "deviations without an alert within {} s: webhook {}, --alerts-jsonl {} (of {n}); other alerts: webhook {}, jsonl {}",
        MISSED_AFTER.as_secs(),
        hook.missed,
        file.missed,
        hook.other,
        file.other
    );
    println!("agent: {delivery}");
    if !summary.is_empty() {
        println!("agent: {summary}");
    }
    let mut sorted = hook.from_event.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = pct(&sorted, 99.0);
    println!(
        "event → webhook p99 {p99:.2} ms: target ≤ {TARGET_P99_MS} ms {}",
        if p99 <= TARGET_P99_MS {
            "met"
        } else {
            "MISSED"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(status.success(), "the agent failed: {status}; {log:#?}");
    Ok(if hook.missed > 0 || file.missed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
