//! A capture session: probes loaded for a set of cgroups (or all), events read from the ring,
//! decoded and attributed. Used by `baseliner capture` and by the live tests.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use profiles::Event;

use crate::{
    attribution::cgroup,
    decode,
    enrich::Enricher,
    kernel::{KernelStats, LoadOptions, Probes, ring::RingReader},
};

/// What to capture.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// cgroup2 directories to watch, with their sub-cgroups; empty = every cgroup.
    pub cgroups: Vec<PathBuf>,
    /// Ring size and dedup window.
    pub load: LoadOptions,
}

/// A running capture.
pub struct Capture {
    probes: Probes,
    reader: RingReader,
    enricher: Enricher,
    roots: Vec<PathBuf>,
    monitored: BTreeSet<u64>,
    dedup_window: Duration,
    window_started: Instant,
    /// Records read but not passed on.
    pub counts: Counts,
}

/// Records read from the ring but not passed on as events.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// Events of the agent's own process, skipped.
    pub own_events: u64,
}

/// Resolves a `--cgroup` argument: an absolute path under the cgroup2 mount, or a path relative
/// to the mount (`/system.slice/nginx.service` or `system.slice/nginx.service`).
pub fn resolve_cgroup_arg(mount: &Path, arg: &Path) -> Result<PathBuf> {
    let candidate = if arg.starts_with(mount) {
        arg.to_path_buf()
    } else {
        mount.join(arg.strip_prefix("/").unwrap_or(arg))
    };
    if !candidate.is_dir() {
        bail!(
            "{} is not a cgroup2 directory (the cgroup2 hierarchy is mounted at {})",
            arg.display(),
            mount.display()
        );
    }
    Ok(candidate)
}

impl Capture {
    /// Loads and attaches the probes. With cgroups given, only they and their descendants are
    /// watched; call [`Capture::refresh_cgroups`] to pick up sub-cgroups created later.
    pub fn start(opts: &CaptureOptions) -> Result<Capture> {
        let mount = cgroup::cgroup2_mount().context("finding the cgroup2 hierarchy")?;
        let roots = opts
            .cgroups
            .iter()
            .map(|c| resolve_cgroup_arg(&mount, c))
            .collect::<Result<Vec<_>>>()?;
        let mut enricher = Enricher::new(mount);
        let mut monitored = BTreeSet::new();
        for root in &roots {
            for (id, _) in enricher.attributor().resolver().descendants(root)? {
                monitored.insert(id);
            }
        }
        let load = LoadOptions {
            filter: !roots.is_empty(),
            ..opts.load.clone()
        };
        let ids: Vec<u64> = monitored.iter().copied().collect();
        let mut probes = Probes::load(&load, &ids)?;
        let reader = RingReader::new(probes.take_ring()?).context("watching the ring buffer")?;
        Ok(Capture {
            probes,
            reader,
            enricher,
            roots,
            monitored,
            dedup_window: opts.load.dedup_window,
            window_started: Instant::now(),
            counts: Counts::default(),
        })
    }

    /// Periodic upkeep, to call about twice a second: watches sub-cgroups created under the roots
    /// since the last call, and starts the next dedup window when the current one is over.
    pub fn tick(&mut self) -> Result<()> {
        self.refresh_cgroups()?;
        if !self.dedup_window.is_zero() && self.window_started.elapsed() >= self.dedup_window {
            self.probes.next_dedup_window()?;
            self.window_started = Instant::now();
        }
        Ok(())
    }

    /// Adds sub-cgroups created under the watched roots since the last call.
    pub fn refresh_cgroups(&mut self) -> Result<usize> {
        let mut added = 0;
        for root in &self.roots {
            let Ok(found) = self.enricher.attributor().resolver().descendants(root) else {
                continue; // the root was removed; keep what we have
            };
            for (id, _) in found {
                if self.monitored.insert(id) {
                    self.probes.monitor(id)?;
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    fn handle(
        enricher: &mut Enricher,
        counts: &mut Counts,
        bytes: &[u8],
        f: &mut impl FnMut(Event),
    ) {
        match decode::decode(bytes) {
            // The agent's own reads of /proc would otherwise show up when it watches its cgroup.
            Ok(d) if d.header.pid == std::process::id() => counts.own_events += 1,
            Ok(d) => f(enricher.enrich(d)),
            Err(e) => {
                counts.decode_errors += 1;
                tracing::warn!(error = %e, "undecodable record");
            }
        }
    }

    /// Waits for events and passes each to `f`; returns how many records were read.
    pub async fn next_batch(&mut self, mut f: impl FnMut(Event)) -> Result<usize> {
        let Capture {
            reader,
            enricher,
            counts,
            ..
        } = self;
        let n = reader
            .read_batch(|b| Self::handle(enricher, counts, b, &mut f))
            .await
            .context("reading the ring buffer")?;
        Ok(n)
    }

    /// Passes whatever is already in the ring to `f` without waiting.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) -> usize {
        let Capture {
            reader,
            enricher,
            counts,
            ..
        } = self;
        reader.drain(|b| Self::handle(enricher, counts, b, &mut f))
    }

    /// Stops capturing in the kernel, passes the events still in the ring to `f`, and returns
    /// the final statistics, which then account for every event received.
    pub fn finish(&mut self, f: impl FnMut(Event)) -> Result<KernelStats> {
        self.probes.pause()?;
        // A probe already running on another CPU finishes within microseconds.
        std::thread::sleep(Duration::from_millis(20));
        self.drain(f);
        self.stats()
    }

    /// Records read from the ring so far.
    pub fn received(&self) -> u64 {
        self.reader.received
    }

    /// The kernel's counters.
    pub fn stats(&self) -> Result<KernelStats> {
        Ok(self.probes.stats()?)
    }
}
