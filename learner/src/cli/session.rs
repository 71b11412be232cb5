//! What `capture` and `run` share: the options that choose what to watch, and the event loop
//! that feeds a sink until a deadline, Ctrl-C or SIGTERM.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use learner::{
    attribution::cgroup,
    capture::{Capture, CaptureOptions},
    kernel::{KernelStats, LoadOptions, Probes},
};
use profiles::Event;

/// Options that choose what to watch and how.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// Watch only this cgroup2 directory and its sub-cgroups (repeatable). A path under the
    /// cgroup2 mount, or relative to it such as /system.slice/nginx.service. Default: all.
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<PathBuf>,
    /// Watch the cgroup of this process (repeatable), e.g. `--pid $$` for your own shell.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Dedup window: an identical event is sent at most once per window of this many seconds;
    /// repeats are counted in the kernel, not sent (0: off).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub dedup_window: f64,
    /// Ring buffer size in KiB (rounded up to a power of two).
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    pub ring_kib: u32,
}

fn seconds(name: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("--{name} must be a non-negative number of seconds, got {v}"))
}

impl CaptureArgs {
    /// The capture options and the run time limit, validated.
    pub fn options(&self) -> Result<(CaptureOptions, Option<Duration>)> {
        let duration = self.duration.map(|d| seconds("duration", d)).transpose()?;
        let mut cgroups = self.cgroups.clone();
        for pid in &self.pids {
            let path = cgroup::cgroup_of_pid(*pid)
                .with_context(|| format!("--pid {pid}: cannot read the process's cgroup"))?;
            cgroups.push(PathBuf::from(path));
        }
        let load = LoadOptions {
            ring_bytes: self.ring_kib.saturating_mul(1024),
            dedup_window: seconds("dedup-window", self.dedup_window)?,
            ..LoadOptions::default()
        };
        Ok((CaptureOptions { cgroups, load }, duration))
    }
}

/// Where the event loop delivers.
pub trait Sink {
    /// One event. An error stops the loop.
    fn event(&mut self, e: Event) -> Result<()>;
    /// About twice a second, and once at the end (flush output, persist).
    fn tick(&mut self) -> Result<()>;
    /// The kernel's statistics, about twice a second.
    fn kernel_stats(&mut self, _stats: &KernelStats, _ring: api::RingUse) {}
    /// After each tick: keep the kernel's enforcement maps current. An error stops the loop.
    fn sync_kernel(&mut self, _probes: &mut Probes) -> Result<()> {
        Ok(())
    }
    /// Whether events must be handled within milliseconds (alerts) rather than in batches,
    /// asked about twice a second.
    fn prompt(&self) -> bool {
        false
    }
}

/// Starts capturing and feeds `sink` until the deadline, Ctrl-C or SIGTERM; returns the final
/// kernel statistics (which then account for every event delivered) and the capture.
pub async fn drive<S: Sink>(
    opts: &CaptureOptions,
    duration: Option<Duration>,
    sink: &mut S,
) -> Result<(KernelStats, Capture)> {
    let mut cap = Capture::start(opts)?;
    // Loading parsed the kernel's BTF (megabytes, now freed): return that heap to the system.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
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
    let mut prompt = false;
    let mut failed: Option<anyhow::Error> = None;
    let deliver = |sink: &mut S, failed: &mut Option<anyhow::Error>, e: Event| {
        if failed.is_none()
            && let Err(err) = sink.event(e)
        {
            *failed = Some(err);
        }
    };
    while failed.is_none() {
        tokio::select! {
            r = cap.next_batch(|e| deliver(sink, &mut failed, e)) => { r?; }
            _ = tick.tick() => {
                cap.tick()?;
                sink.tick()?;
                sink.sync_kernel(cap.probes_mut())?;
                let want = sink.prompt();
                if want != prompt {
                    cap.set_prompt(want);
                    tracing::debug!(prompt = want, "ring buffer drained promptly");
                    prompt = want;
                }
                if let Ok(stats) = cap.stats() {
                    sink.kernel_stats(&stats, cap.ring_use());
                }
            }
            _ = &mut deadline => break,
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    let stats = cap.finish(|e| deliver(sink, &mut failed, e))?;
    let last = sink.tick();
    if let Some(err) = failed {
        return Err(err);
    }
    last?;
    Ok((stats, cap))
}
