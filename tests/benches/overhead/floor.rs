//! The floor under the open probe: the same-file open loop against no agent, side by side with
//! - the two [`Reference`] programs on `sys_enter_openat` (a do-nothing one: the kernel's cost
//!   of running any program there; one that only copies the path: the least a probe that
//!   records paths costs), and
//! - the agent watching a *different* cgroup: its programs run on every `openat` but leave at
//!   the cgroup filter, and
//! - the agent watching the loop (`capture`), so all four are measured against the same runs.
//!
//! Each round runs the loop once per configuration (no agent first in odd rounds, last in even
//! ones); each configuration's result is the mean of its per-round ratios to the round's
//! no-agent run, with a 95 % confidence interval.

use anyhow::{Context as _, Result};
use baseliner_tests::TestCgroup;

use crate::{
    agent::Agent,
    estimate::Estimate,
    reference::Reference,
    util::{group, median},
    workload::{Run, run_workload},
};

/// A configuration measured against no agent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Config {
    Off,
    Reference(Reference),
    AgentElsewhere,
    AgentWatching,
}

impl Config {
    const ALL: [Config; 5] = [
        Config::Off,
        Config::Reference(Reference::Noop),
        Config::Reference(Reference::CopyPath),
        Config::AgentElsewhere,
        Config::AgentWatching,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Config::Off => "no agent",
            Config::Reference(r) => r.label(),
            Config::AgentElsewhere => "the agent watching another cgroup",
            Config::AgentWatching => "the agent watching the loop (capture)",
        }
    }
}

/// One configuration's ratios to no agent.
pub(crate) struct Row {
    pub(crate) config: Config,
    /// Per-round throughput ratios.
    pub(crate) ratios: Vec<f64>,
    pub(crate) throughput: Estimate,
    /// Per CPU-second of the workload.
    pub(crate) cpu: Estimate,
}

/// The floor's rows: the reference programs, then the agent elsewhere and watching the loop.
pub(crate) struct Floor {
    pub(crate) rows: Vec<Row>,
}

impl Floor {
    /// The row of configuration `config`.
    pub(crate) fn row(&self, config: Config) -> Option<&Row> {
        self.rows.iter().find(|r| r.config == config)
    }
}

/// Runs `rounds` rounds of the open loop `params` under every configuration.
pub(crate) fn measure(
    bin: &std::path::Path,
    params: &[String],
    secs: f64,
    rounds: usize,
) -> Result<Floor> {
    println!();
    println!(
        "## floor: open+close (same file) with reference programs on sys_enter_openat, and \
         with the agent watching another cgroup and the loop's"
    );
    let cg = TestCgroup::new("bench-floor").context("creating a cgroup")?;
    let other = TestCgroup::new("bench-floor-other").context("creating a cgroup")?;
    let measured = &Config::ALL[1..];
    let mut ratios = vec![Vec::new(); measured.len()];
    let mut cpu_ratios = vec![Vec::new(); measured.len()];
    for round in 1..=rounds {
        let mut order = Config::ALL.to_vec();
        if round % 2 == 0 {
            order.reverse();
        }
        let mut runs: Vec<(Config, Run)> = Vec::new();
        for config in order {
            let run = match config {
                Config::Off => run_workload(&cg, "open", params, secs, None)?,
                Config::Reference(r) => {
                    let _attached = r.attach()?;
                    run_workload(&cg, "open", params, secs, None)?
                }
                Config::AgentElsewhere | Config::AgentWatching => {
                    let watching = config == Config::AgentWatching;
                    let target = if watching { &cg } else { &other };
                    let agent = Agent::start(bin, &target.path, &[])?;
                    let run = run_workload(&cg, "open", params, secs, None);
                    let open = agent.stop()?.kind("open")?;
                    anyhow::ensure!(
                        (open.seen > 0) == watching,
                        "the agent saw {} opens while watching {}",
                        open.seen,
                        target.rel
                    );
                    run?
                }
            };
            runs.push((config, run));
        }
        let get = |c: Config| {
            runs.iter()
                .find(|(k, _)| *k == c)
                .map(|(_, r)| r)
                .context("a configuration of the round did not run")
        };
        let off = get(Config::Off)?;
        let mut line = format!(
            "  round {round}: no agent {:>10} ops/s",
            group(off.ops_per_s as u64)
        );
        for (i, &c) in measured.iter().enumerate() {
            let on = get(c)?;
            ratios[i].push(on.ops_per_s / off.ops_per_s);
            cpu_ratios[i].push(on.ops_per_cpu_s / off.ops_per_cpu_s);
            line += &format!("; {:.3}", on.ops_per_s / off.ops_per_s);
        }
        println!("{line}  (ratios in the order below)");
    }
    let rows: Vec<Row> = measured
        .iter()
        .zip(ratios.into_iter().zip(cpu_ratios))
        .map(|(&config, (r, cpu))| Row {
            config,
            throughput: Estimate::of(&r),
            cpu: Estimate::of(&cpu),
            ratios: r,
        })
        .collect();
    for row in &rows {
        println!(
            "  {}: slowdown {}; median ratio {:.3}; per CPU-second {:.3} ± {:.3}",
            row.config.label(),
            row.throughput.slowdown_text(),
            median(&row.ratios),
            row.cpu.mean,
            row.cpu.half_width
        );
    }
    Ok(Floor { rows })
}
