//! The ABI shared by Baseliner's eBPF programs and the userspace agent: event records written to
//! the ring buffer, map keys and values. Everything is `#[repr(C)]` plain data; numbers given to
//! [`EventKind`] variants are never reused.
#![cfg_attr(target_arch = "bpf", no_std)]

/// Bytes of a path kept in an event (including the terminating NUL).
pub const PATH_LEN: usize = 256;
/// Bytes of argv kept in an exec event before it is marked truncated.
pub const ARGV_LIMIT: usize = 1024;
/// Longest single argument read in one step.
pub const ARG_CHUNK: usize = 256;
/// Size of the argv buffer: the limit plus one chunk, so a masked offset never overflows it.
pub const ARGV_BUF: usize = ARGV_LIMIT + ARG_CHUNK;
/// Most arguments read from one exec.
pub const MAX_ARGS: usize = 32;
/// Bytes of a socket address kept in network events (fits `sockaddr_un`).
pub const SOCKADDR_LEN: usize = 128;
/// Length of the kernel's task command name.
pub const COMM_LEN: usize = 16;

/// `EventHeader::flags`: the argv was cut (more arguments or bytes than kept).
pub const FLAG_ARGV_TRUNCATED: u32 = 1 << 0;
/// `EventHeader::flags`: the path or filename was cut.
pub const FLAG_PATH_TRUNCATED: u32 = 1 << 1;
/// `EventHeader::flags`: an `openat2` call (flags came from `struct open_how`).
pub const FLAG_OPENAT2: u32 = 1 << 2;
/// `EventHeader::flags`: an `execveat` call.
pub const FLAG_EXECVEAT: u32 = 1 << 3;
/// `EventHeader::flags`: an exec whose arguments could not be read (its syscall entry was not
/// seen, e.g. a 32-bit task); only the program path is known.
pub const FLAG_ARGV_UNKNOWN: u32 = 1 << 4;

/// Kind of an event record; the first field of every record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// [`ExecEvent`]: a successful execve/execveat.
    Exec = 1,
    /// [`OpenEvent`]: openat/openat2.
    Open = 2,
    /// [`NetEvent`]: connect.
    Connect = 3,
    /// [`NetEvent`]: bind.
    Bind = 4,
    /// [`NetEvent`]: listen (address from the socket's earlier bind).
    Listen = 5,
    /// [`IdEvent`]: ptrace.
    Ptrace = 6,
    /// [`IdEvent`]: setuid family.
    Setuid = 7,
    /// [`IdEvent`]: setgid family.
    Setgid = 8,
}

/// Number of statistics slots (indexed by kind number; slot 0 is unused).
pub const KIND_SLOTS: u32 = 9;

impl EventKind {
    /// All kinds, in number order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Exec,
        EventKind::Open,
        EventKind::Connect,
        EventKind::Bind,
        EventKind::Listen,
        EventKind::Ptrace,
        EventKind::Setuid,
        EventKind::Setgid,
    ];

    /// Decodes a kind number.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }

    /// Lower-case name, as used in JSON and statistics.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Open => "open",
            EventKind::Connect => "connect",
            EventKind::Bind => "bind",
            EventKind::Listen => "listen",
            EventKind::Ptrace => "ptrace",
            EventKind::Setuid => "setuid",
            EventKind::Setgid => "setgid",
        }
    }
}

/// Common start of every event record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// [`EventKind`] number.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns` at the event (CLOCK_BOOTTIME).
    pub ts_ns: u64,
    /// cgroup2 id of the task.
    pub cgroup_id: u64,
    /// Thread-group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id from the fork the agent saw; 0 when unknown.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Padding.
    pub _pad: u32,
    /// Task command name, NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// A successful exec. Built at `sys_enter_execve(at)`, emitted at `sched_process_exec`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// Common fields.
    pub header: EventHeader,
    /// Number of arguments kept.
    pub argc: u32,
    /// Bytes used in `argv`: NUL-separated arguments.
    pub argv_len: u32,
    /// `dirfd` of execveat (AT_FDCWD = -100 for execve).
    pub dirfd: i32,
    /// Padding.
    pub _pad: u32,
    /// Program path as passed to exec, NUL terminated.
    pub filename: [u8; PATH_LEN],
    /// Arguments, each NUL terminated.
    pub argv: [u8; ARGV_BUF],
}

