//! The enforcing agent: `baseliner run` with the loop's workload in enforce mode against a
//! 100-entry allow-list, set up offline in a private store before the agent starts.

use std::{
    cell::Cell,
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use baseliner_tests::TestCgroup;
use profiles::{
    Family, Protocol,
    model::{ExecEntry, NetEntry, Profile, Seen},
};

use crate::agent::Agent;

/// Entries of the allow-list (programs plus destinations), the loop's own included.
pub(crate) const ALLOW_LIST_ENTRIES: usize = 100;
/// How many of them are programs; the rest are destinations.
const ALLOWED_PROGRAMS: usize = ALLOW_LIST_ENTRIES / 2;
/// How long the agent may take to put the workload's allow-list in force.
const ENFORCING_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the kernel counters may take to show every operation of a run (one agent tick
/// is 500 ms).
const COUNTERS_TIMEOUT: Duration = Duration::from_secs(5);

/// The enforcement counters of the kernel, from `baseliner status --json`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exec_checked: u64,
    pub(crate) exec_killed: u64,
    pub(crate) connect_checked: u64,
    pub(crate) connect_denied: u64,
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exec checked {} / killed {}, connect checked {} / denied {}",
            self.exec_checked, self.exec_killed, self.connect_checked, self.connect_denied
        )
    }
}

/// A store holding the workload's profile in enforce mode; removed on drop.
pub(crate) struct EnforceStore {
    bin: PathBuf,
    dir: PathBuf,
    store: PathBuf,
    workload: String,
    cgroup: PathBuf,
    /// Further cgroups the agent watches (workloads in alert mode with the same profile).
    alerting: Vec<PathBuf>,
    /// Kernel map entries of the allow-list, as the agent last reported (IPv4 destinations
    /// take two: also as IPv4-mapped IPv6).
    pub(crate) kernel_entries: Cell<u64>,
}

