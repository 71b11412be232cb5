//! Agent memory with many learned workloads: `baseliner run` watches one parent test cgroup,
//! `BENCH_WORKLOADS` (default 1,000) child cgroups each run a small workload (bash running cat,
//! ls, grep, a write, a loopback connect, over paths of their own so every profile differs), and
//! the agent's resident memory (VmRSS) and peak (VmHWM) are read once it has flushed, beside its
//! memory before the workloads. Target: ≤ 50 MB with 1,000 learned workloads.
//!
//! Needs root. Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench workloads`. Environment: `BENCH_WORKLOADS` (default
//! 1000), `BENCH_PARALLEL` (workloads run at a time, default 4), `BENCH_FILES` (extra distinct
//! files each workload reads, to see memory per entry; default 0). Traffic goes to loopback only.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use baseliner_tests::{
    LearnAgent, TestCgroup, bench_main, env_num, proc_cpu_time, proc_status_kib,
};

/// Target: agent memory with 1,000 learned workloads.
const TARGET_MB: f64 = 50.0;
/// Loopback listeners the workloads connect to (each workload picks one).
const LISTENERS: usize = 4;

fn main() -> ExitCode {
    // Anything on the command line (cargo passes `--bench`) is ignored.
    bench_main("workloads bench", bench)
}

/// Removes the scratch directory on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Memory of the agent now: "VmRSS x MiB, VmHWM y MiB".
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Memory> {
        let f = |k| proc_status_kib(pid, k).with_context(|| format!("no {k} for pid {pid}"));
        Ok(Memory {
            rss_kib: f("VmRSS")?,
            hwm_kib: f("VmHWM")?,
        })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0
        )
    }
}

/// Files of workload `i`: its own directory with a config, data files and a log.
fn prepare(root: &Path, i: usize, files: usize) -> Result<PathBuf> {
    let d = root.join(format!("svc{i:04}"));
    fs::create_dir_all(d.join("conf"))?;
    if files > 0 {
        fs::create_dir_all(d.join("assets"))?;
        for k in 0..files {
            fs::write(d.join("assets").join(format!("f{k:03}x.txt")), "x\n")?;
        }
    }
    fs::write(d.join("conf").join("app.conf"), format!("name=svc{i}\n"))?;
    for k in 0..(1 + i % 4) {
        fs::write(
            d.join(format!("table-{}.dat", ["a", "b", "c", "d"][k])),
            "x\n",
        )?;
    }
    Ok(d)
}

/// The script of workload `i`: programs and paths vary with `i` so profiles differ.
fn script(d: &Path, i: usize, port: u16, files: usize) -> String {
    let assets = if files > 0 {
        format!("/bin/cat {}/assets/* >/dev/null; ", d.display())
    } else {
        String::new()
    };
    let d = d.display();
    let extra = match i % 3 {
        0 => format!("/bin/wc -l {d}/conf/app.conf >/dev/null"),
        1 => format!("/bin/sort {d}/table-a.dat >/dev/null"),
        _ => "/bin/date +%s >/dev/null".to_string(),
    };
    format!(
        "{assets}/bin/cat {d}/conf/app.conf >/dev/null; /bin/ls {d} >/dev/null; \
         /bin/grep -q x {d}/table-a.dat; echo run >> {d}/out.log; {extra}; \
         /bin/cat /proc/self/status >/dev/null; \
         exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-"
    )
}

