//! Replay speed: `baseliner replay` end to end (reading, JSON decoding, redaction, scoring and
//! the rate model) on one core, over the recorded nginx trace repeated to `BENCH_EVENTS` events
//! (default 2,000,000), scored against a profile learned from that trace. No root needed.
//! Build the agent first: `cargo build --release -p learner`, then
//! `cargo bench -p baseliner-tests --bench replay`. `BENCH_RUNS` (default 3) runs; the best and
//! the median are printed (the machine is shared: the best is the least disturbed run).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, ensure};
use baseliner_tests::{baseliner_bin, bench_main, env_num};
use profiles::{Event, model::Profile};

fn main() -> ExitCode {
    bench_main("replay bench", bench)
}

fn bench() -> Result<ExitCode> {
    let events: usize = env_num("BENCH_EVENTS", 2_000_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    ensure!(
        events > 0 && runs > 0,
        "BENCH_EVENTS and BENCH_RUNS must be positive"
    );
    let trace =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/traces/nginx.jsonl.gz");
    let file =
        std::fs::File::open(&trace).with_context(|| format!("opening {}", trace.display()))?;
    let lines: Vec<String> = BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .collect::<Result<_, _>>()?;
    let mut profile = Profile::default();
    for l in &lines {
        let e: Event = serde_json::from_str(l)?;
        profile.record(&e);
    }
    let dir = baseliner_tests::temp_dir("replay-bench");
    let export = profiles::export::export("/nginx", "bench", serde_json::Value::Null, &profile);
    let profile_file = dir.join("profile.json");
    std::fs::write(&profile_file, profiles::export::to_json(&export))?;
    let trace_file = dir.join("trace.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&trace_file)?);
    for l in lines.iter().cycle().take(events) {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    drop(out);
    let bin = baseliner_bin();
    println!(
        "baseliner replay: {events} events ({} distinct lines of the nginx trace), profile of {} entries; {} ({runs} runs)",
        lines.len(),
        profile.len(),
        bin.display()
    );
    let mut rates = Vec::new();
    for run in 1..=runs {
        let out = Command::new(&bin)
            .args(["replay", "--profile"])
            .arg(&profile_file)
            .arg(&trace_file)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "replay failed: {stderr}");
        // "... in S s (N events/s); ..."
        let rate: f64 = stderr
            .split(" events/s")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no rate in: {stderr}"))?;
        println!("  run {run}: {rate:.0} events/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let best = rates[rates.len() - 1];
    let median = rates[rates.len() / 2];
    println!("best {best:.0} events/s, median {median:.0} events/s (target ≥ 1,000,000)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
