//! Every map the programs share with userspace, by name.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use learner_ebpf::{
    CgroupEntry, Config, DEDUP_RECENT_SLOTS, DedupKey, EnforceEntry, EnforceStats, ExecAllowKey,
    ExecEvent, KIND_SLOTS, KindStats, MONITORED_SLOTS, Net4Key, Net6Key, NetEvent, OpenEvent,
    PATH_LEN, RecentDedup, SockAddr,
};

/// The one ring buffer all events go through. Userspace may resize it at load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(2 * 1024 * 1024, 0);

/// Per-CPU time (boot ns) of the last forced wake-up of the ring's reader (index 0).
#[map]
pub static WAKE_LAST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU counters, indexed by event kind number.
#[map]
pub static STATS: PerCpuArray<KindStats> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Runtime settings (index 0).
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// cgroup ids to watch when `Config::filter_enabled` is set.
#[map]
pub static MONITORED: HashMap<u64, CgroupEntry> = HashMap::with_max_entries(16384, 0);

/// Direct-mapped copy of `MONITORED` (see [`learner_ebpf::MONITORED_SLOTS`]): most cgroups are
/// decided by one inlined array load instead of a hash-map helper call.
#[map]
pub static MONITORED_FAST: Array<u64> = Array::with_max_entries(MONITORED_SLOTS, 0);

/// Per-CPU direct-mapped cache of recently sent event identities, checked before `DEDUP` so
/// that a tight repeat is counted without a helper call.
#[map]
pub static DEDUP_RECENT: PerCpuArray<RecentDedup> =
    PerCpuArray::with_max_entries(DEDUP_RECENT_SLOTS, 0);

/// Number of the dedup window each (cgroup, event identity) was last sent in.
#[map]
pub static DEDUP: LruHashMap<DedupKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// The current dedup window number (index 0), advanced by userspace once per window.
#[map]
pub static DEDUP_WINDOW: Array<u64> = Array::with_max_entries(1, 0);

/// Child pid → parent tgid, recorded at fork.
#[map]
pub static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(65536, 0);

/// Exec records built at syscall entry, keyed by tid, emitted once the exec succeeded.
#[map]
pub static EXEC_PENDING: LruHashMap<u32, ExecEvent> = LruHashMap::with_max_entries(1024, 0);

/// tid → (family << 16 | type) of the thread's last socket() call.
#[map]
pub static LAST_SOCKET: LruHashMap<u32, u32> = LruHashMap::with_max_entries(16384, 0);

/// (tgid << 32 | fd) → address the socket was bound to, for listen events.
#[map]
pub static BOUND: LruHashMap<u64, SockAddr> = LruHashMap::with_max_entries(8192, 0);

/// Per-CPU scratch space: records too large for the 512-byte stack.
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static OPEN_SCRATCH: PerCpuArray<OpenEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static NET_SCRATCH: PerCpuArray<NetEvent> = PerCpuArray::with_max_entries(1, 0);

/// cgroup ids of workloads in enforce mode, with what is enforced and the generation in force.
#[map]
pub static ENFORCE: HashMap<u64, EnforceEntry> = HashMap::with_max_entries(4096, 0);

/// Allowed programs of enforcing cgroups: exact paths and directory prefixes, by hash.
#[map]
pub static EXEC_ALLOW: HashMap<ExecAllowKey, u8> = HashMap::with_max_entries(262_144, 0);

/// Allowed IPv4 destinations of enforcing cgroups (longest-prefix match on the address).
#[map]
pub static NET4_ALLOW: LpmTrie<Net4Key, u8> = LpmTrie::with_max_entries(65_536, 0);

/// Allowed IPv6 destinations of enforcing cgroups.
#[map]
pub static NET6_ALLOW: LpmTrie<Net6Key, u8> = LpmTrie::with_max_entries(65_536, 0);

/// Per-CPU enforcement counters (index 0).
#[map]
pub static ENFORCE_STATS: PerCpuArray<EnforceStats> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch space for the program path an exec check hashes.
#[map]
pub static PATH_SCRATCH: PerCpuArray<[u8; PATH_LEN]> = PerCpuArray::with_max_entries(1, 0);
