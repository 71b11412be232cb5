//! Enforcement's own cost, measured inside one agent. Throughput runs of separate agents
//! (`capture`, then `run` enforcing) differ by more than the 2 % target on this shared machine
//! from one second to the next, so this measurement keeps everything but enforcement the same:
//! one `baseliner run` watches two cgroups whose workloads have the same 100-entry profile, one
//! in enforce mode (the kernel checks every exec and connect), one in alert mode (scored the
//! same way in userspace, nothing checked in the kernel). The loop then runs in short slices,
//! alternating between the two cgroups (E A, A E, ...), so load drift hits both alike; the
//! result is the mean of the per-pair ratios with a 95 % confidence interval. With BPF
//! run-time statistics on, each slice also yields the BPF time per operation, so what the
//! kernel's checks add is measured directly too (the throughput of a connect loop varies by
//! several percent from one slice to the next on this shared machine; the BPF time does not).

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    programs::loaded_programs,
    sys::{Stats, enable_stats},
};
use baseliner_tests::TestCgroup;

use crate::{
    enforce::{Counters, EnforceStore},
    estimate::Estimate,
    util::group,
    workload::run_workload,
};

/// The interleaved comparison of one loop.
pub(crate) struct Interleaved {
    pub(crate) pairs: usize,
    /// Throughput (operations per second of wall-clock time).
    pub(crate) throughput: Estimate,
    /// Operations per CPU-second of the workload: the kernel's checks run in the workload's
    /// own context, so this is what enforcement costs it, without the noise of other tenants
    /// taking the CPU.
    pub(crate) cpu: Estimate,
    pub(crate) enforce_ops: f64,
    pub(crate) alert_ops: f64,
    /// BPF run time per operation that enforcing slices add over alerting ones (ns).
    pub(crate) bpf_added_ns: Estimate,
    /// The alerting slices' CPU time per operation (ns, mean).
    pub(crate) op_cpu_ns: f64,
    pub(crate) counters: Counters,
}

impl Interleaved {
    /// The added BPF time as a share of an operation's CPU time, in percent, with the
    /// interval's ends.
    pub(crate) fn bpf_share(&self) -> (f64, f64, f64) {
        let pct = |ns: f64| ns / self.op_cpu_ns * 100.0;
        let e = self.bpf_added_ns;
        (
            pct(e.mean),
            pct(e.mean - e.half_width),
            pct(e.mean + e.half_width),
        )
    }
}

/// Run time of every loaded BPF program so far, in nanoseconds (counted while
/// [`enable_stats`] is held). Both kinds of slice run the same programs; the enforcing one's
/// checks do more.
fn bpf_run_ns() -> Result<u64> {
    let mut total = 0u64;
    for info in loaded_programs() {
        let info = info.context("reading a loaded program's statistics")?;
        total = total.saturating_add(info.run_time().as_nanos() as u64);
    }
    Ok(total)
}

