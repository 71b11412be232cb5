//! File opens: `openat` and `openat2`, with path, flags and the directory fd.

use aya_ebpf::helpers::{bpf_probe_read_user, generated::bpf_probe_read_user_str};
use learner_ebpf::{EventKind, FLAG_OPENAT2, FLAG_PATH_TRUNCATED, PATH_LEN, mix};

use crate::{
    emit::{Current, begin_header, count_seen, hash_bytes, hash_start, is_repeat, output},
    maps::OPEN_SCRATCH,
};

/// Flag bits that decide the access class; other bits (O_CLOEXEC, ...) do not make an open new.
const CLASS_BITS: u32 = 0o3 | 0o100 | 0o1000;

/// `openat(dirfd, path, flags, mode)`.
#[inline(always)]
pub unsafe fn openat(cur: Current, a: &[u64; 6]) {
    unsafe { handle_open(cur, a[0] as i32, a[1] as *const u8, a[2] as u32, 0) }
}

/// `openat2(dirfd, path, struct open_how *how, size)`; `how` starts with the u64 flags.
#[inline(always)]
pub unsafe fn openat2(cur: Current, a: &[u64; 6]) {
    let flags = unsafe { bpf_probe_read_user(a[2] as *const u64) }.unwrap_or(0);
    unsafe {
        handle_open(
            cur,
            a[0] as i32,
            a[1] as *const u8,
            flags as u32,
            FLAG_OPENAT2,
        )
    }
}

#[inline(always)]
unsafe fn handle_open(cur: Current, dirfd: i32, path: *const u8, open_flags: u32, flags: u32) {
    count_seen(EventKind::Open);
    let Some(ev) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev = unsafe { &mut *ev };
    begin_header(&mut ev.header, EventKind::Open, cur);
    ev.header.flags = flags;
    ev.open_flags = open_flags;
    ev.dirfd = dirfd;
    let n = unsafe {
        bpf_probe_read_user_str(ev.path.as_mut_ptr().cast(), PATH_LEN as u32, path.cast())
    };
    let len = if n <= 0 {
        ev.path[0] = 0;
        0
    } else {
        (n as usize) & (2 * PATH_LEN - 1)
    };
    if len >= PATH_LEN {
        ev.header.flags |= FLAG_PATH_TRUNCATED;
    }
    let mut hash = hash_start(&ev.header);
    hash = mix(
        hash,
        (((open_flags & CLASS_BITS) as u64) << 32) | (dirfd as u32) as u64,
    );
    // SAFETY: `OpenEvent::path` is 8-byte aligned (asserted in lib.rs).
    hash = unsafe { hash_bytes(hash, &ev.path, len) };
    if is_repeat(EventKind::Open, cur.cgroup_id, hash) {
        return;
    }
    let header = &mut ev.header as *mut _;
    output(EventKind::Open, ev, header, Some(hash));
}
