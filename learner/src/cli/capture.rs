//! `baseliner capture`.

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use learner::{
    attribution::cgroup,
    capture::{Capture, CaptureOptions},
    kernel::LoadOptions,
    view,
};

/// Options of `baseliner capture`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per line (schema in datasets/README.md) instead of the readable view.
    #[arg(long)]
    json: bool,
    /// Watch only this cgroup2 directory and its sub-cgroups (repeatable). A path under the
    /// cgroup2 mount, or relative to it such as /system.slice/nginx.service. Default: all.
    #[arg(long = "cgroup", value_name = "PATH")]
    cgroups: Vec<PathBuf>,
    /// Watch the cgroup of this process (repeatable), e.g. `--pid $$` for your own shell.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Dedup window: an identical event is sent at most once per window of this many seconds;
    /// repeats are counted in the kernel, not sent (0: off).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    dedup_window: f64,
    /// Ring buffer size in KiB (rounded up to a power of two).
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    ring_kib: u32,
    /// Print the kernel statistics on exit as JSON (one line on stderr).
    #[arg(long)]
    stats_json: bool,
}

/// Writes events to stdout; remembers the first write error (e.g. a closed pipe) and stops.
struct Printer<W: Write> {
    out: W,
    json: bool,
    err: Option<std::io::Error>,
}

impl<W: Write> Printer<W> {
    fn emit(&mut self, e: &profiles::Event) {
        if self.err.is_some() {
            return;
        }
        let r = if self.json {
            serde_json::to_writer(&mut self.out, e)
                .map_err(std::io::Error::from)
                .and_then(|_| self.out.write_all(b"\n"))
        } else {
            writeln!(self.out, "{}", view::line(e))
        };
        if let Err(err) = r {
            self.err = Some(err);
        }
    }

    fn flush(&mut self) {
        if self.err.is_none()
            && let Err(e) = self.out.flush()
        {
            self.err = Some(e);
        }
    }
}

fn seconds(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("--{name} must be a non-negative number of seconds, got {v}"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let duration = args.duration.map(|d| seconds("duration", d)).transpose()?;
    let mut cgroups = args.cgroups.clone();
    for pid in &args.pids {
        let path = cgroup::cgroup_of_pid(*pid)
            .with_context(|| format!("--pid {pid}: cannot read the process's cgroup"))?;
        cgroups.push(PathBuf::from(path));
    }
    let opts = CaptureOptions {
        cgroups,
        load: LoadOptions {
            ring_bytes: args.ring_kib.saturating_mul(1024),
            dedup_window: seconds("dedup-window", args.dedup_window)?,
            ..LoadOptions::default()
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(capture(args, opts, duration))
}

async fn capture(
    args: Args,
    opts: CaptureOptions,
    duration: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let mut cap = Capture::start(&opts)?;
    let what = if opts.cgroups.is_empty() {
        "all cgroups".to_string()
    } else {
        opts.cgroups
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    tracing::info!("capturing {what}; Ctrl-C to stop");

    let mut out = Printer {
        out: BufWriter::new(std::io::stdout().lock()),
        json: args.json,
        err: None,
    };
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    // Both streams are registered once, before the loop: a signal that arrives while a batch is
    // being handled is kept for the next select instead of being lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while out.err.is_none() {
        tokio::select! {
            r = cap.next_batch(|e| out.emit(&e)) => { r?; }
            _ = tick.tick() => { cap.tick()?; }
            _ = &mut deadline => break,
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
        out.flush();
    }
    let stats = cap.finish(|e| out.emit(&e))?;
    out.flush();
    if let Some(e) = out.err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing events");
    }

    let total = stats.total();
    if args.stats_json {
        let mut j = stats.to_json();
        j["received"] = cap.received().into();
        j["decode_errors"] = cap.counts.decode_errors.into();
        j["own_events_skipped"] = cap.counts.own_events.into();
        eprintln!("{j}");
    } else {
        eprintln!("kernel statistics:\n{stats}");
        eprintln!(
            "received by userspace: {} (decode errors: {}, the agent's own events skipped: {})",
            cap.received(),
            cap.counts.decode_errors,
            cap.counts.own_events
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
