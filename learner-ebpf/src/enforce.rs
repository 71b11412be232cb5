//! Enforcement: a workload's allow-list, compiled by userspace into maps keyed by cgroup id.
//! An exec outside it is killed with SIGKILL at `sched_process_exec`, before the new image runs
//! its first instruction; a connect outside it fails with EPERM (`cgroup/connect4|6`, attached
//! to the cgroup2 root so every cgroup is covered). A cgroup not in `ENFORCE` costs one lookup.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_cgroup_id, bpf_probe_read_kernel_str_bytes, bpf_send_signal},
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::{SockAddrContext, TracePointContext},
};
use learner_ebpf::{
    ENFORCE_CONNECT, ENFORCE_EXEC, EXEC_DIR, EXEC_EXACT, EXEC_TREE, EnforceEntry, EnforceStats,
    ExecAllowKey, FNV_OFFSET, FNV_PRIME, NET_KEY_FIXED_BITS, Net4Key, Net6Key, PATH_LEN,
};

use crate::{
    emit::bump,
    maps::{ENFORCE, ENFORCE_STATS, EXEC_ALLOW, NET4_ALLOW, NET6_ALLOW, PATH_SCRATCH},
};

const SIGKILL: u32 = 9;

#[inline(always)]
fn enforce_stats() -> Option<&'static EnforceStats> {
    let p = ENFORCE_STATS.get_ptr_mut(0)?;
    Some(unsafe { &*p })
}

/// The enforcement entry of the current task's cgroup, when `what` is enforced there.
#[inline(always)]
fn enforcing(what: u32) -> Option<(u64, EnforceEntry)> {
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let e = unsafe { ENFORCE.get(cgroup_id) }?;
    (e.flags & what != 0).then_some((cgroup_id, *e))
}

#[inline(always)]
fn allowed(cgroup_id: u64, generation: u32, kind: u32, hash: u64) -> bool {
    let key = ExecAllowKey {
        cgroup_id,
        generation,
        kind,
        hash,
    };
    unsafe { EXEC_ALLOW.get(key) }.is_some()
}

/// Checks the program of an exec that just succeeded (`sched_process_exec`, whose record holds
/// the path at `filename_loc`) against the cgroup's allow-list; kills the task when it is
/// outside. Returns true when the task was killed.
#[inline(always)]
pub fn check_exec(ctx: &TracePointContext, filename_loc: u32) -> bool {
    let Some((cgroup_id, entry)) = enforcing(ENFORCE_EXEC) else {
        return false;
    };
    let Some(stats) = enforce_stats() else {
        return false;
    };
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let buf = unsafe { &mut *buf };
    let src = unsafe { (ctx.as_ptr() as *const u8).add((filename_loc & 0xffff) as usize) };
    let Ok(path) = (unsafe { bpf_probe_read_kernel_str_bytes(src, buf) }) else {
        return false;
    };
    let len = path.len();
    if len == 0 || buf[0] != b'/' {
        // A relative path names a file the kernel cannot place without the cwd: let it run,
        // and let userspace judge the event.
        bump(&stats.exec_unchecked);
        return false;
    }
    bump(&stats.exec_checked);
    let generation = entry.generation;
    // One pass: hash the path; at every `/` the prefix so far names a directory.
    let mut h = FNV_OFFSET;
    let mut dir = 0u64;
    let mut ok = false;
    for i in 0..PATH_LEN {
        if i >= len {
            break;
        }
        let b = buf[i & (PATH_LEN - 1)];
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        if b == b'/' {
            dir = h;
            if allowed(cgroup_id, generation, EXEC_TREE, h) {
                ok = true;
                break;
            }
        }
    }
    if !ok {
        ok = allowed(cgroup_id, generation, EXEC_EXACT, h)
            || allowed(cgroup_id, generation, EXEC_DIR, dir);
    }
    if ok {
        return false;
    }
    bump(&stats.exec_killed);
    unsafe { bpf_send_signal(SIGKILL) };
    true
}

/// The verdict on a connect: 1 lets it through, 0 fails it with EPERM. `V6` is fixed per
/// program: a connect4 program may not read the IPv6 fields of its context, nor the reverse.
#[inline(always)]
fn connect_verdict<const V6: bool>(ctx: &SockAddrContext) -> i32 {
    let Some((cgroup_id, entry)) = enforcing(ENFORCE_CONNECT) else {
        return 1;
    };
    let Some(stats) = enforce_stats() else {
        return 1;
    };
    bump(&stats.connect_checked);
    let sa = unsafe { &*ctx.sock_addr };
    let port_be = sa.user_port as u16;
    let generation = entry.generation;
    let ok = if V6 {
        let mut addr = [0u8; 16];
        for (i, w) in sa.user_ip6.iter().enumerate() {
            addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        [port_be, 0].iter().any(|&port_be| {
            let key = Key::new(
                NET_KEY_FIXED_BITS + 128,
                Net6Key {
                    cgroup_id,
                    generation,
                    port_be,
                    addr,
                },
            );
            NET6_ALLOW.get(&key).is_some()
        })
    } else {
        let addr = sa.user_ip4.to_ne_bytes();
        [port_be, 0].iter().any(|&port_be| {
            let key = Key::new(
                NET_KEY_FIXED_BITS + 32,
                Net4Key {
                    cgroup_id,
                    generation,
                    port_be,
                    addr,
                },
            );
            NET4_ALLOW.get(&key).is_some()
        })
    };
    if ok {
        1
    } else {
        bump(&stats.connect_denied);
        0
    }
}

/// `connect()` on an IPv4 socket of an enforcing cgroup: 0 (EPERM) outside the allow-list.
#[cgroup_sock_addr(connect4)]
pub fn enforce_connect4(ctx: SockAddrContext) -> i32 {
    connect_verdict::<false>(&ctx)
}

/// `connect()` on an IPv6 socket of an enforcing cgroup: 0 (EPERM) outside the allow-list.
#[cgroup_sock_addr(connect6)]
pub fn enforce_connect6(ctx: SockAddrContext) -> i32 {
    connect_verdict::<true>(&ctx)
}
