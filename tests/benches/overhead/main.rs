//! Capture overhead: how much slower tight loops run while `baseliner capture` watches them.
//!
//! Each loop runs in a child process (this binary re-executed with `__loop ...`) inside a private
//! cgroup2 directory, so the agent's cgroup filter selects it — the realistic case of a
//! monitored workload. Each round measures agent off and on back to back (odd rounds off first, even rounds on first); the slowdown is the median of the per-round ratios. The agent's
//! stdout (one JSON event per line) is read and counted by this process, so userspace decoding
//! and serialisation are part of the cost.
//!
//! The exec and connect loops get a third measurement per round: `baseliner run` with the
//! loop's workload in enforce mode against a 100-entry allow-list that allows what the loop
//! does (odd rounds off, capture, enforce; even rounds the reverse). The kernel's enforcement
//! counters must show every operation checked and none blocked, else the bench fails. A final storm with a 4 KiB ring checks that every
//! event the kernel saw is accounted for (emitted, deduplicated or counted as dropped).
//!
//! Needs root. Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench overhead`. Environment: `BENCH_SECONDS` (per
//! measurement, default 2), `BENCH_ROUNDS` (default 5), `BENCH_LOOPS` (labels to run, comma
//! separated: exec, open, open-distinct, connect; default all), `BENCH_PAIRS` (enforce/alert
//! slice pairs of the interleaved enforcement measurement, default 60),
//! `BENCH_SLICE_SECONDS` (its slice length, default 0.5), and `BENCH_FLOOR_ROUNDS` (default 20)
//! and `BENCH_FLOOR_SECONDS` (default 0.5) for the open loop's floor.

mod agent;
mod enforce;
mod estimate;
mod floor;
mod interleave;
mod reference;
mod storm;
mod summary;
mod util;
mod workload;

use std::{fs, process::ExitCode, thread};

use anyhow::{Context as _, Result, bail, ensure};
use baseliner_tests::{TestCgroup, bench_main, env_num};

use agent::{Agent, agent_binary};
use enforce::{ALLOW_LIST_ENTRIES, Counters, EnforceStore};
use estimate::Estimate;
use util::{group, median};
use workload::{TempFiles, run_workload, start_listener, workload};

/// The open+close target: at most this much slower with capture on (percent).
const OPEN_TARGET: f64 = 15.0;

/// Files opened in rotation by the distinct-files loop and the storm.
const DISTINCT_FILES: usize = 2000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__loop") {
        return bench_main("overhead workload", || workload(&args[2..]));
    }
    // Anything else (cargo passes `--bench`) is ignored.
    bench_main("overhead bench", bench)
}

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
    /// Also measure `baseliner run` with the workload in enforce mode.
    enforce: bool,
}

/// The enforce-mode measurement of a loop.
struct EnforceResult {
    /// Median ops/s.
    ops: f64,
    /// Median of the per-round enforce/off ratios.
    vs_off: f64,
    /// Median of the per-round enforce/capture ratios.
    vs_capture: f64,
    /// Median of the per-round enforce/capture ratios of operations per CPU-second.
    cpu_vs_capture: f64,
    /// The kernel counters after the last enforce run.
    counters: Counters,
}

struct LoopResult {
    name: &'static str,
    off: f64,
    on: f64,
    /// Median of the per-round on/off ratios (adjacent runs, so less exposed to load drift).
    ratio: f64,
    /// Median of the per-round ratios of operations per CPU-second of the workload.
    cpu_ratio: f64,
    /// Mean of the per-round on/off ratios with its 95 % interval.
    estimate: Estimate,
    rss_kib: Option<u64>,
    enforce: Option<EnforceResult>,
    interleaved: Option<interleave::Interleaved>,
}

