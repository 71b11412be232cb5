//! What every probe does: the cgroup filter, the header, deduplication, statistics and output.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_ktime_get_boot_ns,
    generated::{bpf_get_current_comm, bpf_get_current_task_btf},
};
use learner_ebpf::{
    COMM_LEN, DedupKey, EventHeader, EventKind, FNV_OFFSET, KindStats, SLOT_SHARED, TaskLayout,
    mix, monitored_slot, recent_key, recent_slot,
};

use crate::maps::{
    CONFIG, DEDUP, DEDUP_RECENT, DEDUP_WINDOW, EVENTS, MONITORED, MONITORED_FAST, PARENTS, STATS,
    WAKE_LAST,
};

/// Field offsets of this kernel's task and cgroup structures, set by the loader from BTF.
#[unsafe(no_mangle)]
static TASK_LAYOUT: TaskLayout = TaskLayout::HELPERS;

/// The task a probe runs for: its cgroup id and, with a known [`TaskLayout`], its
/// `task_struct` (null otherwise).
#[derive(Clone, Copy)]
pub struct Current {
    /// cgroup2 id.
    pub cgroup_id: u64,
    task: *const u8,
}

/// One field of the loader's layout. A volatile read of the read-only global: the verifier sees
/// its value as a constant, so the loads below have the constant offsets it requires.
#[inline(always)]
fn layout(field: fn(&TaskLayout) -> &u32) -> u32 {
    unsafe { core::ptr::read_volatile(field(&TASK_LAYOUT)) }
}

/// Reads a field at `off` bytes into a kernel structure (a BTF-checked load, no helper call).
///
/// # Safety
/// `base` is a BTF pointer from the kernel and `off` the offset of a `T` field in its type.
#[inline(always)]
unsafe fn field<T: Copy>(base: *const u8, off: u32) -> T {
    unsafe { core::ptr::read(base.add(off as usize) as *const T) }
}

/// The current task and its cgroup id: one helper call and four loads with a known layout,
/// `bpf_get_current_cgroup_id` otherwise.
#[inline(always)]
fn current() -> Current {
    if layout(|l| &l.direct) == 0 {
        return Current {
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            task: core::ptr::null(),
        };
    }
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    // SAFETY: the offsets come from this kernel's BTF; the verifier checks each load against it.
    let cgroup_id = unsafe {
        let css_set: *const u8 = field(task, layout(|l| &l.task_cgroups));
        let cgroup: *const u8 = field(css_set, layout(|l| &l.css_set_dfl_cgrp));
        let kn: *const u8 = field(cgroup, layout(|l| &l.cgroup_kn));
        field::<u64>(kn, layout(|l| &l.kernfs_node_id))
    };
    Current { cgroup_id, task }
}

/// The current task when its cgroup is monitored. The filter is usually decided by one
/// inlined array load; only a slot shared by several monitored cgroups costs a hash-map lookup.
#[inline(always)]
pub fn monitored_cgroup() -> Option<Current> {
    let cfg = CONFIG.get(0)?;
    if cfg.paused != 0 {
        return None;
    }
    let cur = current();
    let cgroup_id = cur.cgroup_id;
    if cfg.filter_enabled != 0 {
        let slot = MONITORED_FAST.get(monitored_slot(cgroup_id))?;
        if *slot != cgroup_id
            && (*slot != SLOT_SHARED || unsafe { MONITORED.get(cgroup_id) }.is_none())
        {
            return None;
        }
    }
    Some(cur)
}

#[inline(always)]
fn stats(kind: EventKind) -> Option<&'static KindStats> {
    let p = STATS.get_ptr_mut(kind as u32)?;
    Some(unsafe { &*p })
}

#[inline(always)]
pub fn bump(counter: &u64) {
    // An atomic add (BPF_XADD): two tasks preempting each other on one CPU never lose a count.
    // SAFETY: the map value lives as long as the program and is only updated atomically.
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter as *const u64 as *mut u64, 1);
    }
}