impl EnforceStore {
    /// Writes, imports and enforces the allow-list of `cg`'s workload: the programs the loops
    /// exec (the bench binary as `run_workload` starts it, and `/bin/true`), the listener on
    /// 127.0.0.1:`port`, and filler up to [`ALLOW_LIST_ENTRIES`].
    pub(crate) fn create(bin: &Path, cg: &TestCgroup, port: u16) -> Result<EnforceStore> {
        let dir = std::env::temp_dir().join(format!(
            "baseliner-bench-enforce-{}-{}",
            std::process::id(),
            cg.id
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let s = EnforceStore {
            bin: bin.to_path_buf(),
            store: dir.join("store"),
            dir,
            workload: cg.rel.clone(),
            cgroup: cg.path.clone(),
            alerting: Vec::new(),
            kernel_entries: Cell::new(0),
        };
        // The CLI works on a store offline only in an existing directory (it creates the
        // database there).
        fs::create_dir(&s.store).with_context(|| format!("creating {}", s.store.display()))?;
        s.import(&cg.rel, port, "enforce")?;
        Ok(s)
    }

    /// Adds `cg`'s workload with the same profile in alert mode: scored like the enforced one,
    /// but nothing of it is checked in the kernel.
    pub(crate) fn add_alerting(&mut self, cg: &TestCgroup, port: u16) -> Result<()> {
        self.import(&cg.rel, port, "alert")?;
        self.alerting.push(cg.path.clone());
        Ok(())
    }

    /// Imports the allow-list as `workload`'s profile and sets its mode. The kernel compares
    /// the exact path given to execve: `run_workload` execs `current_exe()`, the exec loop
    /// `/bin/true`.
    fn import(&self, workload: &str, port: u16, mode: &str) -> Result<()> {
        let exe = std::env::current_exe().context("current exe")?;
        let exe = exe
            .to_str()
            .context("the bench binary's path is not UTF-8")?;
        let profile = allow_list(exe, port);
        let export = profiles::export::export(workload, "bench", serde_json::Value::Null, &profile);
        let file = self.dir.join(format!("profile-{mode}.json"));
        fs::write(&file, profiles::export::to_json(&export))
            .with_context(|| format!("writing {}", file.display()))?;
        let file = file.to_str().context("temp dir path is not UTF-8")?;
        self.cli(&["profile", "import", file])?;
        self.cli(&["mode", "set", workload, mode])?;
        Ok(())
    }

    /// Runs `baseliner ARGS --store STORE`; its stdout.
    fn cli(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--store")
            .arg(&self.store)
            .env("NO_COLOR", "1")
            .output()
            .with_context(|| format!("running baseliner {args:?}"))?;
        ensure!(
            out.status.success(),
            "baseliner {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(out.stdout)
    }

    fn status(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.cli(&["status", "--json"])?)
            .context("parsing `baseliner status --json`")
    }

    /// Starts `baseliner run` on the workload and waits until its allow-list is in force.
    pub(crate) fn start_agent(&self) -> Result<Agent> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--store")
            .arg(&self.store)
            .arg("--cgroup")
            .arg(&self.cgroup)
            .args(["--canary-interval", "0", "--flush-interval", "1"]);
        for cg in &self.alerting {
            cmd.arg("--cgroup").arg(cg);
        }
        let agent = Agent::spawn(cmd)?;
        let started = Instant::now();
        loop {
            let status = self.status()?;
            let w = status["agent"]["enforcement"]["workloads"]
                .as_array()
                .and_then(|l| l.iter().find(|w| w["workload"] == self.workload.as_str()))
                .cloned();
            if let Some(w) = &w
                && w["state"] == "enforcing"
                && w["kernel_entries"].as_u64().unwrap_or(0) > 0
            {
                let n = |k: &str| w[k].as_u64().unwrap_or(u64::MAX);
                ensure!(
                    n("profile_entries") == ALLOW_LIST_ENTRIES as u64
                        && n("widened") == 0
                        && n("unchecked") == 0,
                    "the enforced allow-list is not the {ALLOW_LIST_ENTRIES} exact entries \
                     imported: {w}"
                );
                self.kernel_entries.set(n("kernel_entries"));
                return Ok(agent);
            }
            if started.elapsed() > ENFORCING_TIMEOUT {
                bail!(
                    "{} not enforcing after {ENFORCING_TIMEOUT:?}: {:#}",
                    self.workload,
                    status["agent"]["enforcement"]
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The kernel's enforcement counters once `done(counters)` holds, or as they are after
    /// [`COUNTERS_TIMEOUT`] (the agent copies them into its status on each tick).
    pub(crate) fn counters(&self, done: impl Fn(&Counters) -> bool) -> Result<Counters> {
        let started = Instant::now();
        loop {
            let status = self.status()?;
            let k = &status["agent"]["enforcement"]["kernel"];
            let n = |key: &str| {
                k[key]
                    .as_u64()
                    .with_context(|| format!("no enforcement.kernel.{key} in the status: {k}"))
            };
            let c = Counters {
                exec_checked: n("exec_checked")?,
                exec_killed: n("exec_killed")?,
                connect_checked: n("connect_checked")?,
                connect_denied: n("connect_denied")?,
            };
            if done(&c) || started.elapsed() > COUNTERS_TIMEOUT {
                return Ok(c);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EnforceStore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The profile to enforce: [`ALLOWED_PROGRAMS`] programs (`exe`, `/bin/true` and
/// `/usr/local/bin/tool-N`), the rest destinations (127.0.0.1:`port` and `10.0.N.1:443`).
fn allow_list(exe: &str, port: u16) -> Profile {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seen = Seen::at(now);
    let mut p = Profile::default();
    let programs = [exe.to_string(), "/bin/true".to_string()]
        .into_iter()
        .chain((0..).map(|i| format!("/usr/local/bin/tool-{i}")))
        .take(ALLOWED_PROGRAMS);
    for path in programs {
        p.execs.insert(ExecEntry { path, args: None }, seen);
    }
    let destinations = [("127.0.0.1".to_string(), port)]
        .into_iter()
        .chain((0..).map(|i| (format!("10.0.{i}.1"), 443)))
        .take(ALLOW_LIST_ENTRIES - ALLOWED_PROGRAMS);
    for (addr, port) in destinations {
        let entry = NetEntry {
            family: Family::Inet,
            protocol: Protocol::Tcp,
            addr,
            port,
        };
        p.connects.insert(entry, seen);
    }
    p
}
