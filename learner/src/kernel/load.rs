//! Loading the eBPF object, configuring its maps and attaching every tracepoint.

use std::time::Duration;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use learner_ebpf::{
    CgroupEntry, Config, EventKind, KindStats, SLOT_SHARED, TaskLayout, monitored_slot,
};
use thiserror::Error;

use super::{
    diagnose::{self, HostFacts},
    layout,
    mounts::{self, MountOutcome},
    stats::KernelStats,
};

/// The compiled eBPF object, embedded at build time by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/learner-ebpf"));

/// Every tracepoint program: (program name = tracepoint name, category).
pub const TRACEPOINTS: &[(&str, &str)] = &[
    ("sched_process_fork", "sched"),
    ("sched_process_exec", "sched"),
    ("sys_enter_execve", "syscalls"),
    ("sys_enter_execveat", "syscalls"),
    ("sys_enter_openat", "syscalls"),
    ("sys_enter_openat2", "syscalls"),
    ("sys_enter_socket", "syscalls"),
    ("sys_enter_connect", "syscalls"),
    ("sys_enter_bind", "syscalls"),
    ("sys_enter_listen", "syscalls"),
    ("sys_enter_ptrace", "syscalls"),
    ("sys_enter_setuid", "syscalls"),
    ("sys_enter_setreuid", "syscalls"),
    ("sys_enter_setresuid", "syscalls"),
    ("sys_enter_setfsuid", "syscalls"),
    ("sys_enter_setgid", "syscalls"),
    ("sys_enter_setregid", "syscalls"),
    ("sys_enter_setresgid", "syscalls"),
    ("sys_enter_setfsgid", "syscalls"),
];

/// A loading failure, with the cause and its fix already in the message.
#[derive(Debug, Error)]
pub enum LoadError {
    /// tracefs or bpffs is missing and could not be mounted.
    #[error("{0}")]
    Mount(String),
    /// The kernel refused a step; the message names the likely cause.
    #[error("{0}")]
    Kernel(String),
    /// The object does not contain an expected map or program (a build problem).
    #[error("the embedded eBPF object has no {0}; rebuild baseliner")]
    Missing(String),
}

/// How to load the probes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_bytes: u32,
    /// Identical repeats inside this window are counted, not sent; zero disables.
    pub dedup_window: Duration,
    /// Watch only cgroups added with [`Probes::monitor`]; otherwise every cgroup.
    pub filter: bool,
    /// Wake the reader only once this much data waits (it also drains on its own timer,
    /// [`super::ring::POLL_INTERVAL`]); `None` picks 1/16 of the ring, 0 wakes it for every event.
    pub wakeup_bytes: Option<u32>,
    /// Attach the enforcement programs (the connect checks) to this cgroup2 root; the exec
    /// check is part of the exec tracepoint. Nothing is enforced until a cgroup is put in the
    /// enforcement map.
    pub enforce_root: Option<std::path::PathBuf>,
    /// Read the task name and cgroup id with helper calls even when the kernel's BTF gives
    /// their offsets (slower: the fallback, kept testable).
    pub helper_reads: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            ring_bytes: 4 << 20,
            dedup_window: Duration::from_secs(5),
            filter: false,
            wakeup_bytes: None,
            enforce_root: None,
            helper_reads: false,
        }
    }
}

