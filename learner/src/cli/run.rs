//! `baseliner run`: the agent in host mode. Captures, attributes, and records learning
//! workloads into the embedded store.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use learner::recorder::Recorder;
use profiles::{mode::Mode, redact::Redactor, store::Store};

use super::session::{CaptureArgs, Sink, drive};

/// Default location of the agent's store.
pub const DEFAULT_STORE: &str = "/var/lib/baseliner";

/// Options of `baseliner run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    watch: CaptureArgs,
    /// Directory of the embedded store (created when missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE, env = "BASELINER_STORE")]
    store: PathBuf,
    /// Mode of workloads that have none set.
    #[arg(long, value_name = "MODE", default_value = "learn")]
    default_mode: Mode,
    /// Seconds between writes of changed profiles to the store.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    flush_interval: f64,
}

struct Learner {
    recorder: Recorder,
    interval: std::time::Duration,
    last_flush: Instant,
    errors: u64,
}

impl Sink for Learner {
    fn event(&mut self, e: profiles::Event) -> anyhow::Result<()> {
        if let Err(err) = self.recorder.record(e) {
            // One bad event must not stop learning; the store itself failing does (on flush).
            self.errors += 1;
            tracing::warn!(error = %format!("{err:#}"), "event not recorded");
        }
        Ok(())
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        if self.last_flush.elapsed() >= self.interval {
            let n = self
                .recorder
                .flush()
                .context("writing profiles to the store")?;
            if n > 0 {
                tracing::debug!(profiles = n, "profiles written");
            }
            self.last_flush = Instant::now();
        }
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (opts, duration) = args.watch.options()?;
    let interval = std::time::Duration::try_from_secs_f64(args.flush_interval).map_err(|_| {
        anyhow::anyhow!("--flush-interval must be a non-negative number of seconds")
    })?;
    std::fs::create_dir_all(&args.store)
        .with_context(|| format!("creating the store directory {}", args.store.display()))?;
    let store = Store::open(&args.store).with_context(|| {
        format!(
            "opening the store at {} (is another agent running?)",
            args.store.display()
        )
    })?;
    tracing::info!(store = %args.store.display(), default_mode = %args.default_mode, "agent starting");
    let mut learner = Learner {
        recorder: Recorder::new(store, Redactor::default(), args.default_mode),
        interval,
        last_flush: Instant::now(),
        errors: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A final tick at the end of `drive` flushes; force it by making the interval elapse.
    let result = rt.block_on(async {
        let r = drive(&opts, duration, &mut learner).await;
        learner.last_flush = Instant::now() - learner.interval;
        learner.tick().and(r)
    });
    let (stats, _cap) = result?;
    let keys = learner.recorder.store().keys()?;
    eprintln!(
        "recorded {} events into {} profiles ({} secrets redacted, {} events not recorded); kernel: {}",
        learner.recorder.recorded,
        keys.len(),
        learner.recorder.redactions,
        learner.errors,
        stats.to_json()["total"]
    );
    Ok(ExitCode::SUCCESS)
}
