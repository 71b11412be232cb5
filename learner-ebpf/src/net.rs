//! Network: socket types (socket()), outgoing connects, binds and listens.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::tracepoint,
    programs::TracePointContext,
};
use learner_ebpf::{EventKind, SOCKADDR_LEN};

use crate::{
    arg_offset, ctx_read,
    emit::{count_seen, fill_header, hash_bytes, hash_start, is_repeat, monitored_cgroup, output},
    maps::{BOUND, NET_SCRATCH, SOCKET_PENDING, SOCKET_TYPES},
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// SOCK_NONBLOCK and SOCK_CLOEXEC ride in the type argument.
const SOCK_TYPE_MASK: u32 = 0xf;

#[tracepoint(category = "syscalls", name = "sys_enter_socket")]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    if monitored_cgroup().is_none() {
        return 0;
    }
    let ty: u64 = unsafe { ctx_read(&ctx, arg_offset(1)) };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = SOCKET_PENDING.insert(tid, (ty as u32) & SOCK_TYPE_MASK, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_socket")]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let Some(ty) = (unsafe { SOCKET_PENDING.get(tid) }).copied() else {
        return 0;
    };
    let _ = SOCKET_PENDING.remove(tid);
    let fd: i64 = unsafe { ctx_read(&ctx, 16) };
    if fd >= 0 {
        let key = (pid_tgid & 0xffff_ffff_0000_0000) | fd as u64;
        let _ = SOCKET_TYPES.insert(key, ty, 0);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    unsafe { handle_addr(&ctx, EventKind::Connect) }
}

#[tracepoint(category = "syscalls", name = "sys_enter_bind")]
pub fn sys_enter_bind(ctx: TracePointContext) -> u32 {
    unsafe { handle_addr(&ctx, EventKind::Bind) }
}

#[tracepoint(category = "syscalls", name = "sys_enter_listen")]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    let Some(cgroup_id) = monitored_cgroup() else {
        return 0;
    };
    count_seen(EventKind::Listen);
    let fd: i64 = unsafe { ctx_read(&ctx, arg_offset(0)) };
    let Some(ev) = NET_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, EventKind::Listen, cgroup_id);
    ev.fd = fd as i32;
    let key = sock_key(ev.fd);
    ev.sock_type = unsafe { SOCKET_TYPES.get(key) }.copied().unwrap_or(0);
    match unsafe { BOUND.get(key) } {
        Some(addr) => ev.addr = *addr,
        None => ev.addr.len = 0,
    }
    finish(ev, EventKind::Listen, cgroup_id)
}

#[inline(always)]
fn sock_key(fd: i32) -> u64 {
    (bpf_get_current_pid_tgid() & 0xffff_ffff_0000_0000) | (fd as u32) as u64
}

/// connect and bind: read the sockaddr the process passed (IPv4, IPv6, unix).
#[inline(always)]
unsafe fn handle_addr(ctx: &TracePointContext, kind: EventKind) -> u32 {
    let Some(cgroup_id) = monitored_cgroup() else {
        return 0;
    };
    let fd: i64 = unsafe { ctx_read(ctx, arg_offset(0)) };
    let uaddr: *const u8 = unsafe { ctx_read(ctx, arg_offset(1)) };
    let addrlen: i64 = unsafe { ctx_read(ctx, arg_offset(2)) };
    let family: u16 = match unsafe { bpf_probe_read_user(uaddr as *const u16) } {
        Ok(f) => f,
        Err(_) => return 0,
    };
    let want = match family {
        AF_INET => 16,
        AF_INET6 => 28,
        AF_UNIX => addrlen as usize,
        _ => return 0,
    };
    count_seen(kind);
    let Some(ev) = NET_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, kind, cgroup_id);
    ev.fd = fd as i32;
    let key = sock_key(ev.fd);
    ev.sock_type = unsafe { SOCKET_TYPES.get(key) }.copied().unwrap_or(0);
    let len = if want > SOCKADDR_LEN {
        SOCKADDR_LEN
    } else {
        want
    };
    if len < 2 {
        return 0;
    }
    if unsafe { bpf_probe_read_user_buf(uaddr, &mut ev.addr.data[..len]) }.is_err() {
        return 0;
    }
    ev.addr.len = len as u32;
    if matches!(kind, EventKind::Bind) {
        // By reference: no 136-byte copy on the BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let _ = BOUND.insert(key, &ev.addr, 0);
    }
    finish(ev, kind, cgroup_id)
}

#[inline(always)]
fn finish(ev: &mut learner_ebpf::NetEvent, kind: EventKind, cgroup_id: u64) -> u32 {
    let mut hash = hash_start(&ev.header);
    hash = learner_ebpf::mix(hash, ev.sock_type as u64);
    let len = (ev.addr.len as usize).min(SOCKADDR_LEN);
    hash = hash_bytes(hash, &ev.addr.data, len);
    if is_repeat(kind, cgroup_id, hash, ev.header.ts_ns) {
        return 0;
    }
    let header = &mut ev.header as *mut _;
    output(kind, ev, header, Some(hash));
    0
}