fn bench() -> Result<ExitCode> {
    if !baseliner_tests::live_enabled("overhead") {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(bin) = agent_binary() else {
        return Ok(ExitCode::FAILURE);
    };
    let secs: f64 = env_num("BENCH_SECONDS", 2.0)?;
    let rounds: usize = env_num("BENCH_ROUNDS", 5)?;
    let pairs: usize = env_num("BENCH_PAIRS", 60)?;
    let slice: f64 = env_num("BENCH_SLICE_SECONDS", 0.5)?;
    let floor_rounds: usize = env_num("BENCH_FLOOR_ROUNDS", 20)?;
    let floor_secs: f64 = env_num("BENCH_FLOOR_SECONDS", 0.5)?;
    ensure!(
        pairs > 0 && slice > 0.0,
        "BENCH_PAIRS and BENCH_SLICE_SECONDS must be positive"
    );
    ensure!(
        secs > 0.0 && rounds > 0 && floor_secs > 0.0 && floor_rounds > 0,
        "BENCH_SECONDS, BENCH_ROUNDS, BENCH_FLOOR_SECONDS and BENCH_FLOOR_ROUNDS must be positive"
    );

    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!("baseliner capture overhead");
    println!(
        "agent {}; kernel {}; {cpus} CPUs; {secs} s per measurement, {rounds} rounds (off/on, then on/off; \
         exec and connect also enforce: off/capture/enforce, then the reverse)",
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
            enforce: true,
        },
        Loop {
            name: "open+close (same file)",
            label: "open",
            kind: "open",
            params: vec![dir.clone(), "1".into()],
            agent_args: &[],
            stat_kind: "open",
            enforce: false,
        },
        Loop {
            name: "open+close (2000 distinct files, dedup off)",
            label: "open-distinct",
            kind: "open",
            params: vec![dir.clone(), DISTINCT_FILES.to_string()],
            agent_args: &["--dedup-window", "0"],
            stat_kind: "open",
            enforce: false,
        },
        Loop {
            name: "connect+close 127.0.0.1",
            label: "connect",
            kind: "connect",
            params: vec![port.to_string()],
            agent_args: &[],
            stat_kind: "connect",
            enforce: true,
        },
    ];

    // BENCH_LOOPS=open,connect runs only those loops (by label).
    let only = std::env::var("BENCH_LOOPS").unwrap_or_default();
    let selected = |label: &str| only.is_empty() || only.split(',').any(|o| o.trim() == label);
    let mut results = Vec::new();
    for l in loops.iter().filter(|l| selected(l.label)) {
        println!();
        let dedup = if l.agent_args.is_empty() {
            "default dedup window"
        } else {
            "agent: --dedup-window 0"
        };
        println!("## {} ({dedup})", l.name);
        let cg = TestCgroup::new(&format!("bench-{}", l.label)).context("creating a cgroup")?;
        let store = if l.enforce {
            let s = EnforceStore::create(&bin, &cg, port)?;
            println!(
                "  enforce: `baseliner run`, {} in enforce mode with a {ALLOW_LIST_ENTRIES}-entry allow-list",
                cg.rel
            );
            Some(s)
        } else {
            None
        };
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let mut last = None;
        let mut ratios = Vec::new();
        let mut cpu_ratios = Vec::new();
        let (mut enf, mut enf_off, mut enf_cap, mut enf_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut counters = None;
        for round in 1..=rounds {
            // Odd rounds measure off, capture (, enforce); even rounds the reverse, so a drift
            // in machine load cancels out.
            let mut order = vec![Measure::Off, Measure::Capture];
            if store.is_some() {
                order.push(Measure::Enforce);
            }
            if round % 2 == 0 {
                order.reverse();
            }
            let (mut o, mut r, mut e) = (None, None, None);
            for m in order {
                match m {
                    Measure::Off => o = Some(run_workload(&cg, l.kind, &l.params, secs, None)?),
                    Measure::Capture => {
                        let agent = Agent::start(&bin, &cg.path, l.agent_args)?;
                        let run = run_workload(&cg, l.kind, &l.params, secs, Some(agent.pid()));
                        let report = agent.stop()?;
                        let run = run?;
                        last = Some((report, run.rss_kib));
                        r = Some(run);
                    }
                    Measure::Enforce => {
                        let store = store.as_ref().context("no enforce store")?;
                        let (run, c) = run_enforced(store, &cg, l, secs)?;
                        counters = Some(c);
                        e = Some(run);
                    }
                }
            }
            let (o, r) = (o.context("no off run")?, r.context("no capture run")?);
            ratios.push(r.ops_per_s / o.ops_per_s);
            cpu_ratios.push(r.ops_per_cpu_s / o.ops_per_cpu_s);
            print!(
                "  round {round}: off {:>10} ops/s   capture {:>10} ops/s   (capture/off {:.3}; per CPU-second {:.3})",
                group(o.ops_per_s as u64),
                group(r.ops_per_s as u64),
                r.ops_per_s / o.ops_per_s,
                r.ops_per_cpu_s / o.ops_per_cpu_s
            );
            if let Some(e) = e {
                println!(
                    "   enforce {:>10} ops/s   (enforce/off {:.3}, enforce/capture {:.3}; \
                     per CPU-second {:.3})",
                    group(e.ops_per_s as u64),
                    e.ops_per_s / o.ops_per_s,
                    e.ops_per_s / r.ops_per_s,
                    e.ops_per_cpu_s / r.ops_per_cpu_s
                );
                enf.push(e.ops_per_s);
                enf_off.push(e.ops_per_s / o.ops_per_s);
                enf_cap.push(e.ops_per_s / r.ops_per_s);
                enf_cpu.push(e.ops_per_cpu_s / r.ops_per_cpu_s);
            } else {
                println!();
            }
            off.push(o.ops_per_s);
            on.push(r.ops_per_s);
        }
        if let Some(s) = &store {
            println!(
                "  enforce: allow-list of {ALLOW_LIST_ENTRIES} entries, {} kernel map entries",
                s.kernel_entries.get()
            );
        }
        drop(store);
        let enforce = counters.map(|counters| EnforceResult {
            ops: median(&enf),
            vs_off: median(&enf_off),
            vs_capture: median(&enf_cap),
            cpu_vs_capture: median(&enf_cpu),
            counters,
        });
        let (report, rss_kib) = last.context("no rounds")?;
        let (moff, mon, ratio) = (median(&off), median(&on), median(&ratios));
        let cpu_ratio = median(&cpu_ratios);
        println!(
            "  median: off {} ops/s, on {} ops/s; median of per-round ratios {:.3}, slowdown {:.1}%; \
             per CPU-second of the workload {:.3}",
            group(moff as u64),
            group(mon as u64),
            ratio,
            (1.0 - ratio) * 100.0,
            cpu_ratio
        );
        let estimate = Estimate::of(&ratios);
        println!(
            "  mean of per-round ratios {:.3} ± {:.3}: slowdown {}",
            estimate.mean,
            estimate.half_width,
            estimate.slowdown_text()
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
        if let Some(e) = &enforce {
            println!(
                "  enforce median: {} ops/s; median of per-round ratios: enforce/off {:.3}, \
                 enforce/capture {:.3} (enforce adds {:.1}% over capture); per CPU-second {:.3}",
                group(e.ops as u64),
                e.vs_off,
                e.vs_capture,
                (1.0 - e.vs_capture) * 100.0,
                e.cpu_vs_capture
            );
            println!("  last enforce run, kernel: {}", e.counters);
        }
        let interleaved = if l.enforce {
            Some(interleave::measure(
                &bin, l.label, l.kind, &l.params, port, slice, pairs,
            )?)
        } else {
            None
        };
        results.push(LoopResult {
            name: l.name,
            off: moff,
            on: mon,
            ratio,
            cpu_ratio,
            estimate,
            rss_kib,
            enforce,
            interleaved,
        });
    }

    let floor = if selected("open") {
        Some(floor::measure(
            &bin,
            &[dir.clone(), "1".into()],
            floor_secs,
            floor_rounds,
        )?)
    } else {
        None
    };

    let storm = storm::run(&bin, &dir, secs)?;

    summary::print(&results, floor.as_ref(), &storm);
    Ok(if !storm.passed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One measurement of a round.
#[derive(Clone, Copy)]
enum Measure {
    Off,
    Capture,
    Enforce,
}

/// Runs loop `l` while `baseliner run` enforces the workload's allow-list; the run and the
/// kernel's enforcement counters. Fails when the kernel blocked any of the loop's operations
/// (the allow-list covers all of them, so the numbers would be meaningless), or when it did
/// not check them all (enforcement was not in force).
fn run_enforced(
    store: &EnforceStore,
    cg: &TestCgroup,
    l: &Loop,
    secs: f64,
) -> Result<(workload::Run, Counters)> {
    let mut agent = store.start_agent()?;
    let run = run_workload(cg, l.kind, &l.params, secs, None);
    // Every exec of the workload is checked (the `__loop` child's own, then one per /bin/true
    // in the exec loop), and every connect of the connect loop.
    let (execs, connects) = match (&run, l.kind) {
        (Ok(r), "exec") => (r.ops + 1, 0),
        (Ok(r), "connect") => (1, r.ops),
        _ => (u64::MAX, u64::MAX),
    };
    let counters = store.counters(|c| {
        c.exec_killed + c.connect_denied > 0
            || (c.exec_checked >= execs && c.connect_checked >= connects)
    });
    agent.shutdown()?;
    let c = counters?;
    if c.exec_killed + c.connect_denied > 0 {
        let why = run
            .as_ref()
            .err()
            .map_or_else(String::new, |e| format!("; the loop failed: {e:#}"));
        bail!(
            "enforce mode blocked operations of the {} loop ({c}): the allow-list does not \
             cover what the loop does, so its numbers would be meaningless{why}",
            l.name
        );
    }
    let run = run.with_context(|| format!("{} under enforce mode", l.name))?;
    ensure!(
        c.exec_checked >= execs && c.connect_checked >= connects,
        "the kernel checked fewer operations ({c}) than the {} loop did ({execs} execs, \
         {connects} connects): enforcement was not in force for the whole run",
        l.name
    );
    Ok((run, c))
}