/// An openat / openat2 call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenEvent {
    /// Common fields.
    pub header: EventHeader,
    /// Open flags.
    pub open_flags: u32,
    /// Directory fd the path is relative to (AT_FDCWD = -100).
    pub dirfd: i32,
    /// Path as passed, NUL terminated.
    pub path: [u8; PATH_LEN],
}

// The probes hash these buffers a word at a time with aligned loads.
const _: () = assert!(
    core::mem::align_of::<OpenEvent>() == 8
        && core::mem::offset_of!(OpenEvent, path) % 8 == 0
        && core::mem::align_of::<NetEvent>() == 8
        && (core::mem::offset_of!(NetEvent, addr) + core::mem::offset_of!(SockAddr, data)) % 8 == 0
);

/// A connect, bind or listen call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NetEvent {
    /// Common fields.
    pub header: EventHeader,
    /// Socket fd.
    pub fd: i32,
    /// Socket type (`SOCK_STREAM` = 1, `SOCK_DGRAM` = 2, `SOCK_RAW` = 3); 0 when unknown.
    pub sock_type: u32,
    /// The socket address as passed to the call.
    pub addr: SockAddr,
}

/// A raw `struct sockaddr`, as the process passed it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockAddr {
    /// Bytes of `data` that are valid.
    pub len: u32,
    /// Padding.
    pub _pad: u32,
    /// The sockaddr bytes (family first).
    pub data: [u8; SOCKADDR_LEN],
}

/// A ptrace or set*id call with its numeric arguments.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IdEvent {
    /// Common fields.
    pub header: EventHeader,
    /// Which call ([`IdCall`] number for set*id; the request for ptrace is `args[0]`).
    pub call: u32,
    /// Padding.
    pub _pad: u32,
    /// Raw syscall arguments.
    pub args: [u64; 3],
}

/// Which set*id syscall an [`IdEvent`] came from.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdCall {
    /// ptrace(request, pid, ...).
    Ptrace = 0,
    /// setuid(uid).
    Setuid = 1,
    /// setreuid(ruid, euid).
    Setreuid = 2,
    /// setresuid(ruid, euid, suid).
    Setresuid = 3,
    /// setfsuid(fsuid).
    Setfsuid = 4,
    /// setgid(gid).
    Setgid = 5,
    /// setregid(rgid, egid).
    Setregid = 6,
    /// setresgid(rgid, egid, sgid).
    Setresgid = 7,
    /// setfsgid(fsgid).
    Setfsgid = 8,
}

impl IdCall {
    /// All calls, in number order.
    pub const ALL: [IdCall; 9] = [
        IdCall::Ptrace,
        IdCall::Setuid,
        IdCall::Setreuid,
        IdCall::Setresuid,
        IdCall::Setfsuid,
        IdCall::Setgid,
        IdCall::Setregid,
        IdCall::Setresgid,
        IdCall::Setfsgid,
    ];

    /// Decodes a call number.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }

    /// The syscall name.
    pub fn name(self) -> &'static str {
        match self {
            IdCall::Ptrace => "ptrace",
            IdCall::Setuid => "setuid",
            IdCall::Setreuid => "setreuid",
            IdCall::Setresuid => "setresuid",
            IdCall::Setfsuid => "setfsuid",
            IdCall::Setgid => "setgid",
            IdCall::Setregid => "setregid",
            IdCall::Setresgid => "setresgid",
            IdCall::Setfsgid => "setfsgid",
        }
    }

    /// How many id arguments the call takes.
    pub fn arg_count(self) -> usize {
        match self {
            IdCall::Ptrace => 2,
            IdCall::Setuid | IdCall::Setfsuid | IdCall::Setgid | IdCall::Setfsgid => 1,
            IdCall::Setreuid | IdCall::Setregid => 2,
            IdCall::Setresuid | IdCall::Setresgid => 3,
        }
    }
}

/// Per-kind counters in the per-CPU `STATS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Events of monitored cgroups that reached the program.
    pub seen: u64,
    /// Events written to the ring buffer.
    pub emitted: u64,
    /// Identical repeats inside the dedup window, counted and not sent.
    pub deduplicated: u64,
    /// Events lost because the ring buffer was full.
    pub dropped: u64,
}

impl KindStats {
    /// Adds another counter set (summing CPUs or kinds).
    pub fn add(&mut self, o: &KindStats) {
        self.seen += o.seen;
        self.emitted += o.emitted;
        self.deduplicated += o.deduplicated;
        self.dropped += o.dropped;
    }
}