/// The loaded, attached programs and their maps.
pub struct Probes {
    ebpf: Ebpf,
    /// Links of the enforcement programs, taken from their programs so they can be pinned
    /// ([`Probes::pin_enforcement`]); dropping one detaches its program.
    pub(super) enforcement_links: Vec<(&'static str, aya::programs::links::FdLink)>,
    /// The same links once pinned.
    pub(super) pinned: Vec<aya::programs::links::PinnedLink>,
}

fn kernel_err(what: &str, err: &(dyn std::error::Error + 'static), facts: &HostFacts) -> LoadError {
    LoadError::Kernel(diagnose::explain(what, err, facts))
}

/// Explains a failed map operation (after loading, so the host facts are read only on failure).
pub(super) fn map_err(what: &str) -> impl Fn(MapError) -> LoadError + '_ {
    move |e| kernel_err(what, &e, &HostFacts::current())
}

impl Probes {
    /// Mounts tracefs if needed, loads the object, writes the configuration and the cgroup
    /// filter, then attaches every tracepoint. `monitored` cgroup ids are in the filter before
    /// the first program is attached, so no event of another cgroup slips through.
    pub fn load(opts: &LoadOptions, monitored: &[u64]) -> Result<Probes, LoadError> {
        if let MountOutcome::Failed(why) = mounts::ensure_tracefs() {
            return Err(LoadError::Mount(why));
        }
        let facts = HostFacts::current();
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let layout = if opts.helper_reads {
            TaskLayout::HELPERS
        } else {
            layout::running_kernel().unwrap_or_else(|e| {
                tracing::warn!(
                    "probes will read the task name and cgroup id with helper calls (slower): {e}"
                );
                TaskLayout::HELPERS
            })
        };
        let ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", ring)
            .override_global("TASK_LAYOUT", &layout, true)
            .load(EBPF_OBJECT)
            .map_err(|e| kernel_err("loading the eBPF object (creating maps)", &e, &facts))?;
        let mut probes = Probes {
            ebpf,
            enforcement_links: Vec::new(),
            pinned: Vec::new(),
        };
        probes.configure(opts, ring)?;
        for id in monitored {
            probes.monitor(*id)?;
        }
        for (name, category) in TRACEPOINTS {
            let prog: &mut TracePoint = probes
                .ebpf
                .program_mut(name)
                .ok_or_else(|| LoadError::Missing(format!("program {name}")))?
                .try_into()
                .map_err(|e| kernel_err(&format!("program {name}"), &e, &facts))?;
            prog.load().map_err(|e| {
                kernel_err(&format!("loading program {name} (tracepoint)"), &e, &facts)
            })?;
            let link = prog
                .attach(category, name)
                .map_err(|e| kernel_err(&format!("attaching {category}:{name}"), &e, &facts))?;
            // The exec check runs in the exec tracepoint: its link is pinned with enforcement.
            if opts.enforce_root.is_some() && *name == super::enforce_maps::EXEC_PROGRAM {
                let link = prog
                    .take_link(link)
                    .map_err(|e| kernel_err(&format!("program {name}"), &e, &facts))?;
                let fd = aya::programs::links::FdLink::try_from(link)
                    .map_err(|e| kernel_err(&format!("the link of {name}"), &e, &facts))?;
                probes.enforcement_links.push((name, fd));
            }
        }
        if let Some(root) = &opts.enforce_root {
            probes.attach_enforcement(root, &facts)?;
        }
        tracing::debug!(
            programs = TRACEPOINTS.len(),
            ring_bytes = ring,
            "eBPF programs attached"
        );
        Ok(probes)
    }

    fn configure(&mut self, opts: &LoadOptions, ring: u32) -> Result<(), LoadError> {
        let mut config: Array<&mut MapData, Config> = self.typed_map("CONFIG")?;
        let cfg = Config {
            filter_enabled: opts.filter as u32,
            paused: 0,
            dedup_window_ns: opts.dedup_window.as_nanos().min(u64::MAX as u128) as u64,
            wakeup_bytes: u64::from(opts.wakeup_bytes.unwrap_or(ring / 16)),
            urgent_bytes: u64::from(ring / 2),
        };
        config.set(0, cfg, 0).map_err(map_err("writing map CONFIG"))
    }

