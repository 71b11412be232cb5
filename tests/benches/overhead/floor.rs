//! The floor under any syscall probe: the same-file open loop while the agent watches a
//! *different* cgroup. Its programs still run on every `openat` (and the kernel takes its
//! syscall-tracing path on every syscall), but the cgroup filter sends them home at once, so
//! what this costs the loop is what the kernel charges before a probe does any work.

use anyhow::{Context as _, Result};
use baseliner_tests::TestCgroup;

use crate::{
    agent::Agent,
    util::{group, median},
    workload::run_workload,
};

/// Median per-round ratios (throughput, per CPU-second) of the open loop with the agent
/// watching another cgroup against no agent.
pub(crate) struct Floor {
    pub(crate) ratio: f64,
    pub(crate) cpu_ratio: f64,
}

/// Runs `rounds` off / unwatched pairs (order alternating) of the open loop `params`.
pub(crate) fn measure(
    bin: &std::path::Path,
    params: &[String],
    secs: f64,
    rounds: usize,
) -> Result<Floor> {
    println!();
    println!("## floor: open+close (same file), the agent watching another cgroup");
    let cg = TestCgroup::new("bench-floor").context("creating a cgroup")?;
    let other = TestCgroup::new("bench-floor-other").context("creating a cgroup")?;
    let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let mut runs = [None, None];
        for watching in if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        } {
            runs[watching as usize] = Some(if watching {
                let agent = Agent::start(bin, &other.path, &[])?;
                let run = run_workload(&cg, "open", params, secs, None);
                let report = agent.stop()?;
                let open = report.kind("open")?;
                anyhow::ensure!(
                    open.seen == 0,
                    "the agent watched another cgroup but saw {} opens",
                    open.seen
                );
                run?
            } else {
                run_workload(&cg, "open", params, secs, None)?
            });
        }
        let [Some(off), Some(on)] = runs else {
            unreachable!("both runs of the round were made")
        };
        ratios.push(on.ops_per_s / off.ops_per_s);
        cpu_ratios.push(on.ops_per_cpu_s / off.ops_per_cpu_s);
        println!(
            "  round {round}: off {:>10} ops/s   watching another cgroup {:>10} ops/s   \
             (ratio {:.3}; per CPU-second {:.3})",
            group(off.ops_per_s as u64),
            group(on.ops_per_s as u64),
            on.ops_per_s / off.ops_per_s,
            on.ops_per_cpu_s / off.ops_per_cpu_s
        );
    }
    let floor = Floor {
        ratio: median(&ratios),
        cpu_ratio: median(&cpu_ratios),
    };
    println!(
        "  median ratio {:.3} (slowdown {:.1}%); per CPU-second {:.3}",
        floor.ratio,
        (1.0 - floor.ratio) * 100.0,
        floor.cpu_ratio
    );
    Ok(floor)
}