/// Profiles in the store under `parent`: (workloads, profiles = workload revisions, entries).
fn count_profiles(store: &Path, parent: &str) -> Result<(usize, usize, usize)> {
    let out = Command::new(baseliner_tests::baseliner_bin())
        .args(["profile", "list", "--store"])
        .arg(store)
        .output()
        .context("running baseliner profile list")?;
    ensure!(
        out.status.success(),
        "profile list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One line per profile: workload, revision, "N entries", learning status.
    let prefix = format!("{parent}/");
    let (mut workloads, mut profiles, mut entries) = (BTreeSet::new(), 0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if !cols[0].starts_with(&prefix) {
            continue;
        }
        workloads.insert(cols[0].to_string());
        profiles += 1;
        entries += cols
            .get(2)
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
    }
    Ok((workloads.len(), profiles, entries))
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn bench() -> Result<()> {
    if !baseliner_tests::live_enabled("workloads") {
        return Ok(());
    }
    let n: usize = env_num("BENCH_WORKLOADS", 1000)?;
    let parallel: usize = env_num("BENCH_PARALLEL", 4)?;
    let files: usize = env_num("BENCH_FILES", 0)?;
    ensure!(
        n > 0 && parallel > 0,
        "BENCH_WORKLOADS and BENCH_PARALLEL must be positive"
    );
    let scratch = Scratch(baseliner_tests::temp_dir("workloads"));
    let store = scratch.0.join("store");
    let data = scratch.0.join("data");
    let dirs: Vec<PathBuf> = (0..n)
        .map(|i| prepare(&data, i, files))
        .collect::<Result<_>>()?;
    let ports: Vec<u16> = (0..LISTENERS)
        .map(|_| baseliner_tests::loopback_listener())
        .collect();

    // Declared before the children so it is removed after them (drops run in reverse).
    let parent = TestCgroup::new("workloads").context("creating the parent test cgroup")?;
    let started = Instant::now();
    let children: Vec<TestCgroup> = (0..n)
        .map(|i| parent.child(&format!("w{i:04}")))
        .collect::<std::io::Result<_>>()
        .context("creating child cgroups")?;
    println!(
        "workloads bench: {n} child cgroups of {} created in {:.1} s",
        parent.rel,
        started.elapsed().as_secs_f64()
    );

    let agent = LearnAgent::start(&store, &[&parent.path], &["--flush-interval", "1"])
        .context("starting baseliner run")?;
    let pid = agent.pid();
    thread::sleep(Duration::from_secs(2));
    let before = Memory::of(pid)?;
    println!("agent (pid {pid}) before the workloads: {before}");

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let status = children[i]
                        .command("/bin/bash")
                        .arg("-c")
                        .arg(script(&dirs[i], i, ports[i % LISTENERS], files))
                        .status();
                    if !status.is_ok_and(|s| s.success()) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let ran = started.elapsed();
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "ran {n} workloads ({parallel} at a time, {files} extra files each) in {:.1} s; {failed} failed",
        ran.as_secs_f64()
    );
    // Several flush intervals, so every profile has been recorded and written.
    thread::sleep(Duration::from_secs(4));
    let after = Memory::of(pid)?;
    let cpu = proc_cpu_time(pid).unwrap_or_default();
    println!(
        "agent after {n} workloads, flushed: {after}; CPU {:.2} s",
        cpu.as_secs_f64()
    );
    println!(
        "agent memory: {:.1} MB VmRSS ({:.2}× the {TARGET_MB} MB target), {:.1} MB VmHWM; growth {:+.1} MiB RSS over the idle agent, {:.1} KiB per workload",
        after.rss_kib as f64 * 1024.0 / 1e6,
        after.rss_kib as f64 * 1024.0 / 1e6 / TARGET_MB,
        after.hwm_kib as f64 * 1024.0 / 1e6,
        (after.rss_kib as f64 - before.rss_kib as f64) / 1024.0,
        (after.rss_kib as f64 - before.rss_kib as f64) / n as f64,
    );

    let (status, log) = agent.stop().context("stopping the agent")?;
    if let Some(last) = log.iter().rev().find(|l| l.contains("recorded")) {
        println!("agent: {}", last.trim());
    }
    ensure!(status.success(), "the agent failed: {status}; log: {log:?}");
    let (workloads, profiles, entries) = count_profiles(&store, &parent.rel)?;
    println!(
        "store: {workloads} of {n} workloads learned, {profiles} profiles (revisions), {entries} entries ({:.1} per profile), {:.1} MiB on disk",
        entries as f64 / profiles.max(1) as f64,
        dir_bytes(&store) as f64 / (1024.0 * 1024.0)
    );
    ensure!(failed == 0, "{failed} workloads failed");
    drop(children);
    Ok(())
}
