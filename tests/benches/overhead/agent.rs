//! The agent under test: `baseliner capture` (or, through [`Agent::spawn`], another capturing
//! subcommand) started and stopped around a workload, and its statistics.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use crate::util::group;

/// How long the agent may take to load and attach its probes.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KindStats {
    pub(crate) seen: u64,
    pub(crate) emitted: u64,
    pub(crate) deduplicated: u64,
    pub(crate) dropped: u64,
}

impl KindStats {
    pub(crate) fn from_json(v: &serde_json::Value, kind: &str) -> Result<KindStats> {
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
pub(crate) struct AgentReport {
    pub(crate) stats: serde_json::Value,
    /// Lines read from its stdout (one per event).
    pub(crate) lines: u64,
}

impl AgentReport {
    pub(crate) fn kind(&self, kind: &str) -> Result<KindStats> {
        KindStats::from_json(&self.stats, kind)
    }

    pub(crate) fn counter(&self, key: &str) -> Result<u64> {
        self.stats
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("no {key:?} in the statistics"))
    }
}

/// A running `baseliner capture`; killed on drop if not stopped.
pub(crate) struct Agent {
    pub(crate) child: Option<Child>,
    pub(crate) stdout: Option<JoinHandle<u64>>,
    pub(crate) stderr: Receiver<String>,
    pub(crate) log: Vec<String>,
}

impl Agent {
    /// Starts the agent on `cgroup` and waits until it has attached its probes.
    pub(crate) fn start(bin: &Path, cgroup: &Path, extra: &[&str]) -> Result<Agent> {
        let mut cmd = Command::new(bin);
        cmd.args(["capture", "--json", "--stats-json", "--cgroup"])
            .arg(cgroup)
            .args(extra);
        Agent::spawn(cmd)
    }

    /// Starts `cmd` (a `baseliner` subcommand that captures) and waits until it reports that
    /// its probes are attached ("capturing ..." on stderr).
    pub(crate) fn spawn(mut cmd: Command) -> Result<Agent> {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
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

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Stops the agent with SIGINT and collects its statistics.
    pub(crate) fn stop(mut self) -> Result<AgentReport> {
        let lines = self.shutdown()?;
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

    /// Stops the agent with SIGINT and checks that it exited cleanly; the number of lines it
    /// wrote to stdout. Its stderr is in `log` afterwards.
    pub(crate) fn shutdown(&mut self) -> Result<u64> {
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
        Ok(lines)
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
pub(crate) fn vm_rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

pub(crate) fn agent_binary() -> Option<PathBuf> {
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