/// Runs `pairs` enforce/alert slice pairs of `kind params`, each slice `slice_secs` long.
pub(crate) fn measure(
    bin: &std::path::Path,
    label: &str,
    kind: &str,
    params: &[String],
    port: u16,
    slice_secs: f64,
    pairs: usize,
) -> Result<Interleaved> {
    let enforced =
        TestCgroup::new(&format!("bench-{label}-enforced")).context("creating a cgroup")?;
    let alerting =
        TestCgroup::new(&format!("bench-{label}-alerting")).context("creating a cgroup")?;
    let mut store = EnforceStore::create(bin, &enforced, port)?;
    store.add_alerting(&alerting, port)?;
    println!(
        "  interleaved: one `baseliner run`, {} enforcing and {} alerting on the same profile; \
         {pairs} pairs of {slice_secs} s slices",
        enforced.rel, alerting.rel
    );
    // Counts every BPF program's run time while held (the kernel's BPF_ENABLE_STATS).
    let _stats = enable_stats(Stats::RunTime).context("enabling BPF run-time statistics")?;
    let mut bpf_added = Vec::new();
    let mut op_cpu_ns = Vec::new();
    let mut agent = store.start_agent()?;
    let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    let (mut enforce_ops, mut alert_ops, mut enforce_execs) = (0.0, 0.0, 0u64);
    let mut connects = 0u64;
    let result = (|| -> Result<()> {
        for pair in 0..pairs {
            let order = if pair % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            let mut runs = [None, None];
            let mut bpf_ns_per_op = [0.0; 2];
            for enforce in order {
                let cg = if enforce { &enforced } else { &alerting };
                let before = bpf_run_ns()?;
                let run = run_workload(cg, kind, params, slice_secs, None)
                    .with_context(|| format!("{kind} loop in {}", cg.rel))?;
                let bpf = bpf_run_ns()?.saturating_sub(before);
                bpf_ns_per_op[enforce as usize] = bpf as f64 / run.ops.max(1) as f64;
                runs[enforce as usize] = Some(run);
            }
            let [Some(a), Some(e)] = runs else {
                bail!("a slice of pair {pair} did not run")
            };
            bpf_added.push(bpf_ns_per_op[1] - bpf_ns_per_op[0]);
            op_cpu_ns.push(1e9 / a.ops_per_cpu_s);
            ratios.push(e.ops_per_s / a.ops_per_s);
            cpu_ratios.push(e.ops_per_cpu_s / a.ops_per_cpu_s);
            enforce_ops += e.ops_per_s;
            alert_ops += a.ops_per_s;
            // The `__loop` child's own exec is checked too.
            match kind {
                "exec" => enforce_execs += e.ops + 1,
                _ => {
                    enforce_execs += 1;
                    connects += e.ops;
                }
            }
        }
        Ok(())
    })();
    let counters = store.counters(|c| {
        c.exec_killed + c.connect_denied > 0
            || (c.exec_checked >= enforce_execs && c.connect_checked >= connects)
    });
    agent.shutdown()?;
    result?;
    let counters = counters?;
    ensure!(
        counters.exec_killed + counters.connect_denied == 0,
        "enforce mode blocked operations of the {kind} loop ({counters}): the comparison would \
         be meaningless"
    );
    ensure!(
        counters.exec_checked >= enforce_execs && counters.connect_checked >= connects,
        "the kernel checked fewer operations ({counters}) than the enforced slices did \
         ({enforce_execs} execs, {connects} connects)"
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  per-pair enforce/alert throughput: {}", list(&ratios));
    println!(
        "  per-pair enforce/alert per CPU-second: {}",
        list(&cpu_ratios)
    );
    let n = ratios.len() as f64;
    let r = Interleaved {
        pairs,
        throughput: Estimate::of(&ratios),
        cpu: Estimate::of(&cpu_ratios),
        enforce_ops: enforce_ops / n,
        alert_ops: alert_ops / n,
        bpf_added_ns: Estimate::of(&bpf_added),
        op_cpu_ns: op_cpu_ns.iter().sum::<f64>() / n,
        counters,
    };
    for (what, e) in [("throughput", r.throughput), ("per CPU-second", r.cpu)] {
        let (pct, lo, hi) = e.slowdown();
        println!(
            "  interleaved, {what}: enforce/alert {:.3} ± {:.3} → enforce adds {pct:.1} % \
             (95 % CI {lo:.1} … {hi:.1} %)",
            e.mean, e.half_width
        );
    }
    let (share, lo, hi) = r.bpf_share();
    println!(
        "  interleaved, BPF run time: enforcing adds {:.0} ± {:.0} ns per operation, \
         {share:.2} % (95 % CI {lo:.2} … {hi:.2} %) of an operation's {:.1} µs of CPU",
        r.bpf_added_ns.mean,
        r.bpf_added_ns.half_width,
        r.op_cpu_ns / 1000.0
    );
    println!(
        "  interleaved: enforcing {} ops/s, alerting {} ops/s (means); kernel: {}",
        group(r.enforce_ops as u64),
        group(r.alert_ops as u64),
        r.counters
    );
    Ok(r)
}
