//! One raw tracepoint on `sys_enter` dispatches every syscall the agent watches.
//!
//! A raw tracepoint costs far less per call than the per-syscall `syscalls:sys_enter_*`
//! tracepoints, which copy every call's arguments into a perf buffer before the program runs.
//! The arguments are read from the task's saved user registers (`struct pt_regs`, an ABI
//! layout) in one read, and only for the watched syscalls of monitored cgroups.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel, macros::raw_tracepoint, programs::RawTracePointContext,
};
use learner_ebpf::{EventKind, IdCall};

use crate::{emit::monitored_cgroup, exec, file, net, privilege};

/// Syscall numbers and register layout of x86-64.
#[cfg(bpf_target_arch = "x86_64")]
mod arch {
    pub const OPENAT: i64 = 257;
    pub const OPENAT2: i64 = 437;
    pub const EXECVE: i64 = 59;
    pub const EXECVEAT: i64 = 322;
    pub const SOCKET: i64 = 41;
    pub const CONNECT: i64 = 42;
    pub const BIND: i64 = 49;
    pub const LISTEN: i64 = 50;
    pub const PTRACE: i64 = 101;
    pub const SETUID: i64 = 105;
    pub const SETGID: i64 = 106;
    pub const SETREUID: i64 = 113;
    pub const SETREGID: i64 = 114;
    pub const SETRESUID: i64 = 117;
    pub const SETRESGID: i64 = 119;
    pub const SETFSUID: i64 = 122;
    pub const SETFSGID: i64 = 123;

    /// `struct pt_regs` from `r10` (offset 56) to `cs` (offset 136), inclusive.
    pub const REGS_START: usize = 56;
    pub const REGS_WORDS: usize = 11;
    /// 64-bit user code segment; a compat (32-bit) task numbers syscalls differently.
    const USER_CS: u64 = 0x33;

    /// Syscall arguments (rdi, rsi, rdx, r10, r8, r9) from the register words; `None` for a
    /// 32-bit task.
    #[inline(always)]
    pub fn args(w: &[u64; REGS_WORDS]) -> Option<[u64; 6]> {
        // r10 r9 r8 ax cx dx si di orig_ax ip cs
        if w[10] != USER_CS {
            return None;
        }
        Some([w[7], w[6], w[5], w[0], w[2], w[1]])
    }
}

/// Syscall numbers and register layout of arm64.
#[cfg(bpf_target_arch = "aarch64")]
mod arch {
    pub const OPENAT: i64 = 56;
    pub const OPENAT2: i64 = 437;
    pub const EXECVE: i64 = 221;
    pub const EXECVEAT: i64 = 281;
    pub const SOCKET: i64 = 198;
    pub const CONNECT: i64 = 203;
    pub const BIND: i64 = 200;
    pub const LISTEN: i64 = 201;
    pub const PTRACE: i64 = 117;
    pub const SETUID: i64 = 146;
    pub const SETGID: i64 = 144;
    pub const SETREUID: i64 = 145;
    pub const SETREGID: i64 = 143;
    pub const SETRESUID: i64 = 147;
    pub const SETRESGID: i64 = 149;
    pub const SETFSUID: i64 = 151;
    pub const SETFSGID: i64 = 152;

    /// `struct user_pt_regs`: x0 .. x5 at the start.
    pub const REGS_START: usize = 0;
    pub const REGS_WORDS: usize = 6;

    #[inline(always)]
    pub fn args(w: &[u64; REGS_WORDS]) -> Option<[u64; 6]> {
        Some(*w)
    }
}

use arch::*;

/// `raw_syscalls:sys_enter(struct pt_regs *regs, long id)`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let id: i64 = ctx.arg(1);
    match id {
        OPENAT | OPENAT2 | EXECVE | EXECVEAT | SOCKET | CONNECT | BIND | LISTEN | PTRACE
        | SETUID | SETGID | SETREUID | SETREGID | SETRESUID | SETRESGID | SETFSUID | SETFSGID => {}
        _ => return 0,
    }
    let Some(cgroup_id) = monitored_cgroup() else {
        return 0;
    };
    let regs: *const u8 = ctx.arg(0);
    // SAFETY: `regs` is the kernel's pt_regs of the current task; the read is checked.
    let Ok(words) =
        (unsafe { bpf_probe_read_kernel(regs.add(REGS_START) as *const [u64; REGS_WORDS]) })
    else {
        return 0;
    };
    let Some(a) = args(&words) else {
        return 0;
    };
    unsafe {
        match id {
            OPENAT => file::openat(cgroup_id, &a),
            OPENAT2 => file::openat2(cgroup_id, &a),
            EXECVE => exec::execve(cgroup_id, &a),
            EXECVEAT => exec::execveat(cgroup_id, &a),
            SOCKET => net::socket(&a),
            CONNECT => net::sockaddr_call(cgroup_id, EventKind::Connect, &a),
            BIND => net::sockaddr_call(cgroup_id, EventKind::Bind, &a),
            LISTEN => net::listen(cgroup_id, &a),
            PTRACE => privilege::id_call(cgroup_id, EventKind::Ptrace, IdCall::Ptrace, &a),
            SETUID => privilege::id_call(cgroup_id, EventKind::Setuid, IdCall::Setuid, &a),
            SETREUID => privilege::id_call(cgroup_id, EventKind::Setuid, IdCall::Setreuid, &a),
            SETRESUID => privilege::id_call(cgroup_id, EventKind::Setuid, IdCall::Setresuid, &a),
            SETFSUID => privilege::id_call(cgroup_id, EventKind::Setuid, IdCall::Setfsuid, &a),
            SETGID => privilege::id_call(cgroup_id, EventKind::Setgid, IdCall::Setgid, &a),
            SETREGID => privilege::id_call(cgroup_id, EventKind::Setgid, IdCall::Setregid, &a),
            SETRESGID => privilege::id_call(cgroup_id, EventKind::Setgid, IdCall::Setresgid, &a),
            SETFSGID => privilege::id_call(cgroup_id, EventKind::Setgid, IdCall::Setfsgid, &a),
            _ => {}
        }
    }
    0
}
