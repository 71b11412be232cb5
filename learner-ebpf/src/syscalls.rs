//! The syscall entry tracepoints (`syscalls:sys_enter_*`), one per watched syscall. Each checks
//! the cgroup filter, reads its arguments from the tracepoint record and hands them on.
//!
//! One raw `sys_enter` tracepoint could serve them all, but it runs for every syscall on the
//! host: measured here it adds about twice the cost of these to unwatched syscalls such as
//! read and write, which dominate most servers. These tracepoints cost nothing to a syscall
//! that is not watched beyond the kernel's syscall-tracing entry check.

use aya_ebpf::{EbpfContext, macros::tracepoint, programs::TracePointContext};
use learner_ebpf::{EventKind, IdCall};

use crate::{emit::monitored_cgroup, exec, file, net, privilege};

/// The first `N` syscall arguments of a `sys_enter_*` record (they start at offset 16, 8 bytes
/// each); the rest are zero.
#[inline(always)]
fn args<const N: usize>(ctx: &TracePointContext) -> [u64; 6] {
    let mut a = [0u64; 6];
    let base = ctx.as_ptr() as *const u64;
    let mut i = 0;
    while i < N {
        // SAFETY: a sys_enter_* record holds the syscall's arguments after a 16-byte header;
        // the verifier checks context reads.
        a[i] = unsafe { core::ptr::read(base.add(2 + i)) };
        i += 1;
    }
    a
}

macro_rules! syscall_probe {
    ($name:ident, $tp:literal, $n:literal, |$cg:ident, $a:ident| $body:expr) => {
        #[tracepoint(category = "syscalls", name = $tp)]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let Some($cg) = monitored_cgroup() else {
                return 0;
            };
            let $a = args::<$n>(&ctx);
            #[allow(unused_unsafe)]
            unsafe {
                $body
            };
            0
        }
    };
}

syscall_probe!(sys_enter_execve, "sys_enter_execve", 2, |cg, a| {
    exec::execve(cg, &a)
});
syscall_probe!(sys_enter_execveat, "sys_enter_execveat", 3, |cg, a| {
    exec::execveat(cg, &a)
});
syscall_probe!(sys_enter_openat, "sys_enter_openat", 3, |cg, a| {
    file::openat(cg, &a)
});
syscall_probe!(sys_enter_openat2, "sys_enter_openat2", 3, |cg, a| {
    file::openat2(cg, &a)
});
syscall_probe!(sys_enter_socket, "sys_enter_socket", 2, |_cg, a| {
    net::socket(&a)
});
syscall_probe!(sys_enter_connect, "sys_enter_connect", 3, |cg, a| {
    net::sockaddr_call(cg, EventKind::Connect, &a)
});
syscall_probe!(sys_enter_bind, "sys_enter_bind", 3, |cg, a| {
    net::sockaddr_call(cg, EventKind::Bind, &a)
});
syscall_probe!(
    sys_enter_listen,
    "sys_enter_listen",
    1,
    |cg, a| net::listen(cg, &a)
);
syscall_probe!(sys_enter_ptrace, "sys_enter_ptrace", 2, |cg, a| {
    privilege::id_call(cg, EventKind::Ptrace, IdCall::Ptrace, &a)
});
syscall_probe!(sys_enter_setuid, "sys_enter_setuid", 1, |cg, a| {
    privilege::id_call(cg, EventKind::Setuid, IdCall::Setuid, &a)
});
syscall_probe!(sys_enter_setreuid, "sys_enter_setreuid", 2, |cg, a| {
    privilege::id_call(cg, EventKind::Setuid, IdCall::Setreuid, &a)
});
syscall_probe!(sys_enter_setresuid, "sys_enter_setresuid", 3, |cg, a| {
    privilege::id_call(cg, EventKind::Setuid, IdCall::Setresuid, &a)
});
syscall_probe!(sys_enter_setfsuid, "sys_enter_setfsuid", 1, |cg, a| {
    privilege::id_call(cg, EventKind::Setuid, IdCall::Setfsuid, &a)
});
syscall_probe!(sys_enter_setgid, "sys_enter_setgid", 1, |cg, a| {
    privilege::id_call(cg, EventKind::Setgid, IdCall::Setgid, &a)
});
syscall_probe!(sys_enter_setregid, "sys_enter_setregid", 2, |cg, a| {
    privilege::id_call(cg, EventKind::Setgid, IdCall::Setregid, &a)
});
syscall_probe!(sys_enter_setresgid, "sys_enter_setresgid", 3, |cg, a| {
    privilege::id_call(cg, EventKind::Setgid, IdCall::Setresgid, &a)
});
syscall_probe!(sys_enter_setfsgid, "sys_enter_setfsgid", 1, |cg, a| {
    privilege::id_call(cg, EventKind::Setgid, IdCall::Setfsgid, &a)
});