    /// The loaded object.
    pub(super) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// A map of the object, opened as type `T`.
    pub(super) fn typed_map<'a, T>(&'a mut self, name: &str) -> Result<T, LoadError>
    where
        T: TryFrom<&'a mut Map, Error = MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| LoadError::Missing(format!("map {name}")))?;
        T::try_from(map).map_err(map_err(&format!("opening map {name}")))
    }

    /// Adds a cgroup id to the filter: the `MONITORED` map, then its `MONITORED_FAST` slot.
    pub fn monitor(&mut self, cgroup_id: u64) -> Result<(), LoadError> {
        let mut map: HashMap<&mut MapData, u64, CgroupEntry> = self.typed_map("MONITORED")?;
        map.insert(cgroup_id, CgroupEntry::default(), 0)
            .map_err(map_err("adding a cgroup to MONITORED"))?;
        self.update_fast_slot(cgroup_id, |slot| fast_slot_after_monitor(slot, cgroup_id))
    }

    /// Removes a cgroup id from the filter (absent ids are fine): its `MONITORED_FAST` slot
    /// first, so the kernel never finds a slot naming a cgroup the map no longer has.
    pub fn unmonitor(&mut self, cgroup_id: u64) -> Result<(), LoadError> {
        self.update_fast_slot(cgroup_id, |slot| fast_slot_after_unmonitor(slot, cgroup_id))?;
        let mut map: HashMap<&mut MapData, u64, CgroupEntry> = self.typed_map("MONITORED")?;
        match map.remove(&cgroup_id) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("removing a cgroup from MONITORED")(e)),
        }
    }

    /// Rewrites the `MONITORED_FAST` slot of `cgroup_id` with `next(current)`.
    fn update_fast_slot(
        &mut self,
        cgroup_id: u64,
        next: impl FnOnce(u64) -> u64,
    ) -> Result<(), LoadError> {
        let mut slots: Array<&mut MapData, u64> = self.typed_map("MONITORED_FAST")?;
        let index = monitored_slot(cgroup_id);
        let current = slots
            .get(&index, 0)
            .map_err(map_err("reading map MONITORED_FAST"))?;
        let value = next(current);
        if value != current {
            slots
                .set(index, value, 0)
                .map_err(map_err("writing map MONITORED_FAST"))?;
        }
        Ok(())
    }

    /// Stops all capture in the kernel: from now on nothing is counted or sent, so statistics
    /// read after draining the ring match what was received.
    pub fn pause(&mut self) -> Result<(), LoadError> {
        let mut config: Array<&mut MapData, Config> = self.typed_map("CONFIG")?;
        let mut cfg = config.get(&0, 0).map_err(map_err("reading map CONFIG"))?;
        cfg.paused = 1;
        config.set(0, cfg, 0).map_err(map_err("writing map CONFIG"))
    }

    /// Starts the next dedup window: every event identity may be sent once more.
    pub fn next_dedup_window(&mut self) -> Result<(), LoadError> {
        let mut arr: Array<&mut MapData, u64> = self.typed_map("DEDUP_WINDOW")?;
        let current = arr
            .get(&0, 0)
            .map_err(map_err("reading map DEDUP_WINDOW"))?;
        arr.set(0, current.wrapping_add(1), 0)
            .map_err(map_err("writing map DEDUP_WINDOW"))
    }

    /// Takes the ring buffer out (once) for a reader, with its size in bytes.
    pub fn take_ring(&mut self) -> Result<(RingBuf<MapData>, u64), LoadError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| LoadError::Missing("map EVENTS".into()))?;
        let bytes = match &map {
            Map::RingBuf(data) => data.info().map_or(0, |i| u64::from(i.max_entries())),
            _ => 0,
        };
        let ring = RingBuf::try_from(map)
            .map_err(|e| kernel_err("opening the ring buffer", &e, &HostFacts::current()))?;
        Ok((ring, bytes))
    }

    /// Reads the per-CPU statistics, summed per kind.
    pub fn stats(&self) -> Result<KernelStats, LoadError> {
        let map = self
            .ebpf
            .map("STATS")
            .ok_or_else(|| LoadError::Missing("map STATS".into()))?;
        let arr: PerCpuArray<&MapData, KindStats> =
            PerCpuArray::try_from(map).map_err(map_err("opening map STATS"))?;
        let mut kinds = Vec::new();
        for kind in EventKind::ALL {
            let per_cpu = arr
                .get(&(kind as u32), 0)
                .map_err(map_err("reading map STATS"))?;
            let mut sum = KindStats::default();
            for s in per_cpu.iter() {
                sum.add(s);
            }
            kinds.push((kind, sum));
        }
        Ok(KernelStats { kinds })
    }
}

/// A `MONITORED_FAST` slot once `cgroup_id` is monitored: its id when the slot was free, shared
/// when another monitored cgroup already maps there.
fn fast_slot_after_monitor(slot: u64, cgroup_id: u64) -> u64 {
    if slot == 0 || slot == cgroup_id {
        cgroup_id
    } else {
        SLOT_SHARED
    }
}

/// A `MONITORED_FAST` slot once `cgroup_id` is no longer monitored: free when it named only that
/// cgroup. A shared slot stays shared (the hash map decides there; always correct).
fn fast_slot_after_unmonitor(slot: u64, cgroup_id: u64) -> u64 {
    if slot == cgroup_id { 0 } else { slot }
}

#[cfg(test)]
mod tests {
    use learner_ebpf::MONITORED_SLOTS;

    use super::*;

    /// Replays monitor / unmonitor calls on one slot and checks the invariant the kernel relies
    /// on: a slot naming a cgroup means exactly that cgroup of the slot is monitored, and a
    /// free slot means none is.
    #[test]
    fn fast_slot_never_hides_a_monitored_cgroup() {
        let (a, b, c) = (
            5,
            5 + u64::from(MONITORED_SLOTS),
            5 + 2 * u64::from(MONITORED_SLOTS),
        );
        assert_eq!(monitored_slot(a), monitored_slot(b));
        assert_eq!(monitored_slot(a), monitored_slot(c));
        let mut slot = 0;
        let mut monitored: Vec<u64> = Vec::new();
        let steps = [
            (true, a),
            (true, a),
            (false, a),
            (true, b),
            (true, c),
            (false, b),
            (false, c),
            (true, a),
            (false, b),
        ];
        for (add, id) in steps {
            if add {
                slot = fast_slot_after_monitor(slot, id);
                if !monitored.contains(&id) {
                    monitored.push(id);
                }
            } else {
                slot = fast_slot_after_unmonitor(slot, id);
                monitored.retain(|m| *m != id);
            }
            match slot {
                0 => assert!(
                    monitored.is_empty(),
                    "free slot while {monitored:?} monitored"
                ),
                SLOT_SHARED => {}
                id => assert_eq!(monitored, vec![id], "slot names {id}"),
            }
        }
        // After a + b + c, only the hash map can tell: the slot stays shared.
        assert_eq!(fast_slot_after_monitor(c, a), SLOT_SHARED);
        assert_eq!(fast_slot_after_unmonitor(SLOT_SHARED, a), SLOT_SHARED);
    }
}
