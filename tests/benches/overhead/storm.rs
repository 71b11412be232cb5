//! The storm: a tiny ring, no dedup, two processes opening distinct files as fast as they can.
//! Every event the kernel saw must be accounted for: emitted (and received), deduplicated, or
//! counted as dropped.

use std::{path::Path, thread};

use anyhow::{Context as _, Result, anyhow};
use baseliner_tests::TestCgroup;

use crate::{
    DISTINCT_FILES,
    agent::{Agent, KindStats},
    util::group,
    workload::run_workload,
};

/// What the storm showed.
pub(crate) struct Storm {
    /// Opens per second of both processes.
    pub(crate) ops: f64,
    pub(crate) open: KindStats,
    pub(crate) received: u64,
    /// True when every accounting check held.
    pub(crate) passed: bool,
}

/// Runs the storm over the files in `dir` for `secs`.
pub(crate) fn run(bin: &Path, dir: &str, secs: f64) -> Result<Storm> {
    println!();
    println!(
        "## storm: 2 processes opening {DISTINCT_FILES} distinct files, --ring-kib 4 --dedup-window 0"
    );
    let cg = TestCgroup::new("bench-storm").context("creating a cgroup")?;
    let agent = Agent::start(bin, &cg.path, &["--ring-kib", "4", "--dedup-window", "0"])?;
    let params = vec![dir.to_string(), DISTINCT_FILES.to_string()];
    let runs = thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| run_workload(&cg, "open", &params, secs, None)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("storm thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    });
    let report = agent.stop()?;
    let ops: f64 = runs?.iter().map(|r| r.ops_per_s).sum();
    let open = report.kind("open")?;
    let total = report.kind("total")?;
    let received = report.counter("received")?;
    let decode_errors = report.counter("decode_errors")?;
    println!("  workload: {} opens/s (both processes)", group(ops as u64));
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
    let mut passed = true;
    for (what, ok) in checks {
        println!("  {} {what}", if ok { "PASS" } else { "FAIL" });
        passed &= ok;
    }
    if total.dropped == 0 {
        println!("  NOTE the 4 KiB ring never overflowed, so drop accounting was not exercised");
    }
    Ok(Storm {
        ops,
        open,
        received,
        passed,
    })
}
