//! `baseliner eval DIR`: detection quality on the recorded dataset (see `datasets/README.md`).

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use learner::evaluate::{EvalConfig, Trace, TraceInfo, TraceResult, evaluate};
use scorer::alert::Severity;

/// Options of `baseliner eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dataset directory (with manifest.json).
    dir: PathBuf,
    /// Share of each normal trace (by time) learned; the rest is held back.
    #[arg(long, default_value_t = 0.7)]
    learn_fraction: f64,
    /// The lowest severity that counts as a detection or a false alarm.
    #[arg(long, default_value = "medium")]
    min_severity: Severity,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

fn load(dir: &Path, info: TraceInfo) -> anyhow::Result<Trace> {
    let path = dir.join(&info.file);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if info.file.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut events = Vec::new();
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{} line {}: not an event", path.display(), n + 1))?,
        );
    }
    Ok(Trace { info, events })
}

fn render(results: &[TraceResult]) -> String {
    let mut out = format!(
        "{:10} {:16} {:7} {:>7} {:>7}  result\n",
        "WORKLOAD", "TRACE", "KIND", "EVENTS", "ALERTS"
    );
    for r in results {
        let result = match (r.false_alarms_per_hour, r.detected) {
            (Some(rate), _) => format!(
                "{rate:.1} false alarms per workload-hour ({:.0} s held back)",
                r.seconds
            ),
            (_, Some(true)) => format!(
                "detected ({}) after {:.0} ms; {} alerts before the attack",
                r.max_severity.map_or("?", |s| s.as_str()),
                r.time_to_alert_ms.unwrap_or(0.0),
                r.alerts_before_attack.unwrap_or(0)
            ),
            _ => "MISSED".to_string(),
        };
        out += &format!(
            "{:10} {:16} {:7} {:>7} {:>7}  {result}\n",
            r.workload, r.trace, r.kind, r.events_scored, r.alerts
        );
        if let Some(m) = &r.rate_model {
            out += &format!("{:44}  rate model: {m}\n", "");
        }
        const SHOWN: usize = 4;
        for s in r.summaries.iter().take(SHOWN) {
            out += &format!("{:44}- {s}\n", "");
        }
        if r.summaries.len() > SHOWN {
            out += &format!("{:44}  … {} more\n", "", r.summaries.len() - SHOWN);
        }
    }
    let normals: Vec<&TraceResult> = results.iter().filter(|r| r.kind == "normal").collect();
    let hours: f64 = normals.iter().map(|r| r.seconds / 3600.0).sum();
    let alarms: usize = normals.iter().map(|r| r.alerts).sum();
    if hours > 0.0 {
        out += &format!(
            "\nnormal traffic held back: {hours:.2} workload-hours, {alarms} false alarms \
             ({:.2} per workload-hour)\n",
            alarms as f64 / hours
        );
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..1.0).contains(&args.learn_fraction) || args.learn_fraction == 0.0 {
        bail!("--learn-fraction must be between 0 and 1");
    }
    let manifest = args.dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let infos: Vec<TraceInfo> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a trace manifest", manifest.display()))?;
    let traces = infos
        .into_iter()
        .map(|i| load(&args.dir, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = EvalConfig {
        learn_fraction: args.learn_fraction,
        min_severity: args.min_severity,
    };
    let results = evaluate(traces, &cfg);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", render(&results));
    }
    let missed = results.iter().filter(|r| r.detected == Some(false)).count();
    Ok(if missed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
