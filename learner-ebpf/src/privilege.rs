//! Privilege-related calls: ptrace and the setuid / setgid family.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use learner_ebpf::{EventKind, IdCall, mix};

use crate::{
    arg_offset, ctx_read,
    emit::{count_seen, fill_header, hash_start, is_repeat, monitored_cgroup, output},
};

#[inline(always)]
fn handle(ctx: &TracePointContext, kind: EventKind, call: IdCall) -> u32 {
    let Some(cgroup_id) = monitored_cgroup() else {
        return 0;
    };
    count_seen(kind);
    let mut ev = learner_ebpf::IdEvent {
        header: unsafe { core::mem::zeroed() },
        call: call as u32,
        _pad: 0,
        args: [0; 3],
    };
    fill_header(&mut ev.header, kind, cgroup_id);
    let n = call.arg_count();
    let mut hash = mix(hash_start(&ev.header), call as u64);
    let mut i = 0;
    while i < 3 {
        if i < n {
            ev.args[i] = unsafe { ctx_read(ctx, arg_offset(i)) };
            hash = mix(hash, ev.args[i]);
        }
        i += 1;
    }
    if is_repeat(kind, cgroup_id, hash, ev.header.ts_ns) {
        return 0;
    }
    let header = &mut ev.header as *mut _;
    output(kind, &mut ev, header, Some(hash));
    0
}

macro_rules! id_probe {
    ($name:ident, $tp:literal, $kind:expr, $call:expr) => {
        #[tracepoint(category = "syscalls", name = $tp)]
        pub fn $name(ctx: TracePointContext) -> u32 {
            handle(&ctx, $kind, $call)
        }
    };
}

id_probe!(
    sys_enter_ptrace,
    "sys_enter_ptrace",
    EventKind::Ptrace,
    IdCall::Ptrace
);
id_probe!(
    sys_enter_setuid,
    "sys_enter_setuid",
    EventKind::Setuid,
    IdCall::Setuid
);
id_probe!(
    sys_enter_setreuid,
    "sys_enter_setreuid",
    EventKind::Setuid,
    IdCall::Setreuid
);
id_probe!(
    sys_enter_setresuid,
    "sys_enter_setresuid",
    EventKind::Setuid,
    IdCall::Setresuid
);
id_probe!(
    sys_enter_setfsuid,
    "sys_enter_setfsuid",
    EventKind::Setuid,
    IdCall::Setfsuid
);
id_probe!(
    sys_enter_setgid,
    "sys_enter_setgid",
    EventKind::Setgid,
    IdCall::Setgid
);
id_probe!(
    sys_enter_setregid,
    "sys_enter_setregid",
    EventKind::Setgid,
    IdCall::Setregid
);
id_probe!(
    sys_enter_setresgid,
    "sys_enter_setresgid",
    EventKind::Setgid,
    IdCall::Setresgid
);
id_probe!(
    sys_enter_setfsgid,
    "sys_enter_setfsgid",
    EventKind::Setgid,
    IdCall::Setfsgid
);
