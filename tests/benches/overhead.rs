//! Capture overhead: how much slower tight loops run while `baseliner capture` watches them.
//!
//! Each loop runs in a child process (this binary re-executed with `__loop ...`) inside a private
//! cgroup2 directory, so the agent's cgroup filter selects it — the realistic case of a
//! monitored workload. Rounds alternate agent off / agent on; medians are compared. The agent's
//! stdout (one JSON event per line) is read and counted by this process, so userspace decoding
//! and serialisation are part of the cost. A final storm with a 4 KiB ring checks that every
//! event the kernel saw is accounted for (emitted, deduplicated or counted as dropped).
//!
//! Needs root. Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench overhead`. Environment: `BENCH_SECONDS` (per
//! measurement, default 2), `BENCH_ROUNDS` (default 3).

use std::{
    ffi::CString,
    fs,
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, TcpListener},
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use baseliner_tests::TestCgroup;

/// Files opened in rotation by the distinct-files loop and the storm.
const DISTINCT_FILES: usize = 2000;
/// How long the agent may take to load and attach its probes.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__loop") {
        return match workload(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("overhead workload failed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Anything else (cargo passes `--bench`) is ignored.
    match bench() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("overhead bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workload side: `__loop <kind> <seconds> [params]`, prints "<ops> <elapsed seconds>".

fn workload(args: &[String]) -> Result<()> {
    let kind = args.first().context("__loop needs a kind")?.as_str();
    let secs: f64 = args
        .get(1)
        .context("__loop needs seconds")?
        .parse()
        .context("seconds")?;
    let params = &args[2.min(args.len())..];
    let run_for = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let ops = match kind {
        "exec" => loop_exec(start, run_for)?,
        "open" => {
            let dir = params.first().context("open needs a directory")?;
            let n: usize = params.get(1).context("open needs a file count")?.parse()?;
            let paths = (0..n)
                .map(|i| CString::new(file_path(Path::new(dir), i).as_os_str().as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            loop_open(start, run_for, &paths)?
        }
        "connect" => {
            let port: u16 = params.first().context("connect needs a port")?.parse()?;
            loop_connect(start, run_for, port)?
        }
        other => bail!("unknown loop {other}"),
    };
    println!("{ops} {}", start.elapsed().as_secs_f64());
    Ok(())
}

fn loop_exec(start: Instant, run_for: Duration) -> Result<u64> {
    let mut ops = 0;
    while start.elapsed() < run_for {
        let st = Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
        ensure!(st.success(), "/bin/true failed: {st}");
        ops += 1;
    }
    Ok(ops)
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn loop_open(start: Instant, run_for: Duration, paths: &[CString]) -> Result<u64> {
    let mut ops: u64 = 0;
    while start.elapsed() < run_for {
        // Check the clock every 32 operations; a clock read is not free next to open+close.
        for _ in 0..32 {
            let p = &paths[(ops as usize) % paths.len()];
            // SAFETY: `p` is a NUL-terminated path; the returned fd is closed right away.
            let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(errno()).with_context(|| format!("opening {p:?}"));
            }
            // SAFETY: `fd` was just opened by us.
            unsafe { libc::close(fd) };
            ops += 1;
        }
    }
    Ok(ops)
}

fn loop_connect(start: Instant, run_for: Duration, port: u16) -> Result<u64> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // Close with a reset (SO_LINGER 0): no TIME_WAIT sockets pile up and exhaust local ports.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let mut ops: u64 = 0;
    while start.elapsed() < run_for {
        for _ in 0..8 {
            // SAFETY: plain socket/connect/setsockopt/close on a descriptor we own, with
            // pointers to live locals and their exact sizes.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(errno()).context("socket");
                }
                let rc = libc::connect(
                    fd,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                if rc != 0 {
                    let e = errno();
                    libc::close(fd);
                    return Err(e).with_context(|| format!("connecting to 127.0.0.1:{port}"));
                }
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
                libc::close(fd);
            }
            ops += 1;
        }
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------------------------
// Bench side.

fn file_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("f{i:04}"))
}

/// A directory of small files, removed on drop.
struct TempFiles {
    dir: PathBuf,
}

impl TempFiles {
    fn create(n: usize) -> Result<TempFiles> {
        let dir = std::env::temp_dir().join(format!("baseliner-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = TempFiles { dir };
        for i in 0..n {
            fs::write(file_path(&files.dir, i), b"baseliner overhead bench\n")?;
        }
        Ok(files)
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A loopback listener that accepts and immediately closes connections, on a thread; its port.
fn start_listener() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1")?;
    // A deep accept queue: a full one drops SYNs and stalls connect() for a 1 s retransmit.
    // Calling listen(2) again on a listening socket only changes its backlog.
    // SAFETY: plain listen(2) on a socket we own.
    unsafe { libc::listen(l.as_raw_fd(), 4096) };
    let port = l.local_addr()?.port();
    thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    Ok(port)
}

#[derive(Clone, Copy, Debug, Default)]
struct KindStats {
    seen: u64,
    emitted: u64,
    deduplicated: u64,
    dropped: u64,
}

impl KindStats {
    fn from_json(v: &serde_json::Value, kind: &str) -> Result<KindStats> {
        let o = v
            .get(kind)
            .with_context(|| format!("no {kind:?} in the statistics"))?;
        let f = |k: &str| {
            o.get(k)
                .and_then(serde_json::Value::as_u64)
                .with_context(|| format!("no {kind}.{k}"))
        };
        Ok(KindStats {
            seen: f("seen")?,
            emitted: f("emitted")?,
            deduplicated: f("deduplicated")?,
            dropped: f("dropped")?,
        })
    }
}

impl std::fmt::Display for KindStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seen {} / emitted {} / deduplicated {} / dropped {}",
            group(self.seen),
            group(self.emitted),
            group(self.deduplicated),
            group(self.dropped)
        )
    }
}

/// What a stopped agent reported.
struct AgentReport {
    stats: serde_json::Value,
    /// Lines read from its stdout (one per event).
    lines: u64,
}

impl AgentReport {
    fn kind(&self, kind: &str) -> Result<KindStats> {
        KindStats::from_json(&self.stats, kind)
    }

    fn counter(&self, key: &str) -> Result<u64> {
        self.stats
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("no {key:?} in the statistics"))
    }
}

/// A running `baseliner capture`; killed on drop if not stopped.
struct Agent {
    child: Option<Child>,
    stdout: Option<JoinHandle<u64>>,
    stderr: Receiver<String>,
    log: Vec<String>,
}

impl Agent {
    /// Starts the agent on `cgroup` and waits until it has attached its probes.
    fn start(bin: &Path, cgroup: &Path, extra: &[&str]) -> Result<Agent> {
        let mut child = Command::new(bin)
            .args(["capture", "--json", "--stats-json", "--cgroup"])
            .arg(cgroup)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut out = child.stdout.take().context("agent stdout")?;
        let err = child.stderr.take().context("agent stderr")?;
        let stdout = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut lines = 0u64;
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
            lines
        });
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = Agent {
            child: Some(child),
            stdout: Some(stdout),
            stderr: rx,
            log: Vec::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match agent.stderr.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.contains("capturing");
                    agent.log.push(line);
                    if ready {
                        return Ok(agent);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "agent not ready after {READY_TIMEOUT:?}; stderr:\n{}",
                        agent.log.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let st = agent.child.as_mut().map(Child::wait).transpose()?;
                    bail!(
                        "agent exited before attaching ({st:?}); stderr:\n{}",
                        agent.log.join("\n")
                    )
                }
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Stops the agent with SIGINT and collects its statistics.
    fn stop(mut self) -> Result<AgentReport> {
        let mut child = self.child.take().context("agent already stopped")?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("agent did not stop within 20 s of SIGINT");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let lines = self
            .stdout
            .take()
            .context("stdout reader")?
            .join()
            .map_err(|_| anyhow!("stdout reader panicked"))?;
        self.log.extend(self.stderr.iter());
        ensure!(
            status.success(),
            "agent failed ({status}); stderr:\n{}",
            self.log.join("\n")
        );
        let stats = self
            .log
            .iter()
            .rev()
            .filter(|l| l.trim_start().starts_with('{'))
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("total").is_some())
            .with_context(|| {
                format!(
                    "no statistics line on the agent's stderr:\n{}",
                    self.log.join("\n")
                )
            })?;
        Ok(AgentReport { stats, lines })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// VmRSS of a process in KiB.
fn vm_rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// One measured loop.
struct Loop {
    /// Label in the tables.
    name: &'static str,
    /// Short name for the cgroup.
    label: &'static str,
    /// `__loop` arguments after the seconds: kind first, then its parameters.
    kind: &'static str,
    params: Vec<String>,
    /// Extra agent arguments.
    agent_args: &'static [&'static str],
    /// The statistics kind this loop produces.
    stat_kind: &'static str,
}

/// One workload run: operations per second, and the agent's peak RSS (second half of the run).
struct Run {
    ops_per_s: f64,
    rss_kib: Option<u64>,
}

/// Runs the workload `kind params` for `secs` in `cg`, sampling `agent_pid`'s RSS meanwhile.
fn run_workload(
    cg: &TestCgroup,
    kind: &str,
    params: &[String],
    secs: f64,
    agent_pid: Option<i32>,
) -> Result<Run> {
    let exe = std::env::current_exe().context("current exe")?;
    let mut child = cg
        .command(&exe)
        .arg("__loop")
        .arg(kind)
        .arg(secs.to_string())
        .args(params)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the workload")?;
    let start = Instant::now();
    let mut rss_kib = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let t = start.elapsed().as_secs_f64();
        if let Some(pid) = agent_pid
            && t >= secs * 0.5
            && let Some(r) = vm_rss_kib(pid)
        {
            rss_kib = Some(rss_kib.unwrap_or(0).max(r));
        }
        if t > secs + 60.0 {
            let _ = child.kill();
            let _ = child.wait();
            bail!("workload {kind} did not finish");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("workload stdout")?
        .read_to_string(&mut out)?;
    ensure!(status.success(), "workload {kind} failed ({status})");
    let mut it = out.split_whitespace();
    let ops: f64 = it.next().context("workload printed nothing")?.parse()?;
    let elapsed: f64 = it.next().context("workload printed no time")?.parse()?;
    Ok(Run {
        ops_per_s: ops / elapsed,
        rss_kib,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
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

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

/// The agent binary, or a clear message when it has not been built.
fn agent_binary() -> Option<PathBuf> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::panic::catch_unwind(baseliner_tests::baseliner_bin);
    std::panic::set_hook(hook);
    match found {
        Ok(p) if p.exists() => Some(p),
        Ok(p) => {
            eprintln!(
                "baseliner binary {} (BASELINER_BIN) does not exist",
                p.display()
            );
            None
        }
        Err(_) => {
            let exe = std::env::current_exe().ok();
            let expected = exe
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .map(|d| d.join("baseliner"));
            eprintln!(
                "baseliner binary not found at {}: build it first with `cargo build --release -p learner` \
                 (or set BASELINER_BIN)",
                expected.map_or_else(
                    || "target/release/baseliner".into(),
                    |p| p.display().to_string()
                )
            );
            None
        }
    }
}

struct LoopResult {
    name: &'static str,
    off: f64,
    on: f64,
    rss_kib: Option<u64>,
}

fn bench() -> Result<ExitCode> {
    if !baseliner_tests::live_enabled("overhead") {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(bin) = agent_binary() else {
        return Ok(ExitCode::FAILURE);
    };
    let secs: f64 = env_num("BENCH_SECONDS", 2.0)?;
    let rounds: usize = env_num("BENCH_ROUNDS", 3)?;
    ensure!(
        secs > 0.0 && rounds > 0,
        "BENCH_SECONDS and BENCH_ROUNDS must be positive"
    );

    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!("baseliner capture overhead");
    println!(
        "agent {}; kernel {}; {cpus} CPUs; {secs} s per measurement, {rounds} rounds (off/on alternating)",
        bin.display(),
        kernel.trim()
    );

    let files = TempFiles::create(DISTINCT_FILES)?;
    let dir = files.dir.display().to_string();
    let port = start_listener()?;
    let loops = [
        Loop {
            name: "exec /bin/true",
            label: "exec",
            kind: "exec",
            params: vec![],
            agent_args: &[],
            stat_kind: "exec",
        },
        Loop {
            name: "open+close (same file)",
            label: "open",
            kind: "open",
            params: vec![dir.clone(), "1".into()],
            agent_args: &[],
            stat_kind: "open",
        },
        Loop {
            name: "open+close (2000 distinct files, dedup off)",
            label: "open-distinct",
            kind: "open",
            params: vec![dir.clone(), DISTINCT_FILES.to_string()],
            agent_args: &["--dedup-window", "0"],
            stat_kind: "open",
        },
        Loop {
            name: "connect+close 127.0.0.1",
            label: "connect",
            kind: "connect",
            params: vec![port.to_string()],
            agent_args: &[],
            stat_kind: "connect",
        },
    ];

    let mut results = Vec::new();
    for l in &loops {
        println!();
        let dedup = if l.agent_args.is_empty() {
            "default dedup window"
        } else {
            "agent: --dedup-window 0"
        };
        println!("## {} ({dedup})", l.name);
        let cg = TestCgroup::new(&format!("bench-{}", l.label)).context("creating a cgroup")?;
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let mut last = None;
        for round in 1..=rounds {
            let o = run_workload(&cg, l.kind, &l.params, secs, None)?;
            let agent = Agent::start(&bin, &cg.path, l.agent_args)?;
            let r = run_workload(&cg, l.kind, &l.params, secs, Some(agent.pid()));
            let report = agent.stop()?;
            let r = r?;
            println!(
                "  round {round}: off {:>10} ops/s   on {:>10} ops/s   ({:.3})",
                group(o.ops_per_s as u64),
                group(r.ops_per_s as u64),
                r.ops_per_s / o.ops_per_s
            );
            off.push(o.ops_per_s);
            on.push(r.ops_per_s);
            last = Some((report, r.rss_kib));
        }
        let (report, rss_kib) = last.context("no rounds")?;
        let (moff, mon) = (median(&off), median(&on));
        println!(
            "  median: off {} ops/s, on {} ops/s, ratio {:.3}, slowdown {:.1}%",
            group(moff as u64),
            group(mon as u64),
            mon / moff,
            (1.0 - mon / moff) * 100.0
        );
        println!(
            "  last on run, {}: {}",
            l.stat_kind,
            report.kind(l.stat_kind)?
        );
        println!(
            "  last on run, all kinds: {}; received {}, stdout lines {}",
            report.kind("total")?,
            group(report.counter("received")?),
            group(report.lines)
        );
        if let Some(kib) = rss_kib {
            println!(
                "  agent VmRSS (max, 2nd half of last on run): {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
        results.push(LoopResult {
            name: l.name,
            off: moff,
            on: mon,
            rss_kib,
        });
    }

    // Storm: tiny ring, no dedup, two writers of distinct opens.
    println!();
    println!(
        "## storm: 2 processes opening {DISTINCT_FILES} distinct files, --ring-kib 4 --dedup-window 0"
    );
    let cg = TestCgroup::new("bench-storm").context("creating a cgroup")?;
    let agent = Agent::start(&bin, &cg.path, &["--ring-kib", "4", "--dedup-window", "0"])?;
    let params = vec![dir.clone(), DISTINCT_FILES.to_string()];
    let storm = thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| run_workload(&cg, "open", &params, secs, None)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("storm thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    });
    let report = agent.stop()?;
    let storm = storm?;
    let storm_ops: f64 = storm.iter().map(|r| r.ops_per_s).sum();
    let open = report.kind("open")?;
    let total = report.kind("total")?;
    let received = report.counter("received")?;
    let decode_errors = report.counter("decode_errors")?;
    println!(
        "  workload: {} opens/s (both processes)",
        group(storm_ops as u64)
    );
    println!("  open:  {open}");
    println!("  total: {total}");
    println!(
        "  received by agent {}, decode errors {}, lines on stdout {}",
        group(received),
        decode_errors,
        group(report.lines)
    );
    let checks = [
        (
            "open: emitted + dropped + deduplicated == seen",
            open.emitted + open.dropped + open.deduplicated == open.seen,
        ),
        (
            "total: emitted + dropped + deduplicated == seen",
            total.emitted + total.dropped + total.deduplicated == total.seen,
        ),
        ("received == total emitted", received == total.emitted),
        (
            "stdout lines == received - decode errors",
            report.lines + decode_errors == received,
        ),
    ];
    let mut failed = false;
    for (what, ok) in checks {
        println!("  {} {what}", if ok { "PASS" } else { "FAIL" });
        failed |= !ok;
    }
    if total.dropped == 0 {
        println!("  NOTE the 4 KiB ring never overflowed, so drop accounting was not exercised");
    }
    drop(cg);

    // Summary for the README.
    println!();
    println!("| loop | no agent (ops/s) | capture on (ops/s) | ratio | slowdown |");
    println!("|---|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {:.2} | {:.1}% |",
            r.name,
            group(r.off as u64),
            group(r.on as u64),
            r.on / r.off,
            (1.0 - r.on / r.off) * 100.0
        );
    }
    println!();
    let rss: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.rss_kib
                .map(|k| format!("{} {:.1}", r.name, k as f64 / 1024.0))
        })
        .collect();
    let max_rss = results.iter().filter_map(|r| r.rss_kib).max().unwrap_or(0);
    println!(
        "Agent RSS (VmRSS, steady state): max {:.1} MiB ({} MiB)",
        max_rss as f64 / 1024.0,
        rss.join(", ")
    );
    println!(
        "Storm (4 KiB ring, no dedup, {} opens/s): open seen {}, emitted {}, deduplicated {}, dropped {}; \
         received {} — {}",
        group(storm_ops as u64),
        group(open.seen),
        group(open.emitted),
        group(open.deduplicated),
        group(open.dropped),
        group(received),
        if failed {
            "accounting check FAILED"
        } else {
            "every event accounted for"
        }
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
