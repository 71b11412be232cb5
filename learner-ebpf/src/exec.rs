//! Process lifecycle: fork (parent tracking) and exec (filename + argv, confirmed on success).

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use learner_ebpf::{
    ARG_CHUNK, ARGV_LIMIT, EventKind, FLAG_ARGV_TRUNCATED, FLAG_ARGV_UNKNOWN, FLAG_BLOCKED,
    FLAG_EXECVEAT, FLAG_PATH_TRUNCATED, MAX_ARGS, PATH_LEN,
};

use crate::{
    ctx_read,
    emit::{Current, begin_header, count_seen, fill_task, monitored_cgroup, output},
    maps::{CONFIG, EXEC_PENDING, EXEC_SCRATCH, PARENTS},
};

const AT_FDCWD: i32 = -100;

/// `sched:sched_process_fork`: remember the parent of every child. Every child, not only those
/// of monitored cgroups: a process is often forked outside its workload's cgroup and moves in
/// before it execs (a container runtime, a shell's `echo $$ > cgroup.procs`), and by the time
/// its exec is read the parent may be gone from /proc.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    if CONFIG.get(0).is_none_or(|c| c.paused != 0) {
        return 0;
    }
    // child_pid at offset 20; the forking task is current.
    let child: i32 = unsafe { ctx_read(&ctx, 20) };
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    let _ = PARENTS.insert(child as u32, parent, 0);
    0
}

/// `execve(filename, argv, envp)`.
#[inline(always)]
pub unsafe fn execve(cur: Current, a: &[u64; 6]) {
    unsafe {
        stash_exec(
            cur,
            AT_FDCWD,
            a[0] as *const u8,
            a[1] as *const *const u8,
            0,
        )
    }
}

/// `execveat(dirfd, filename, argv, envp, flags)`.
#[inline(always)]
pub unsafe fn execveat(cur: Current, a: &[u64; 6]) {
    unsafe {
        stash_exec(
            cur,
            a[0] as i32,
            a[1] as *const u8,
            a[2] as *const *const u8,
            FLAG_EXECVEAT,
        )
    }
}

/// Reads filename and argv at syscall entry (the only time the user memory is there) and keeps
/// them by tid until `sched_process_exec` confirms the exec; a failed exec is never emitted.
#[inline(always)]
unsafe fn stash_exec(
    cur: Current,
    dirfd: i32,
    filename: *const u8,
    argv: *const *const u8,
    flags: u32,
) {
    let Some(ev) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev = unsafe { &mut *ev };
    begin_header(&mut ev.header, EventKind::Exec, cur);
    fill_task(&mut ev.header);
    ev.header.flags = flags;
    ev.dirfd = dirfd;
    ev._pad = 0;
    let n = unsafe {
        bpf_probe_read_user_str(
            ev.filename.as_mut_ptr().cast(),
            PATH_LEN as u32,
            filename.cast(),
        )
    };
    if n <= 0 {
        ev.filename[0] = 0;
    } else if n as usize >= PATH_LEN {
        ev.header.flags |= FLAG_PATH_TRUNCATED;
    }

    let mut off: usize = 0;
    let mut argc: u32 = 0;
    let mut i = 0;
    while i < MAX_ARGS {
        let arg: *const u8 = match unsafe { bpf_probe_read_user(argv.add(i)) } {
            Ok(p) => p,
            Err(_) => break,
        };
        if arg.is_null() {
            break;
        }
        if off >= ARGV_LIMIT {
            ev.header.flags |= FLAG_ARGV_TRUNCATED;
            break;
        }
        let o = off & (ARGV_LIMIT - 1);
        let dst = &mut ev.argv[o..o + ARG_CHUNK];
        let n = unsafe {
            bpf_probe_read_user_str(dst.as_mut_ptr().cast(), ARG_CHUNK as u32, arg.cast())
        };
        if n <= 0 {
            break;
        }
        let n = (n as usize) & (ARG_CHUNK * 2 - 1);
        if n >= ARG_CHUNK {
            ev.header.flags |= FLAG_ARGV_TRUNCATED;
        }
        off = o + n;
        argc += 1;
        i += 1;
    }
    if i == MAX_ARGS {
        // Arguments beyond the ones kept?
        if let Ok(p) = unsafe { bpf_probe_read_user::<*const u8>(argv.add(MAX_ARGS)) }
            && !p.is_null()
        {
            ev.header.flags |= FLAG_ARGV_TRUNCATED;
        }
    }
    ev.argc = argc;
    ev.argv_len = off as u32;
    // By reference: a by-value copy of the 1.6 KiB record would overflow the 512-byte BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let _ = EXEC_PENDING.insert(ev.header.tid, &*ev, 0);
}

/// `sched:sched_process_exec`: the exec succeeded; emit what was stashed at entry.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // old_pid (offset 16) is the tid that called execve, before a multi-threaded exec made it
    // the group leader.
    let old_pid: i32 = unsafe { ctx_read(&ctx, 16) };
    let old_pid = old_pid as u32;
    // `__data_loc char[] filename` at offset 8: the string's offset in the low 16 bits.
    let filename_loc: u32 = unsafe { ctx_read(&ctx, 8) };
    let blocked = if crate::enforce::check_exec(&ctx, filename_loc) {
        FLAG_BLOCKED
    } else {
        0
    };
    let Some(ev) = EXEC_PENDING.get_ptr_mut(old_pid) else {
        return unstashed_exec(&ctx, filename_loc, blocked);
    };
    let ev = unsafe { &mut *ev };
    count_seen(EventKind::Exec);
    let Some(cur) = monitored_cgroup() else {
        let _ = EXEC_PENDING.remove(old_pid);
        return 0;
    };
    // Refresh the task fields: pid, comm and credentials are those of the new image.
    let flags = ev.header.flags;
    begin_header(&mut ev.header, EventKind::Exec, cur);
    ev.header.flags = flags | blocked;
    let header = &mut ev.header as *mut _;
    output(EventKind::Exec, ev, header, None);
    let _ = EXEC_PENDING.remove(old_pid);
    0
}

/// An exec whose entry was not seen: a 32-bit (compat) task, whose syscalls do not fire the
/// `syscalls:` tracepoints, or a stash evicted under load. The program path comes from the
/// tracepoint record; the arguments are unknown and the event says so.
#[inline(always)]
fn unstashed_exec(ctx: &TracePointContext, loc: u32, blocked: u32) -> u32 {
    let Some(cur) = monitored_cgroup() else {
        return 0;
    };
    count_seen(EventKind::Exec);
    let Some(ev) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let ev = unsafe { &mut *ev };
    begin_header(&mut ev.header, EventKind::Exec, cur);
    ev.header.flags = FLAG_ARGV_UNKNOWN | blocked;
    ev.argc = 0;
    ev.argv_len = 0;
    ev.dirfd = AT_FDCWD;
    let off = (loc & 0xffff) as usize;
    let src = unsafe { (ctx.as_ptr() as *const u8).add(off) };
    let n = unsafe {
        bpf_probe_read_kernel_str(ev.filename.as_mut_ptr().cast(), PATH_LEN as u32, src.cast())
    };
    if n <= 0 {
        ev.filename[0] = 0;
    }
    let header = &mut ev.header as *mut _;
    output(EventKind::Exec, ev, header, None);
    0
}
