//! Helpers for Baseliner's live tests and benchmarks: root detection with skip-or-fail, private
//! cgroup2 directories, and children started inside them.

pub mod fake_kube;

use std::{
    fs, io,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// True when running under CI (`CI=true`), where live tests must run, never skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether live eBPF tests can run here. Outside CI, prints why they skip and returns false;
/// in CI, a missing precondition is a failure (panics with the reason).
pub fn live_enabled(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let reason = if !root {
        Some("needs root (CAP_BPF, CAP_PERFMON, cgroup2 writes)")
    } else if learner::attribution::cgroup::cgroup2_mount().is_err() {
        Some("no cgroup2 hierarchy is mounted")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if in_ci() => panic!("live test {test} cannot run in CI: {r}"),
        Some(r) => {
            eprintln!("SKIP {test}: {r}");
            false
        }
    }
}

/// A cgroup2 directory owned by a test; removed (after its processes are killed) on drop.
pub struct TestCgroup {
    /// Absolute path under the cgroup2 mount.
    pub path: PathBuf,
    /// Path relative to the mount, as workloads are named ("/baseliner-test-...").
    pub rel: String,
    /// cgroup id (inode).
    pub id: u64,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestCgroup {
    /// Creates `baseliner-test-<label>-<pid>-<n>` at the top of the cgroup2 hierarchy.
    pub fn new(label: &str) -> io::Result<TestCgroup> {
        let mount = learner::attribution::cgroup::cgroup2_mount().map_err(io::Error::other)?;
        let name = format!(
            "baseliner-test-{label}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = mount.join(&name);
        fs::create_dir(&path)?;
        let id = learner::attribution::cgroup::cgroup_id(&path)?;
        Ok(TestCgroup {
            path,
            rel: format!("/{name}"),
            id,
        })
    }

    /// A command with a fixed environment that moves itself into this cgroup before exec.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        // A fixed environment keeps the workload's behaviour the same wherever the tests run:
        // without SHELL, bash looks the user up and glibc probes the nscd socket, a connect
        // the profile would rightly record.
        cmd.env_clear().envs([
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", "/root"),
            ("SHELL", "/bin/bash"),
            ("LANG", "C"),
        ]);
        let procs = self.path.join("cgroup.procs");
        // SAFETY: the closure only writes to a file, which is async-signal-safe enough for a
        // freshly forked single-threaded child.
        unsafe {
            cmd.pre_exec(move || fs::write(&procs, b"0"));
        }
        cmd
    }

    /// Runs `bash -c script` inside this cgroup to completion; panics unless it succeeds.
    pub fn run_bash(&self, script: &str) {
        let status = self
            .command("/bin/bash")
            .arg("-c")
            .arg(script)
            .status()
            .expect("starting bash");
        assert!(status.success(), "workload `{script}` failed: {status}");
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// The `baseliner` binary built beside this test binary (target/<profile>/baseliner).
pub fn baseliner_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BASELINER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/baseliner
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("baseliner");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p learner` (same profile) or set BASELINER_BIN",
        bin.display()
    );
    bin
}

/// A loopback TCP listener that accepts and closes connections on a thread; its port.
pub fn loopback_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            drop(s);
        }
    });
    port
}

/// Reads an agent's stderr until it reports that capture is attached ("capturing ..."), and
/// returns the reader for the rest. Panics when the agent exits first.
pub fn wait_until_capturing(
    stderr: std::process::ChildStderr,
) -> std::io::BufReader<std::process::ChildStderr> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("reading the agent's stderr");
        assert!(n > 0, "agent exited before it was ready");
        if line.contains("capturing") {
            return reader;
        }
    }
}

/// A fresh, empty scratch directory `baseliner-<label>-<pid>` under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("baseliner-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("creating a scratch directory");
    d
}

impl TestCgroup {
    /// Creates the sub-cgroup `name` of this cgroup. Drop it before its parent (a cgroup with
    /// children cannot be removed).
    pub fn child(&self, name: &str) -> io::Result<TestCgroup> {
        let path = self.path.join(name);
        fs::create_dir(&path)?;
        let id = learner::attribution::cgroup::cgroup_id(&path)?;
        Ok(TestCgroup {
            path,
            rel: format!("{}/{name}", self.rel),
            id,
        })
    }
}

/// A size field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...) in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
pub fn proc_cpu_time(pid: u32) -> Option<std::time::Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at the state (field 3).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(std::time::Duration::from_millis(ticks * 1000 / hz.max(1)))
}

/// A running `baseliner run` (the learning agent) whose stderr is collected; killed on drop.
pub struct LearnAgent {
    child: Option<std::process::Child>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl LearnAgent {
    /// Starts `baseliner run --store STORE --cgroup CGROUP... EXTRA...` and waits until it
    /// captures. Panics when the agent exits before it is ready.
    pub fn start(store: &Path, cgroups: &[&Path], extra: &[&str]) -> io::Result<LearnAgent> {
        Self::start_env(store, cgroups, extra, &[])
    }

    /// [`LearnAgent::start`] with extra environment variables.
    pub fn start_env(
        store: &Path,
        cgroups: &[&Path],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> io::Result<LearnAgent> {
        use std::io::BufRead;
        let mut cmd = Command::new(baseliner_bin());
        cmd.envs(env.iter().copied());
        cmd.arg("run").arg("--store").arg(store);
        for c in cgroups {
            cmd.arg("--cgroup").arg(c);
        }
        let mut child = cmd
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        let mut reader = wait_until_capturing(stderr);
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let drain = std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Ok(mut l) = sink.lock() {
                    l.push(line.trim_end().to_string());
                }
                line.clear();
            }
        });
        Ok(LearnAgent {
            child: Some(child),
            log,
            drain: Some(drain),
        })
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// Stops the agent with SIGTERM (SIGKILL after 30 s) and returns its exit status and the
    /// stderr lines it wrote after it started capturing.
    pub fn stop(mut self) -> io::Result<(std::process::ExitStatus, Vec<String>)> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("stopped"))?;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if std::time::Instant::now() > deadline {
                child.kill()?;
                break child.wait()?;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        Ok((status, log))
    }
}

impl Drop for LearnAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `baseliner ARGS --store STORE` to completion; its output.
pub fn run_cli(store: &Path, args: &[&str]) -> std::process::Output {
    Command::new(baseliner_bin())
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .expect("running baseliner")
}

/// Runs `baseliner ARGS --store STORE`; panics (with ARGS and its stderr) unless it succeeds.
/// Its stdout.
pub fn run_cli_ok(store: &Path, args: &[&str]) -> Vec<u8> {
    let out = run_cli(store, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `baseliner profile show WORKLOAD --store STORE`, parsed; panics unless it succeeds.
pub fn show_profile(store: &Path, workload: &str) -> serde_json::Value {
    serde_json::from_slice(&run_cli_ok(store, &["profile", "show", workload])).unwrap()
}

/// The `field` of every `kind` entry ("execs", "files", ...) of a shown profile.
pub fn entry_fields(
    shown: &serde_json::Value,
    kind: &str,
    field: &str,
) -> std::collections::BTreeSet<String> {
    shown["profile"][kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0][field].as_str().unwrap().to_string())
        .collect()
}

/// A numeric environment variable, or `default` when it is unset; an error names a value that
/// does not parse.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

/// The body of a bench's `main`: runs `run` and returns its exit code (success for `()`), or
/// prints "WHAT failed: <error chain>" and returns failure.
pub fn bench_main<T: std::process::Termination>(
    what: &str,
    run: impl FnOnce() -> anyhow::Result<T>,
) -> std::process::ExitCode {
    match run() {
        Ok(t) => t.report(),
        Err(e) => {
            eprintln!("{what} failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; another process may take it meanwhile).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1")
        .port()
}

/// A plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the status code and body, or `None`
/// when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_call(port, "GET", path, None, None)
}

/// A plain HTTP/1.0 request on 127.0.0.1:`port`, with a bearer `token` and a JSON `body` when
/// given: the status code and body, or `None` when nothing answers.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The wallet a miner-like program passes with `-u` (a Monero address shape).
pub const MINER_WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

/// Writes `data.txt` in `dir` and returns the alert tests' "normal" workload: a bash loop that
/// reads it and lists `/` three times.
pub fn normal_workload(dir: &Path) -> String {
    let data = dir.join("data.txt");
    fs::write(&data, "x").expect("writing data.txt");
    format!(
        "for i in 1 2 3; do /bin/cat {} >/dev/null; /bin/ls / >/dev/null; done",
        data.display()
    )
}

/// `baseliner mode set WORKLOAD MODE --store STORE`; panics unless it succeeds.
pub fn set_mode(store: &Path, workload: &str, mode: &str) {
    run_cli_ok(store, &["mode", "set", workload, mode]);
}

/// Runs `normal` in `cg` while an agent captures it, lets the agent flush (600 ms), then
/// switches the workload to alert mode.
pub fn learn_then_alert(cg: &TestCgroup, store: &Path, normal: &str) {
    cg.run_bash(normal);
    std::thread::sleep(std::time::Duration::from_millis(600));
    set_mode(store, &cg.rel, "alert");
}

/// Writes an executable miner-like bash script at `path` (creating its directory) that opens
/// and closes a TCP connection to 127.0.0.1:$POOL_PORT.
pub fn write_miner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("creating the miner's directory");
    }
    fs::write(
        path,
        "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/$POOL_PORT\nexec 3>&-\n",
    )
    .expect("writing the miner");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .expect("making the miner executable");
}

/// The command that starts `miner` in `cg` with xmrig-like arguments (a stratum pool URL, a
/// wallet, `--donate-level`) against a fresh loopback "pool" (in `POOL_PORT`).
pub fn miner_command(cg: &TestCgroup, miner: &Path) -> Command {
    let pool = loopback_listener();
    let mut cmd = cg.command(miner);
    cmd.args([
        "-o",
        &format!("stratum+tcp://127.0.0.1:{pool}"),
        "-u",
        MINER_WALLET,
        "--donate-level",
        "1",
    ])
    .env("POOL_PORT", pool.to_string());
    cmd
}

/// Runs the miner written by [`write_miner`] in `cg` with xmrig-like arguments (a stratum pool
/// URL, a wallet, `--donate-level`) against a fresh loopback "pool"; panics unless it succeeds.
pub fn run_miner(cg: &TestCgroup, miner: &Path) {
    let status = miner_command(cg, miner)
        .status()
        .expect("starting the miner");
    assert!(
        status.success(),
        "miner {} failed: {status}",
        miner.display()
    );
}

/// The first alert in the JSON-lines file `alerts` (`--alerts-jsonl`) whose line contains
/// `needle`; panics when none appears within 2 s.
pub fn wait_alert(alerts: &Path, needle: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let text = fs::read_to_string(alerts).unwrap_or_default();
        if let Some(a) = text.lines().find(|l| l.contains(needle)) {
            return serde_json::from_str(a).expect("an alert line is JSON");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "no alert about {needle}: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Writes an executable script that creates `marker` when it runs.
pub fn marker_program(path: &Path, marker: &Path) {
    std::fs::write(path, format!("#!/bin/bash\n: > {}\n", marker.display())).unwrap();
    std::fs::set_permissions(
        path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
}

/// Waits until `baseliner status` reports the workload enforcing (or not), at most 3 s.
pub fn wait_enforcing(store: &Path, workload: &str, enforcing: bool) {
    let started = std::time::Instant::now();
    loop {
        let out = run_cli_ok(store, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let list = status["agent"]["enforcement"]["workloads"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = list
            .iter()
            .any(|w| w["workload"] == workload && w["state"] == "enforcing");
        if found == enforcing {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "enforcement of {workload} never became {enforcing}: {status:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
