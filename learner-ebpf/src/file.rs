//! File opens: `openat` and `openat2`, with path, flags and the directory fd.

use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user_str},
    macros::tracepoint,
    programs::TracePointContext,
};
use learner_ebpf::{EventKind, FLAG_OPENAT2, FLAG_PATH_TRUNCATED, PATH_LEN, mix};

use crate::{
    arg_offset, ctx_read,
    emit::{count_seen, fill_header, hash_bytes, hash_start, is_repeat, monitored_cgroup, output},
    maps::OPEN_SCRATCH,
};

/// Flag bits that decide the access class; other bits (O_CLOEXEC, ...) do not make an open new.
const CLASS_BITS: u32 = 0o3 | 0o100 | 0o1000;

#[tracepoint(category = "syscalls", name = "sys_enter_openat")]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    unsafe {
        let dirfd: i64 = ctx_read(&ctx, arg_offset(0));
        let path: *const u8 = ctx_read(&ctx, arg_offset(1));
        let flags: u64 = ctx_read(&ctx, arg_offset(2));
        handle_open(dirfd as i32, path, flags as u32, 0)
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_openat2")]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    unsafe {
        let dirfd: i64 = ctx_read(&ctx, arg_offset(0));
        let path: *const u8 = ctx_read(&ctx, arg_offset(1));
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        let how: *const u64 = ctx_read(&ctx, arg_offset(2));
        let flags = bpf_probe_read_user(how).unwrap_or(0);
        handle_open(dirfd as i32, path, flags as u32, FLAG_OPENAT2)
    }
}

#[inline(always)]
unsafe fn handle_open(dirfd: i32, path: *const u8, open_flags: u32, flags: u32) -> u32 {
    let Some(cgroup_id) = monitored_cgroup() else {
        return 0;
    };
    count_seen(EventKind::Open);
    let Some(ev) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, EventKind::Open, cgroup_id);
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
        ((open_flags & CLASS_BITS) as u64) << 32 | (dirfd as u32) as u64,
    );
    hash = hash_bytes(hash, &ev.path, len);
    if is_repeat(EventKind::Open, cgroup_id, hash, ev.header.ts_ns) {
        return 0;
    }
    let header = &mut ev.header as *mut _;
    output(EventKind::Open, ev, header, Some(hash));
    0
}
