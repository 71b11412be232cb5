//! What every probe does: the cgroup filter, the header, deduplication, statistics and output.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_ktime_get_boot_ns, generated::bpf_get_current_comm,
};
use learner_ebpf::{COMM_LEN, DedupKey, EventHeader, EventKind, FNV_OFFSET, KindStats, mix};

use crate::maps::{CONFIG, DEDUP, DEDUP_WINDOW, EVENTS, MONITORED, PARENTS, STATS};

/// The current task's cgroup id when it is monitored; `None` costs one map lookup.
#[inline(always)]
pub fn monitored_cgroup() -> Option<u64> {
    let cfg = CONFIG.get(0)?;
    if cfg.paused != 0 {
        return None;
    }
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if cfg.filter_enabled != 0 && unsafe { MONITORED.get(cgroup_id) }.is_none() {
        return None;
    }
    Some(cgroup_id)
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
pub fn begin_header(h: &mut EventHeader, kind: EventKind, cgroup_id: u64) {
    h.kind = kind as u32;
    h.flags = 0;
    h.cgroup_id = cgroup_id;
    // The helper NUL-pads the name, so no zeroing first.
    unsafe { bpf_get_current_comm(h.comm.as_mut_ptr().cast(), COMM_LEN as u32) };
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
/// `buf` must start 8-byte aligned; `N` must be a multiple of 8.
#[inline(always)]
pub fn hash_bytes<const N: usize>(mut hash: u64, buf: &[u8; N], len: usize) -> u64 {
    let words = len.div_ceil(8);
    let mut i = 0;
    while i < N / 8 {
        if i >= words {
            break;
        }
        // SAFETY: i < N / 8, so the eight bytes lie inside `buf`.
        let mut w = unsafe { core::ptr::read_unaligned(buf.as_ptr().add(i * 8) as *const u64) };
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
/// a repeat needs no clock read: an event is sent at most once per window.
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
    let key = DedupKey { cgroup_id, hash };
    if let Some(last) = DEDUP.get_ptr_mut(key) {
        // SAFETY: a live map value; a racing writer can only store another window number.
        let last = unsafe { &mut *last };
        if *last == window {
            if let Some(s) = stats(kind) {
                bump(&s.deduplicated);
            }
            return true;
        }
        *last = window;
        return false;
    }
    let _ = DEDUP.insert(key, window, 0);
    false
}

/// `BPF_RB_NO_WAKEUP` while little data waits in the ring, `BPF_RB_FORCE_WAKEUP` once
/// `Config::wakeup_bytes` have accumulated.
#[inline(always)]
fn wakeup_flag() -> u64 {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    match CONFIG.get(0) {
        Some(cfg) if cfg.wakeup_bytes > 0 => {
            if EVENTS.query(BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            }
        }
        _ => 0,
    }
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
    let ok = EVENTS.output::<T>(&*record, wakeup_flag()).is_ok();
    if let Some(s) = stats(kind) {
        bump(if ok { &s.emitted } else { &s.dropped });
    }
    if !ok && let Some(hash) = dedup_hash {
        let key = DedupKey {
            cgroup_id: unsafe { (*header).cgroup_id },
            hash,
        };
        let _ = DEDUP.remove(key);
    }
}
