//! Network: outgoing connects, binds and listens, with the socket type from the thread's last
//! `socket()` call.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, bpf_probe_read_user_buf};
use learner_ebpf::{EventKind, NetEvent, SOCKADDR_LEN, mix};

use crate::{
    emit::{Current, begin_header, count_seen, hash_bytes, hash_start, is_repeat, output},
    maps::{BOUND, LAST_SOCKET, NET_SCRATCH},
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u32 = 1;
/// SOCK_NONBLOCK and SOCK_CLOEXEC ride in the type argument.
const SOCK_TYPE_MASK: u32 = 0xf;

/// `socket(family, type, protocol)`: remember the family and type this thread asked for last.
/// Watching the syscall's return for the fd would put an exit hook on every syscall on the
/// host; socket() is almost always followed by its connect() or bind() on the same thread.
#[inline(always)]
pub unsafe fn socket(a: &[u64; 6]) {
    let tid = bpf_get_current_pid_tgid() as u32;
    let value = ((a[0] as u32 & 0xffff) << 16) | (a[1] as u32 & SOCK_TYPE_MASK);
    let _ = LAST_SOCKET.insert(tid, value, 0);
}

/// The socket type of the thread's last socket() of `family`; 0 when unknown.
#[inline(always)]
fn socket_type(family: u16) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    match unsafe { LAST_SOCKET.get(tid) } {
        Some(v) if (*v >> 16) as u16 == family => *v & 0xffff,
        _ => 0,
    }
}

#[inline(always)]
fn sock_key(fd: i32) -> u64 {
    (bpf_get_current_pid_tgid() & 0xffff_ffff_0000_0000) | (fd as u32) as u64
}

/// `listen(fd, backlog)`: the address comes from the socket's bind, when the agent saw it.
#[inline(always)]
pub unsafe fn listen(cur: Current, a: &[u64; 6]) {
    count_seen(EventKind::Listen);
    let Some(ev) = NET_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev = unsafe { &mut *ev };
    begin_header(&mut ev.header, EventKind::Listen, cur);
    ev.fd = a[0] as i32;
    // Only stream-like sockets listen.
    ev.sock_type = SOCK_STREAM;
    match unsafe { BOUND.get(sock_key(ev.fd)) } {
        Some(addr) => ev.addr = *addr,
        None => ev.addr.len = 0,
    }
    finish(ev, EventKind::Listen, cur.cgroup_id)
}

/// `connect` and `bind(fd, addr, addrlen)`: read the sockaddr (IPv4, IPv6, unix).
#[inline(always)]
pub unsafe fn sockaddr_call(cur: Current, kind: EventKind, a: &[u64; 6]) {
    let uaddr = a[1] as *const u8;
    let Ok(family) = (unsafe { bpf_probe_read_user(uaddr as *const u16) }) else {
        return;
    };
    let want = match family {
        AF_INET => 16,
        AF_INET6 => 28,
        AF_UNIX => a[2] as usize,
        _ => return,
    };
    count_seen(kind);
    let Some(ev) = NET_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev = unsafe { &mut *ev };
    begin_header(&mut ev.header, kind, cur);
    ev.fd = a[0] as i32;
    ev.sock_type = socket_type(family);
    let len = if want > SOCKADDR_LEN {
        SOCKADDR_LEN
    } else {
        want
    };
    if len < 2 {
        return;
    }
    if unsafe { bpf_probe_read_user_buf(uaddr, &mut ev.addr.data[..len]) }.is_err() {
        return;
    }
    ev.addr.len = len as u32;
    if matches!(kind, EventKind::Bind) {
        // By reference: no 136-byte copy on the BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let _ = BOUND.insert(sock_key(ev.fd), &ev.addr, 0);
    }
    finish(ev, kind, cur.cgroup_id)
}

#[inline(always)]
fn finish(ev: &mut NetEvent, kind: EventKind, cgroup_id: u64) {
    let mut hash = hash_start(&ev.header);
    hash = mix(hash, ev.sock_type as u64);
    let len = (ev.addr.len as usize).min(SOCKADDR_LEN);
    // SAFETY: `SockAddr::data` is 8-byte aligned in `NetEvent` (asserted in lib.rs).
    hash = unsafe { hash_bytes(hash, &ev.addr.data, len) };
    if is_repeat(kind, cgroup_id, hash) {
        return;
    }
    let header = &mut ev.header as *mut _;
    output(kind, ev, header, Some(hash));
}
