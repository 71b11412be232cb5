//! A capture session: probes loaded for a set of cgroups (or all), events read from the ring,
//! decoded and attributed, after the `exec` events of the processes that were already running.
//! Used by `baseliner capture`, `baseliner run` and the live tests.

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
    running,
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
    /// Exec events of the processes found running at start, not passed on yet.
    existing: Vec<Event>,
    /// Records read but not passed on, and events read from /proc.
    pub counts: Counts,
}

/// Records read from the ring but not passed on as events, and events that came from /proc
/// instead of the ring.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// Events of the agent's own process, skipped.
    pub own_events: u64,
    /// Exec events of processes already running at start (read from /proc, marked `existing`),
    /// not included in [`Capture::received`].
    pub existing: u64,
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
    /// Loads and attaches the probes, then reads the processes already running in the watched
    /// cgroups from /proc; their `exec` events (marked `existing`) are passed on before any live
    /// event. With cgroups given, only they and their descendants are watched; call
    /// [`Capture::refresh_cgroups`] to pick up sub-cgroups created later.
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
        // Read /proc only now: a process that execs from here on is seen live, so none falls in
        // between (one that execs during the scan may be reported twice).
        let attached = running::boot_ns_now();
        let (ring, ring_bytes) = probes.take_ring()?;
        let reader = RingReader::new(ring, ring_bytes).context("watching the ring buffer")?;
        let watched = (!roots.is_empty()).then_some(&monitored);
        let existing =
            running::existing_events(&mut enricher, Path::new("/proc"), watched, attached)
                .unwrap_or_else(|e| {
                    // Capture works without them; only the processes' exec events are missing.
                    tracing::warn!("cannot read the running processes from /proc: {e}");
                    Vec::new()
                });
        tracing::info!(
            "picked up {} running processes in {} workloads",
            existing.len(),
            running::workload_count(&existing)
        );
        Ok(Capture {
            probes,
            reader,
            enricher,
            roots,
            monitored,
            dedup_window: opts.load.dedup_window,
            window_started: Instant::now(),
            counts: Counts {
                existing: existing.len() as u64,
                ..Counts::default()
            },
            existing,
        })
    }

    /// Drains the ring every few milliseconds (`true`: low latency, for alerting) or every
    /// 100 ms (`false`, the default); the kernel also wakes the reader once a batch waits.
    pub fn set_prompt(&mut self, prompt: bool) {
        self.reader.set_poll_interval(if prompt {
            crate::kernel::ring::PROMPT_POLL_INTERVAL
        } else {
            crate::kernel::ring::POLL_INTERVAL
        });
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

    /// The loaded programs and their maps.
    pub fn probes_mut(&mut self) -> &mut Probes {
        &mut self.probes
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

    /// Passes on the exec events of the processes found running at start, once.
    fn pass_existing(&mut self, f: &mut impl FnMut(Event)) -> usize {
        let existing = std::mem::take(&mut self.existing);
        let n = existing.len();
        existing.into_iter().for_each(f);
        n
    }

    /// Waits for events and passes each to `f`; returns how many records were read. The first
    /// call passes on the events of the processes found running at start instead (without
    /// waiting) and returns how many.
    pub async fn next_batch(&mut self, mut f: impl FnMut(Event)) -> Result<usize> {
        let existing = self.pass_existing(&mut f);
        if existing > 0 {
            return Ok(existing);
        }
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

    /// Passes whatever is already in the ring to `f` without waiting (after the events of the
    /// processes found running at start, if not passed on yet); returns how many records were
    /// read from the ring.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) -> usize {
        self.pass_existing(&mut f);
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

    /// How full the ring buffer is.
    pub fn ring_use(&self) -> api::RingUse {
        api::RingUse {
            capacity_bytes: self.reader.capacity_bytes,
            pending_bytes: self.reader.pending_bytes,
            max_pending_bytes: self.reader.max_pending_bytes,
        }
    }

    /// The kernel's counters.
    pub fn stats(&self) -> Result<KernelStats> {
        Ok(self.probes.stats()?)
    }
}