/// Runtime settings in the `CONFIG` array (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// 1: only cgroups in `MONITORED` are watched; 0: every cgroup is.
    pub filter_enabled: u32,
    /// 1: capture is stopping; nothing is counted or sent any more (so the final statistics
    /// match what userspace received).
    pub paused: u32,
    /// Length of the dedup window: an identical repeat is counted instead of sent until
    /// userspace starts the next window (`DEDUP_WINDOW`); 0 disables dedup.
    pub dedup_window_ns: u64,
    /// Userspace is woken only once this many bytes wait in the ring; below that it drains the
    /// ring on its own timer. Batching wakeups keeps the reader from preempting the workload
    /// for every event. 0 wakes it for every event.
    pub wakeup_bytes: u64,
    /// From this many waiting bytes on (half the ring) every event wakes the reader; between
    /// `wakeup_bytes` and this, a CPU wakes it at most once per couple of milliseconds.
    pub urgent_bytes: u64,
}

/// Key of the `DEDUP` LRU map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupKey {
    /// cgroup2 id.
    pub cgroup_id: u64,
    /// Hash of the event's identity (kind, comm and kind-specific fields).
    pub hash: u64,
}

/// Slots of the `MONITORED_FAST` array: a direct-mapped copy of the cgroup filter that the
/// programs check without a helper call (the verifier inlines array lookups). Slot
/// [`monitored_slot`] of a cgroup holds 0 when no monitored cgroup maps there, the cgroup's id
/// when exactly that one does, or [`SLOT_SHARED`] when the `MONITORED` hash map must decide.
pub const MONITORED_SLOTS: u32 = 16384;
/// A `MONITORED_FAST` value: more than one monitored cgroup maps to this slot.
pub const SLOT_SHARED: u64 = u64::MAX;

/// The `MONITORED_FAST` slot of a cgroup (cgroup ids are inode numbers, so the low bits spread).
#[inline(always)]
pub fn monitored_slot(cgroup_id: u64) -> u32 {
    (cgroup_id % MONITORED_SLOTS as u64) as u32
}

/// Slots per CPU of the `DEDUP_RECENT` cache in front of the `DEDUP` LRU map.
pub const DEDUP_RECENT_SLOTS: u32 = 1024;

/// A `DEDUP_RECENT` slot: an event identity (hash mixed with the cgroup id, never 0) and the
/// dedup window it was last sent in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecentDedup {
    /// Identity; 0 marks an empty slot.
    pub key: u64,
    /// Dedup window number.
    pub window: u64,
}

/// The `DEDUP_RECENT` key of an event identity: never 0 (an empty slot).
#[inline(always)]
pub fn recent_key(cgroup_id: u64, hash: u64) -> u64 {
    let k = mix(hash, cgroup_id);
    if k == 0 { 1 } else { k }
}

/// The `DEDUP_RECENT` slot of a key, from its high bits (FNV's low bits mix poorly).
#[inline(always)]
pub fn recent_slot(key: u64) -> u32 {
    (key >> (64 - DEDUP_RECENT_SLOTS.trailing_zeros())) as u32
}

