//! The summary tables for the README.

use crate::{
    LoopResult, OPEN_TARGET,
    enforce::ALLOW_LIST_ENTRIES,
    estimate::{self, Estimate},
    floor::{Config, Floor},
    reference::Reference,
    storm::Storm,
    util::{group, median},
};

/// Prints every table: capture per loop, the open loop's floor, enforcement, memory, storm.
pub(crate) fn print(results: &[LoopResult], floor: Option<&Floor>, storm: &Storm) {
    println!();
    println!(
        "| loop | no agent (ops/s) | capture on (ops/s) | ratio | slowdown | slowdown, mean (95 % CI) \
         | ratio per CPU-second | enforce on (ops/s) | enforce vs no agent | enforce vs capture |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let enforce = r.enforce.as_ref().map_or_else(
            || "– | – | –".to_string(),
            |e| {
                format!(
                    "{} | {:.2} | {:+.1}%",
                    group(e.ops as u64),
                    e.vs_off,
                    (1.0 - e.vs_capture) * 100.0
                )
            },
        );
        println!(
            "| {} | {} | {} | {:.2} | {:.1}% | {} | {:.2} | {enforce} |",
            r.name,
            group(r.off as u64),
            group(r.on as u64),
            r.ratio,
            (1.0 - r.ratio) * 100.0,
            r.estimate.slowdown_text(),
            r.cpu_ratio
        );
    }
    if let Some(f) = floor {
        floor_rows(f);
    }
    println!();
    println!(
        "| loop, one agent: enforcing vs alerting slices | pairs | enforcing (ops/s) | alerting (ops/s) \
         | enforce adds: throughput (95 % CI) | target | per CPU-second (95 % CI) | target \
         | BPF time added per operation (95 % CI) | target |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---|---:|---|");
    for r in results {
        if let Some(i) = &r.interleaved {
            let cell = |e: &Estimate| {
                let (pct, lo, hi) = e.slowdown();
                format!("{pct:+.1} % ({lo:+.1} … {hi:+.1} %) | {}", e.verdict(2.0))
            };
            let (share, lo, hi) = i.bpf_share();
            let bpf_verdict = estimate::verdict(2.0, lo, hi);
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.0} ns = {share:.2} % ({lo:.2} … {hi:.2} %) | {bpf_verdict} |",
                r.name,
                i.pairs,
                group(i.enforce_ops as u64),
                group(i.alert_ops as u64),
                cell(&i.throughput),
                cell(&i.cpu),
                i.bpf_added_ns.mean
            );
        }
    }
    println!();
    println!(
        "enforce vs capture: slowdown of `baseliner run` enforcing a {ALLOW_LIST_ENTRIES}-entry \
         allow-list relative to `baseliner capture` (median of per-round ratios; negative: faster)"
    );
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
        group(storm.ops as u64),
        group(storm.open.seen),
        group(storm.open.emitted),
        group(storm.open.deduplicated),
        group(storm.open.dropped),
        group(storm.received),
        if !storm.passed {
            "accounting check FAILED"
        } else {
            "every event accounted for"
        }
    );
}

/// The open+close loop's slowdown beside what the kernel charges any probe there, and the
/// verdicts against the 15 % target.
fn floor_rows(f: &Floor) {
    println!();
    println!(
        "| open+close (same file), against no agent | rounds | slowdown, mean (95 % CI) | median |"
    );
    println!("|---|---:|---:|---:|");
    for row in &f.rows {
        println!(
            "| {} | {} | {} | {:.1} % |",
            row.config.label(),
            row.ratios.len(),
            row.throughput.slowdown_text(),
            (1.0 - median(&row.ratios)) * 100.0
        );
    }
    let copy_path = Config::Reference(Reference::CopyPath);
    if let (Some(copy), Some(capture)) = (f.row(copy_path), f.row(Config::AgentWatching)) {
        // Per round, so the no-agent run both share cancels out.
        let beyond: Vec<f64> = capture
            .ratios
            .iter()
            .zip(&copy.ratios)
            .map(|(c, p)| c / p)
            .collect();
        println!(
            "| the agent's own work beyond copying the path (capture against the copying program, per round) | {} | {} | {:.1} % |",
            beyond.len(),
            Estimate::of(&beyond).slowdown_text(),
            (1.0 - median(&beyond)) * 100.0
        );
    }
    println!();
    for (what, config) in [
        ("capture", Config::AgentWatching),
        (
            "the least a path-recording probe on this tracepoint costs",
            copy_path,
        ),
    ] {
        if let Some(r) = f.row(config) {
            println!(
                "open+close target, {what}: {}",
                r.throughput.verdict(OPEN_TARGET)
            );
        }
    }
}
