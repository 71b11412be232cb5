//! Privilege-related calls: ptrace and the setuid / setgid family.

use learner_ebpf::{EventKind, IdCall, IdEvent, mix};

use crate::emit::{Current, begin_header, count_seen, hash_start, is_repeat, output};

/// A ptrace or set*id call with its numeric arguments.
#[inline(always)]
pub fn id_call(cur: Current, kind: EventKind, call: IdCall, a: &[u64; 6]) {
    count_seen(kind);
    let mut ev = IdEvent {
        header: unsafe { core::mem::zeroed() },
        call: call as u32,
        _pad: 0,
        args: [0; 3],
    };
    begin_header(&mut ev.header, kind, cur);
    let n = call.arg_count();
    let mut hash = mix(hash_start(&ev.header), call as u64);
    let mut i = 0;
    while i < 3 {
        if i < n {
            ev.args[i] = a[i];
            hash = mix(hash, a[i]);
        }
        i += 1;
    }
    if is_repeat(kind, cur.cgroup_id, hash) {
        return;
    }
    let header = &mut ev.header as *mut _;
    output(kind, &mut ev, header, Some(hash));
}