/// Where the fields the probes read sit in this kernel's structures, in bytes, found in its BTF
/// by the loader and given to the programs as a read-only global (`TASK_LAYOUT`): the programs
/// then read the task's command name and cgroup id with plain loads instead of helper calls.
/// `direct == 0` (the layout could not be found) keeps the helper calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// 1 when the offsets below are valid.
    pub direct: u32,
    /// `task_struct.comm`.
    pub task_comm: u32,
    /// `task_struct.cgroups` (a `css_set *`).
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp` (the cgroup2 `cgroup *`).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (its `kernfs_node *`).
    pub cgroup_kn: u32,
    /// `kernfs_node.id`: the cgroup id.
    pub kernfs_node_id: u32,
}

impl TaskLayout {
    /// No layout: the programs use helper calls.
    pub const HELPERS: TaskLayout = TaskLayout {
        direct: 0,
        task_comm: 0,
        task_cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_node_id: 0,
    };
}

/// Value of the `MONITORED` cgroup map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupEntry {
    /// Reserved for per-workload settings (mode); 0 today.
    pub flags: u32,
}

/// `EnforceEntry::flags`: execs outside the allow-list are killed.
pub const ENFORCE_EXEC: u32 = 1 << 0;
/// `EnforceEntry::flags`: connects outside the allow-list fail with EPERM.
pub const ENFORCE_CONNECT: u32 = 1 << 1;

/// `EventHeader::flags`: the kernel blocked the action (the exec was killed with SIGKILL).
pub const FLAG_BLOCKED: u32 = 1 << 5;

/// Value of the `ENFORCE` map: a cgroup whose workload is in enforce mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforceEntry {
    /// [`ENFORCE_EXEC`] | [`ENFORCE_CONNECT`].
    pub flags: u32,
    /// The allow-list generation in force: only entries of this generation count, so userspace
    /// writes a new generation beside the old one and switches with one update.
    pub generation: u32,
}

/// [`ExecAllowKey::kind`]: the exact program path.
pub const EXEC_EXACT: u32 = 0;
/// [`ExecAllowKey::kind`]: any program directly in the directory (the hash covers the path up
/// to and including its last `/`).
pub const EXEC_DIR: u32 = 1;
/// [`ExecAllowKey::kind`]: any program below the directory, at any depth.
pub const EXEC_TREE: u32 = 2;

/// Key of the `EXEC_ALLOW` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExecAllowKey {
    /// cgroup2 id.
    pub cgroup_id: u64,
    /// [`EnforceEntry::generation`] the entry belongs to.
    pub generation: u32,
    /// [`EXEC_EXACT`], [`EXEC_DIR`] or [`EXEC_TREE`].
    pub kind: u32,
    /// [`path_hash`] of the path (or of the directory prefix, `/` included).
    pub hash: u64,
}

/// Bits of a network allow key before the address: cgroup id, generation, port.
pub const NET_KEY_FIXED_BITS: u32 = (8 + 4 + 2) * 8;

/// Data of an IPv4 `NET4_ALLOW` LPM-trie key; the prefix length is [`NET_KEY_FIXED_BITS`] plus
/// the address prefix. Port 0 allows any port.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net4Key {
    /// cgroup2 id.
    pub cgroup_id: u64,
    /// [`EnforceEntry::generation`].
    pub generation: u32,
    /// Destination port, network byte order; 0: any.
    pub port_be: u16,
    /// Address, network byte order.
    pub addr: [u8; 4],
}

/// Data of an IPv6 `NET6_ALLOW` LPM-trie key (as [`Net4Key`]).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net6Key {
    /// cgroup2 id.
    pub cgroup_id: u64,
    /// [`EnforceEntry::generation`].
    pub generation: u32,
    /// Destination port, network byte order; 0: any.
    pub port_be: u16,
    /// Address, network byte order.
    pub addr: [u8; 16],
}

/// Counters of the per-CPU `ENFORCE_STATS` array (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforceStats {
    /// Execs of enforcing cgroups checked.
    pub exec_checked: u64,
    /// Execs killed (outside the allow-list).
    pub exec_killed: u64,
    /// Execs the kernel could not check (a relative path) and let through.
    pub exec_unchecked: u64,
    /// Connects of enforcing cgroups checked.
    pub connect_checked: u64,
    /// Connects refused with EPERM.
    pub connect_denied: u64,
}

impl EnforceStats {
    /// Adds another counter set (summing CPUs).
    pub fn add(&mut self, o: &EnforceStats) {
        self.exec_checked += o.exec_checked;
        self.exec_killed += o.exec_killed;
        self.exec_unchecked += o.exec_unchecked;
        self.connect_checked += o.connect_checked;
        self.connect_denied += o.connect_denied;
    }
}

/// Byte-wise FNV-1a of a path, as the exec check computes it in the kernel.
#[inline(always)]
pub fn path_hash(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Mixes one 64-bit word into an FNV-1a-style hash (word-at-a-time, as the kernel side does).
#[inline(always)]
pub fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(FNV_PRIME)
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are #[repr(C)] plain data without padding holes that matter to the
    // kernel, valid for any bit pattern.
    unsafe impl aya::Pod for KindStats {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for DedupKey {}
    unsafe impl aya::Pod for CgroupEntry {}
    unsafe impl aya::Pod for TaskLayout {}
    unsafe impl aya::Pod for EnforceEntry {}
    unsafe impl aya::Pod for ExecAllowKey {}
    unsafe impl aya::Pod for Net4Key {}
    unsafe impl aya::Pod for Net6Key {}
    unsafe impl aya::Pod for EnforceStats {}
}