/// Counts an event of a monitored cgroup.
#[inline(always)]
pub fn count_seen(kind: EventKind) {
    if let Some(s) = stats(kind) {
        bump(&s.seen);
    }
}

/// Starts the common header: what the dedup identity needs (kind, cgroup, task name). The time
/// and process fields are filled by [`output`], so a deduplicated event never pays for them.
#[inline(always)]
pub fn begin_header(h: &mut EventHeader, kind: EventKind, cur: Current) {
    h.kind = kind as u32;
    h.flags = 0;
    h.cgroup_id = cur.cgroup_id;
    if cur.task.is_null() {
        // The helper NUL-pads the name, so no zeroing first.
        unsafe { bpf_get_current_comm(h.comm.as_mut_ptr().cast(), COMM_LEN as u32) };
        return;
    }
    let off = layout(|l| &l.task_comm);
    // SAFETY: `comm` is a 16-byte array in `task_struct`; the kernel keeps it NUL-padded.
    let words: [u64; 2] = unsafe { [field(cur.task, off), field(cur.task, off + 8)] };
    h.comm = unsafe { core::mem::transmute::<[u64; 2], [u8; COMM_LEN]>(words) };
}

/// Fills the time and the process fields of the header for the current task.
#[inline(always)]
pub fn fill_task(h: &mut EventHeader) {
    h.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    h.pid = (pid_tgid >> 32) as u32;
    h.tid = pid_tgid as u32;
    h.ppid = 0;
    h.uid = uid_gid as u32;
    h.gid = (uid_gid >> 32) as u32;
    h._pad = 0;
}

/// Starts an identity hash with the kind and the task's command name.
#[inline(always)]
pub fn hash_start(h: &EventHeader) -> u64 {
    let c = &h.comm;
    let lo = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    let hi = u64::from_le_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
    mix(mix(mix(FNV_OFFSET, h.kind as u64), lo), hi)
}

/// Mixes the first `len` bytes of a NUL-padded buffer into `hash`, eight bytes at a time.
/// `N` must be a multiple of 8.
///
/// # Safety
/// `buf` starts 8-byte aligned (lib.rs asserts it for the event buffers hashed here), so each
/// word is one aligned load rather than eight byte loads.
#[inline(always)]
pub unsafe fn hash_bytes<const N: usize>(mut hash: u64, buf: &[u8; N], len: usize) -> u64 {
    let words = buf.as_ptr() as *const u64;
    let count = len.div_ceil(8);
    let mut i = 0;
    while i < N / 8 {
        if i >= count {
            break;
        }
        // SAFETY: i < N / 8, so the word lies inside `buf`, which is aligned (the contract).
        let mut w = unsafe { core::ptr::read(words.add(i)) };
        let rest = len - i * 8;
        if rest < 8 {
            w &= (1u64 << (rest * 8)) - 1;
        }
        hash = mix(hash, w);
        i += 1;
    }
    hash
}

