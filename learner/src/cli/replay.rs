//! `baseliner replay`: score a recorded trace (`capture --json` output) offline against an
//! exported profile, and print the alerts it raises.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context as _, bail};
use profiles::{Event, redact::Redactor};
use scorer::{
    alert::{Aggregator, Observed},
    score::{Scorer, WorkloadState},
};

/// Options of `baseliner replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace: one event per line, as `baseliner capture --json` prints.
    events: PathBuf,
    /// The exported profile to score against (`baseliner profile export`), JSON or YAML.
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
    /// Print each alert as one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("reading {}", args.profile.display()))?;
    let export = profiles::export::import(&text)
        .with_context(|| format!("{} was not accepted", args.profile.display()))?;
    let file = std::fs::File::open(&args.events)
        .with_context(|| format!("opening {}", args.events.display()))?;
    let scorer = Scorer::default();
    let redactor = Redactor::default();
    let mut states: HashMap<String, WorkloadState> = HashMap::new();
    let mut aggregator = Aggregator::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut events, mut raised) = (0u64, 0u64);
    let started = Instant::now();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.events.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut event: Event = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not an event", args.events.display(), n + 1))?;
        if event.schema != profiles::event::SCHEMA_VERSION {
            bail!(
                "{} line {}: event schema {} (this build reads {})",
                args.events.display(),
                n + 1,
                event.schema,
                profiles::event::SCHEMA_VERSION
            );
        }
        redactor.redact_event(&mut event);
        events += 1;
        let state = states.entry(event.workload.id.clone()).or_default();
        let Some(alert) = scorer.score(&event, &export.profile, state) else {
            continue;
        };
        if let Observed::New = aggregator.observe(alert.clone()) {
            raised += 1;
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&alert)?)?;
            } else {
                writeln!(
                    out,
                    "{:8} {} {}",
                    alert.severity.as_str(),
                    alert.workload,
                    alert.summary
                )?;
            }
        }
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "scored {events} events against {} ({} entries) in {secs:.3} s ({:.0} events/s); {raised} alerts, {} repeats aggregated",
        export.workload,
        export.profile.len(),
        events as f64 / secs,
        aggregator
            .alerts()
            .map(|a| a.count.saturating_sub(1))
            .sum::<u64>()
    );
    Ok(ExitCode::SUCCESS)
}
