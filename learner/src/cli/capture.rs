//! `baseliner capture`.

use std::{
    io::{BufWriter, Write},
    process::ExitCode,
};

use anyhow::Context as _;
use learner::view;

use super::session::{CaptureArgs, Sink, drive};

/// Options of `baseliner capture`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    watch: CaptureArgs,
    /// One JSON object per line (schema in datasets/README.md) instead of the readable view.
    #[arg(long)]
    json: bool,
    /// Print the kernel statistics on exit as JSON (one line on stderr).
    #[arg(long)]
    stats_json: bool,
}

/// Writes events to stdout. A closed pipe ends the capture quietly.
struct Printer<W: Write> {
    out: W,
    json: bool,
    closed: bool,
}

impl<W: Write> Printer<W> {
    fn check(&mut self, r: std::io::Result<()>) -> anyhow::Result<()> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Err(e.into())
            }
            r => r.context("writing events"),
        }
    }
}

impl<W: Write> Sink for Printer<W> {
    fn event(&mut self, e: profiles::Event) -> anyhow::Result<()> {
        let r = if self.json {
            serde_json::to_writer(&mut self.out, &e)
                .map_err(std::io::Error::from)
                .and_then(|_| self.out.write_all(b"\n"))
        } else {
            writeln!(self.out, "{}", view::line(&e))
        };
        self.check(r)
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        let r = self.out.flush();
        self.check(r)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (opts, duration) = args.watch.options()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = Printer {
        out: BufWriter::new(std::io::stdout().lock()),
        json: args.json,
        closed: false,
    };
    let (stats, cap) = match rt.block_on(drive(&opts, duration, &mut out)) {
        Err(_) if out.closed => return Ok(ExitCode::SUCCESS),
        r => r?,
    };
    let total = stats.total();
    if args.stats_json {
        let mut j = stats.to_json();
        j["received"] = cap.received().into();
        j["decode_errors"] = cap.counts.decode_errors.into();
        j["own_events_skipped"] = cap.counts.own_events.into();
        j["existing"] = cap.counts.existing.into();
        eprintln!("{j}");
    } else {
        eprintln!("kernel statistics:\n{stats}");
        eprintln!(
            "received by userspace: {} (decode errors: {}, the agent's own events skipped: {}); \
             processes found running at start: {}",
            cap.received(),
            cap.counts.decode_errors,
            cap.counts.own_events,
            cap.counts.existing
        );
    }
    if total.dropped > 0 {
        tracing::warn!(
            dropped = total.dropped,
            "events were dropped because the ring buffer was full; raise --ring-kib"
        );
    }
    Ok(ExitCode::SUCCESS)
}