/// True when an identical event of this cgroup was already sent in the current dedup window;
/// counts it. Otherwise records the window as its last send.
///
/// Windows are numbered by userspace (`DEDUP_WINDOW[0]`, advanced every window), so checking
/// a repeat needs no clock read: an event is sent at most once per window. A per-CPU cache of
/// recent identities answers a tight repeat without a helper call; the `DEDUP` LRU map stays
/// the record shared by all CPUs.
#[inline(always)]
pub fn is_repeat(kind: EventKind, cgroup_id: u64, hash: u64) -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return false;
    };
    if cfg.dedup_window_ns == 0 {
        return false;
    }
    let Some(window) = DEDUP_WINDOW.get(0).copied() else {
        return false;
    };
    let recent_key = recent_key(cgroup_id, hash);
    let recent = DEDUP_RECENT.get_ptr_mut(recent_slot(recent_key));
    if let Some(r) = recent {
        // SAFETY: this CPU's slot; programs on one CPU do not run concurrently here.
        let r = unsafe { &*r };
        if r.key == recent_key && r.window == window {
            count_deduplicated(kind);
            return true;
        }
    }
    let key = DedupKey { cgroup_id, hash };
    let repeat = if let Some(last) = DEDUP.get_ptr_mut(key) {
        // SAFETY: a live map value; a racing writer can only store another window number.
        let last = unsafe { &mut *last };
        if *last == window {
            count_deduplicated(kind);
            true
        } else {
            *last = window;
            false
        }
    } else {
        let _ = DEDUP.insert(key, window, 0);
        false
    };
    // Sent in this window, by this call or an earlier one: the next repeat on this CPU stops
    // here. [`output`] empties the slot again if the ring is full.
    if let Some(r) = recent {
        // SAFETY: as above.
        let r = unsafe { &mut *r };
        r.key = recent_key;
        r.window = window;
    }
    repeat
}

#[inline(always)]
fn count_deduplicated(kind: EventKind) {
    if let Some(s) = stats(kind) {
        bump(&s.deduplicated);
    }
}

/// Least time between two forced wake-ups of the reader from one CPU while the ring is less
/// than half full.
const WAKE_GAP_NS: u64 = 2_000_000;

/// `BPF_RB_NO_WAKEUP` while little data waits in the ring, `BPF_RB_FORCE_WAKEUP` once
/// `Config::wakeup_bytes` have accumulated. A wake-up is an inter-processor interrupt, and while
/// the reader is behind, waking it for every event only slows the producers: below
/// `Config::urgent_bytes` (half the ring) a CPU wakes it at most once per [`WAKE_GAP_NS`], so a
/// reader that missed a wake-up gets another within the gap (and drains on its own timer
/// anyway); from there on, every event wakes it. `now_ns` is the event's time.
#[inline(always)]
fn wakeup_flag(now_ns: u64) -> u64 {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    if cfg.wakeup_bytes == 0 {
        return 0;
    }
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    if avail < cfg.wakeup_bytes {
        return BPF_RB_NO_WAKEUP;
    }
    if let Some(last) = WAKE_LAST.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; programs on one CPU do not run concurrently here.
        let last = unsafe { &mut *last };
        if avail < cfg.urgent_bytes && now_ns.wrapping_sub(*last) < WAKE_GAP_NS {
            return BPF_RB_NO_WAKEUP;
        }
        *last = now_ns;
    }
    BPF_RB_FORCE_WAKEUP
}

/// Fills the process fields and the parent pid (from the fork map), writes the record to the ring
/// buffer and counts it.
/// When the ring is full the record is counted as dropped, and its dedup entry is forgotten so
/// the next repeat is sent rather than counted as already seen.
#[inline(always)]
pub fn output<T>(
    kind: EventKind,
    record: &mut T,
    header: *mut EventHeader,
    dedup_hash: Option<u64>,
) {
    unsafe {
        fill_task(&mut *header);
        let pid = (*header).pid;
        if let Some(ppid) = PARENTS.get(pid) {
            (*header).ppid = *ppid;
        }
    }
    let now_ns = unsafe { (*header).ts_ns };
    let ok = EVENTS.output::<T>(&*record, wakeup_flag(now_ns)).is_ok();
    if let Some(s) = stats(kind) {
        bump(if ok { &s.emitted } else { &s.dropped });
    }
    if !ok && let Some(hash) = dedup_hash {
        let cgroup_id = unsafe { (*header).cgroup_id };
        let _ = DEDUP.remove(DedupKey { cgroup_id, hash });
        let key = recent_key(cgroup_id, hash);
        if let Some(r) = DEDUP_RECENT.get_ptr_mut(recent_slot(key)) {
            // SAFETY: this CPU's slot.
            let r = unsafe { &mut *r };
            if r.key == key {
                r.key = 0;
            }
        }
    }
}
