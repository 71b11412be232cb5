//! The evidence store: every event of every workload, kept in the agent's sled store with
//! retention by age and by size, and queryable by workload, kind and time range.
//!
//! # Layout
//!
//! Events are buffered in memory per workload and written as compressed *blocks* of up to
//! [`RetentionConfig::block_events`] events, so sled holds few, large values. A block holds one
//! workload's events (its [`Workload`] record once, then the events as compact bincode records
//! with timestamps relative to the block's first one), compressed with zstd, behind a small
//! uncompressed header (first and last event time, event count, the set of event kinds) that
//! lets a query skip a block without decompressing it. A block spans at most
//! [`RetentionConfig::block_age`] of event time, so a time-range scan knows how far back a block
//! can start.
//!
//! One sled tree, `evidence`, holds four kinds of records, told apart by a key prefix:
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `b` block | workload key (8) · first ts (8, BE) · seq (8, BE) | header · zstd payload |
//! | `t` time index | last ts (8, BE) · seq (8, BE) | workload key · first ts · bytes · events |
//! | `s` write order | seq (8, BE) | workload key · first ts |
//! | `m` counters | | [`EvidenceStats`] counters, next seq, widest block span |
//!
//! The workload key is the first 8 bytes of the SHA-256 of the workload id, so one workload's
//! blocks are contiguous and time-ordered. The time index orders blocks by their newest event,
//! for retention (a block goes once its newest event is older than the maximum age) and for
//! queries over every workload; the write-order index numbers them as written, for exporters
//! ([`EvidenceStore::read_after`]). A block is written with its index entries and the counters
//! in one atomic sled batch (one tree rather than four: a batch is atomic within a tree, and
//! is several times cheaper than a multi-tree transaction).
//!
//! # Durability
//!
//! A written block is durable after the store's next [`Store::flush`] (the agent flushes
//! periodically). Events still buffered in memory (at most `block_events` per workload, at most
//! `block_age` old at each [`EvidenceStore::flush`]) are lost on a crash: evidence is recorded,
//! never acknowledged to anyone. Call [`EvidenceStore::flush_all`] before closing the store.
//!
//! Only one `EvidenceStore` may be open on a [`Store`] at a time (it keeps the counters).

use std::{borrow::Cow, collections::HashMap, fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    Access, Endpoint, Event, EventDetail, Workload,
    codec::{self, CodecError},
    store::{Store, StoreError},
};

const TREE: &str = "evidence";
const P_BLOCK: u8 = b'b';
const P_TIME: u8 = b't';
const P_SEQ: u8 = b's';
const META_KEY: &[u8] = b"m";

/// Format of a block's header and payload.
const BLOCK_FORMAT: u8 = 1;
/// Payload compression: zstd.
const COMPRESSION_ZSTD: u8 = 1;
/// zstd level: level 1 is within a few percent of level 3 on event blocks, and faster.
const ZSTD_LEVEL: i32 = 1;
/// Bytes of the uncompressed block header.
const HEADER_LEN: usize = 28;
/// Blocks deleted per retention batch.
const RETAIN_CHUNK: usize = 256;

/// Event kinds, in the order of their bit in a block's kind set.
pub const KINDS: [&str; 8] = [
    "exec", "open", "connect", "bind", "listen", "ptrace", "setuid", "setgid",
];

/// How much evidence to keep, and how events are grouped into blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionConfig {
    /// Blocks whose newest event is older than this are removed by [`EvidenceStore::retain`].
    pub max_age: Duration,
    /// The stored blocks (compressed, with their headers) are kept at most this large; the
    /// oldest go first. sled's files are larger than this by its own overhead.
    pub max_bytes: u64,
    /// A workload's buffered events are written as a block once this many are buffered.
    pub block_events: usize,
    /// ... or, at the next [`EvidenceStore::flush`], once the block's first event is this old.
    /// A block also never spans more than this much event time.
    pub block_age: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 512 << 20,
            block_events: 512,
            block_age: Duration::from_secs(60),
        }
    }
}

/// Which events [`EvidenceStore::query`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceQuery {
    /// Only this workload's events; `None`: every workload.
    pub workload: Option<String>,
    /// Only these kinds (names as [`EventDetail::kind`] returns them); empty: every kind.
    pub kinds: Vec<String>,
    /// Only events at or after this time (Unix-epoch nanoseconds).
    pub since_ns: Option<u64>,
    /// Only events at or before this time (Unix-epoch nanoseconds).
    pub until_ns: Option<u64>,
    /// At most this many events: the earliest ones. `None`: all.
    pub limit: Option<usize>,
}

/// A position in the written evidence, for [`EvidenceStore::read_after`]: the first `offset`
/// events of block `seq` (and every block before it) have been read. Serialisable, so an
/// exporter can keep it durably; also written as `seq:offset` by `Display` / `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockCursor {
    /// Block sequence number (blocks are numbered as written).
    pub seq: u64,
    /// Events of that block already read.
    pub offset: u32,
}

impl fmt::Display for BlockCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.offset)
    }
}

impl FromStr for BlockCursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid evidence cursor {s:?} (expected SEQ:OFFSET)");
        let (seq, offset) = s.split_once(':').ok_or_else(bad)?;
        Ok(BlockCursor {
            seq: seq.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

/// What the evidence store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceStats {
    /// Events in written blocks.
    pub events: u64,
    /// Written blocks.
    pub blocks: u64,
    /// Bytes of the written blocks (compressed payloads and their headers).
    pub bytes: u64,
    /// Time of the oldest written event, if any.
    pub oldest_ns: Option<u64>,
    /// Time of the newest written event, if any.
    pub newest_ns: Option<u64>,
    /// Events buffered in memory, not yet written.
    pub buffered_events: u64,
}

/// What [`EvidenceStore::retain`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Blocks removed because all their events were older than the maximum age.
    pub expired_blocks: u64,
    /// Events in those blocks.
    pub expired_events: u64,
    /// Blocks removed (oldest first) to bring the store within its maximum size.
    pub evicted_blocks: u64,
    /// Events in those blocks.
    pub evicted_events: u64,
    /// Bytes of all removed blocks.
    pub bytes_removed: u64,
}

/// Counters kept in `evidence_meta`, updated with every block written or removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    events: u64,
    blocks: u64,
    bytes: u64,
    /// Widest (last ts - first ts) of any block written: how far before a time range a block
    /// holding events of the range can start.
    max_span_ns: u64,
    next_seq: u64,
}

/// The 8-byte key of a workload id: stable across runs and builds.
pub fn workload_key(id: &str) -> [u8; 8] {
    let digest = Sha256::digest(id.as_bytes());
    let mut k = [0; 8];
    k.copy_from_slice(&digest[..8]);
    k
}

fn kind_bit(detail: &EventDetail) -> u8 {
    1 << match detail {
        EventDetail::Exec { .. } => 0,
        EventDetail::Open { .. } => 1,
        EventDetail::Connect { .. } => 2,
        EventDetail::Bind { .. } => 3,
        EventDetail::Listen { .. } => 4,
        EventDetail::Ptrace { .. } => 5,
        EventDetail::Setuid { .. } => 6,
        EventDetail::Setgid { .. } => 7,
    }
}

fn kinds_mask(kinds: &[String]) -> Result<u8, StoreError> {
    if kinds.is_empty() {
        return Ok(u8::MAX);
    }
    let mut mask = 0;
    for k in kinds {
        let i = KINDS
            .iter()
            .position(|n| n == k)
            .ok_or_else(|| StoreError::InvalidName {
                what: "event kind",
                value: k.clone(),
                why: "not one of exec, open, connect, bind, listen, ptrace, setuid, setgid",
            })?;
        mask |= 1 << i;
    }
    Ok(mask)
}

/// One event inside a block, without its workload (stored once per block). Borrows when
/// written, owns when read. Unlike [`Event`], a plain (not self-describing) serde shape, so
/// bincode can carry it.
#[derive(Serialize, Deserialize)]
struct Rec<'a> {
    /// ts - the block's base ts (wrapping).
    dts: i64,
    schema: u32,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    comm: Cow<'a, str>,
    exe: Option<Cow<'a, str>>,
    parent_exe: Option<Cow<'a, str>>,
    existing: bool,
    blocked: bool,
    detail: Detail<'a>,
}

#[derive(Serialize, Deserialize)]
enum Detail<'a> {
    Exec {
        filename: Cow<'a, str>,
        argv: Cow<'a, [String]>,
        argv_truncated: bool,
        argv_unknown: bool,
    },
    Open {
        path: Cow<'a, str>,
        flags: u32,
        access: Access,
        path_truncated: bool,
    },
    Connect(Cow<'a, Endpoint>),
    Bind(Cow<'a, Endpoint>),
    Listen(Option<Cow<'a, Endpoint>>),
    Ptrace {
        request: u64,
        request_name: Cow<'a, str>,
        target_pid: u32,
    },
    Setuid {
        call: Cow<'a, str>,
        ids: Cow<'a, [Option<u32>]>,
    },
    Setgid {
        call: Cow<'a, str>,
        ids: Cow<'a, [Option<u32>]>,
    },
}

impl<'a> Rec<'a> {
    fn borrow(e: &'a Event, base_ts: u64) -> Rec<'a> {
        let b = |s: &'a String| Cow::Borrowed(s.as_str());
        let detail = match &e.detail {
            EventDetail::Exec {
                filename,
                argv,
                argv_truncated,
                argv_unknown,
            } => Detail::Exec {
                filename: b(filename),
                argv: Cow::Borrowed(argv),
                argv_truncated: *argv_truncated,
                argv_unknown: *argv_unknown,
            },
            EventDetail::Open {
                path,
                flags,
                access,
                path_truncated,
            } => Detail::Open {
                path: b(path),
                flags: *flags,
                access: *access,
                path_truncated: *path_truncated,
            },
            EventDetail::Connect { dest } => Detail::Connect(Cow::Borrowed(dest)),
            EventDetail::Bind { local } => Detail::Bind(Cow::Borrowed(local)),
            EventDetail::Listen { local } => Detail::Listen(local.as_ref().map(Cow::Borrowed)),
            EventDetail::Ptrace {
                request,
                request_name,
                target_pid,
            } => Detail::Ptrace {
                request: *request,
                request_name: b(request_name),
                target_pid: *target_pid,
            },
            EventDetail::Setuid { call, ids } => Detail::Setuid {
                call: b(call),
                ids: Cow::Borrowed(ids),
            },
            EventDetail::Setgid { call, ids } => Detail::Setgid {
                call: b(call),
                ids: Cow::Borrowed(ids),
            },
        };
        Rec {
            dts: e.ts_ns.wrapping_sub(base_ts) as i64,
            schema: e.schema,
            pid: e.pid,
            tid: e.tid,
            ppid: e.ppid,
            uid: e.uid,
            gid: e.gid,
            comm: b(&e.comm),
            exe: e.exe.as_ref().map(b),
            parent_exe: e.parent_exe.as_ref().map(b),
            existing: e.existing,
            blocked: e.blocked,
            detail,
        }
    }

    fn ts(&self, base_ts: u64) -> u64 {
        base_ts.wrapping_add(self.dts as u64)
    }

    fn kind_bit(&self) -> u8 {
        1 << match self.detail {
            Detail::Exec { .. } => 0,
            Detail::Open { .. } => 1,
            Detail::Connect(_) => 2,
            Detail::Bind(_) => 3,
            Detail::Listen(_) => 4,
            Detail::Ptrace { .. } => 5,
            Detail::Setuid { .. } => 6,
            Detail::Setgid { .. } => 7,
        }
    }

    fn into_event(self, base_ts: u64, workload: &Workload) -> Event {
        let ts_ns = self.ts(base_ts);
        let detail = match self.detail {
            Detail::Exec {
                filename,
                argv,
                argv_truncated,
                argv_unknown,
            } => EventDetail::Exec {
                filename: filename.into_owned(),
                argv: argv.into_owned(),
                argv_truncated,
                argv_unknown,
            },
            Detail::Open {
                path,
                flags,
                access,
                path_truncated,
            } => EventDetail::Open {
                path: path.into_owned(),
                flags,
                access,
                path_truncated,
            },
            Detail::Connect(dest) => EventDetail::Connect {
                dest: dest.into_owned(),
            },
            Detail::Bind(local) => EventDetail::Bind {
                local: local.into_owned(),
            },
            Detail::Listen(local) => EventDetail::Listen {
                local: local.map(Cow::into_owned),
            },
            Detail::Ptrace {
                request,
                request_name,
                target_pid,
            } => EventDetail::Ptrace {
                request,
                request_name: request_name.into_owned(),
                target_pid,
            },
            Detail::Setuid { call, ids } => EventDetail::Setuid {
                call: call.into_owned(),
                ids: ids.into_owned(),
            },
            Detail::Setgid { call, ids } => EventDetail::Setgid {
                call: call.into_owned(),
                ids: ids.into_owned(),
            },
        };
        Event {
            schema: self.schema,
            ts_ns,
            workload: workload.clone(),
            pid: self.pid,
            tid: self.tid,
            ppid: self.ppid,
            uid: self.uid,
            gid: self.gid,
            comm: self.comm.into_owned(),
            exe: self.exe.map(Cow::into_owned),
            parent_exe: self.parent_exe.map(Cow::into_owned),
            existing: self.existing,
            blocked: self.blocked,
            detail,
        }
    }
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn corrupt(key: &[u8], why: impl fmt::Display) -> StoreError {
    StoreError::Codec {
        key: format!("evidence block {}", hex(key)),
        source: CodecError::Decode(bincode::error::DecodeError::OtherString(why.to_string())),
    }
}

/// zstd could not set up or compress (out of memory).
fn zstd_error(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn be(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn block_key(wid: &[u8], first_ts: u64, seq: u64) -> [u8; 25] {
    let mut k = [P_BLOCK; 25];
    k[1..9].copy_from_slice(&wid[..8]);
    k[9..17].copy_from_slice(&first_ts.to_be_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn time_key(last_ts: u64, seq: u64) -> [u8; 17] {
    let mut k = [P_TIME; 17];
    k[1..9].copy_from_slice(&last_ts.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_key(seq: u64) -> [u8; 9] {
    let mut k = [P_SEQ; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Every key of the time index.
fn time_keys() -> std::ops::RangeInclusive<[u8; 17]> {
    time_key(0, 0)..=time_key(u64::MAX, u64::MAX)
}

/// An `evidence_time` entry.
struct TimeEntry {
    last_ts: u64,
    seq: u64,
    wid: [u8; 8],
    first_ts: u64,
    bytes: u32,
    events: u32,
}

impl TimeEntry {
    fn parse(k: &[u8], v: &[u8]) -> Option<TimeEntry> {
        if k.len() != 17 || k[0] != P_TIME || v.len() != 24 {
            return None;
        }
        Some(TimeEntry {
            last_ts: be(&k[1..]),
            seq: be(&k[9..]),
            wid: v[..8].try_into().ok()?,
            first_ts: be(&v[8..]),
            bytes: le32(&v[16..]),
            events: le32(&v[20..]),
        })
    }

    fn value(&self) -> [u8; 24] {
        let mut v = [0; 24];
        v[..8].copy_from_slice(&self.wid);
        v[8..16].copy_from_slice(&self.first_ts.to_be_bytes());
        v[16..20].copy_from_slice(&self.bytes.to_le_bytes());
        v[20..].copy_from_slice(&self.events.to_le_bytes());
        v
    }

    fn block_key(&self) -> [u8; 25] {
        block_key(&self.wid, self.first_ts, self.seq)
    }
}

/// The uncompressed header of a stored block.
struct Header {
    kinds: u8,
    count: u32,
    first_ts: u64,
    last_ts: u64,
    raw_len: u32,
}

impl Header {
    fn parse(key: &[u8], v: &[u8]) -> Result<Header, StoreError> {
        if v.len() < HEADER_LEN {
            return Err(corrupt(key, "shorter than its header"));
        }
        if v[0] != BLOCK_FORMAT {
            return Err(corrupt(
                key,
                format_args!("format {}, this build reads {BLOCK_FORMAT}", v[0]),
            ));
        }
        if v[1] != COMPRESSION_ZSTD {
            return Err(corrupt(key, format_args!("unknown compression {}", v[1])));
        }
        Ok(Header {
            kinds: v[2],
            count: le32(&v[4..]),
            first_ts: le64(&v[8..]),
            last_ts: le64(&v[16..]),
            raw_len: le32(&v[24..]),
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[BLOCK_FORMAT, COMPRESSION_ZSTD, self.kinds, 0]);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.first_ts.to_le_bytes());
        out.extend_from_slice(&self.last_ts.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }
}

/// A workload's events not yet written: their records, encoded.
struct Pending {
    workload: Workload,
    /// ts of the block's first event: records hold their ts relative to it.
    base_ts: u64,
    first_ts: u64,
    last_ts: u64,
    count: u32,
    kinds: u8,
    recs: Vec<u8>,
}

impl Pending {
    fn new(workload: Workload) -> Pending {
        Pending {
            workload,
            base_ts: 0,
            first_ts: 0,
            last_ts: 0,
            count: 0,
            kinds: 0,
            recs: Vec::new(),
        }
    }

    /// Would `ts` make the block span more than `max_span` ns?
    fn too_wide(&self, ts: u64, max_span: u64) -> bool {
        self.count > 0 && self.last_ts.max(ts) - self.first_ts.min(ts) > max_span
    }

    fn push(&mut self, e: &Event) -> Result<(), StoreError> {
        if self.count == 0 {
            self.base_ts = e.ts_ns;
            self.first_ts = e.ts_ns;
            self.last_ts = e.ts_ns;
        }
        bincode::serde::encode_into_std_write(
            Rec::borrow(e, self.base_ts),
            &mut self.recs,
            bincode_config(),
        )
        .map_err(|e| StoreError::Codec {
            key: format!("evidence of {}", self.workload.id),
            source: CodecError::Encode(e),
        })?;
        self.first_ts = self.first_ts.min(e.ts_ns);
        self.last_ts = self.last_ts.max(e.ts_ns);
        self.count += 1;
        self.kinds |= kind_bit(&e.detail);
        Ok(())
    }
}

/// The order of query results: by time, then workload id, then as appended (stable sort).
fn by_time(a: &Event, b: &Event) -> std::cmp::Ordering {
    (a.ts_ns, &a.workload.id).cmp(&(b.ts_ns, &b.workload.id))
}

/// Which events of a block to keep.
#[derive(Clone, Copy)]
struct Filter {
    since: u64,
    until: u64,
    kinds: u8,
}

impl Filter {
    const ALL: Filter = Filter {
        since: 0,
        until: u64::MAX,
        kinds: u8::MAX,
    };

    fn overlaps(&self, first_ts: u64, last_ts: u64, kinds: u8) -> bool {
        first_ts <= self.until && last_ts >= self.since && kinds & self.kinds != 0
    }
}

/// Decodes the records `recs` (of a block or a buffer), pushing those `filter` keeps.
fn decode_recs(
    what: &[u8],
    recs: &[u8],
    base_ts: u64,
    workload: &Workload,
    filter: Filter,
    out: &mut Vec<Event>,
) -> Result<(), StoreError> {
    let mut pos = 0;
    while pos < recs.len() {
        let (rec, used): (Rec<'static>, usize) =
            bincode::serde::decode_from_slice(&recs[pos..], bincode_config())
                .map_err(|e| corrupt(what, e))?;
        pos += used;
        let ts = rec.ts(base_ts);
        if ts >= filter.since && ts <= filter.until && rec.kind_bit() & filter.kinds != 0 {
            out.push(rec.into_event(base_ts, workload));
        }
    }
    Ok(())
}

/// Reusable state for decompressing blocks.
struct Reader {
    zstd: zstd::bulk::Decompressor<'static>,
    raw: Vec<u8>,
}

impl Reader {
    fn new() -> Result<Reader, StoreError> {
        Ok(Reader {
            zstd: zstd::bulk::Decompressor::new().map_err(zstd_error)?,
            raw: Vec::new(),
        })
    }

    /// Decodes the events of stored block `value` that `filter` keeps (all when it keeps the
    /// whole block's range), if the block belongs to workload `id` (when given: two ids may
    /// share a workload key).
    fn block(
        &mut self,
        key: &[u8],
        value: &[u8],
        id: Option<&str>,
        filter: Filter,
        out: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let h = Header::parse(key, value)?;
        if !filter.overlaps(h.first_ts, h.last_ts, h.kinds) {
            return Ok(());
        }
        self.raw.clear();
        self.raw.reserve(h.raw_len as usize);
        self.zstd
            .decompress_to_buffer(&value[HEADER_LEN..], &mut self.raw)
            .map_err(|e| corrupt(key, e))?;
        if self.raw.len() != h.raw_len as usize || self.raw.len() < 12 {
            return Err(corrupt(key, "payload has the wrong length"));
        }
        let base_ts = le64(&self.raw);
        let wl_len = le32(&self.raw[8..]) as usize;
        let body = &self.raw[12..];
        if body.len() < wl_len {
            return Err(corrupt(key, "workload record cut"));
        }
        let workload: Workload =
            serde_json::from_slice(&body[..wl_len]).map_err(|e| corrupt(key, e))?;
        if id.is_some_and(|id| id != workload.id) {
            return Ok(());
        }
        let before = out.len();
        decode_recs(key, &body[wl_len..], base_ts, &workload, filter, out)?;
        if filter.since == 0
            && filter.until == u64::MAX
            && filter.kinds == u8::MAX
            && out.len() - before != h.count as usize
        {
            return Err(corrupt(key, "event count differs from its header"));
        }
        Ok(())
    }
}

fn encode_meta(meta: &Meta) -> Result<Vec<u8>, StoreError> {
    codec::encode(meta).map_err(|source| StoreError::Codec {
        key: "evidence stats".into(),
        source,
    })
}

/// Events of every workload, kept in sled as compressed blocks with retention. See the module
/// documentation.
pub struct EvidenceStore {
    config: RetentionConfig,
    tree: sled::Tree,
    meta: Meta,
    pending: HashMap<String, Pending>,
    zstd: zstd::bulk::Compressor<'static>,
    /// Scratch buffers for writing a block.
    raw: Vec<u8>,
    value: Vec<u8>,
}

impl EvidenceStore {
    /// Opens the evidence kept in `store` (its counters are read from one record, not counted).
    pub fn open(store: &Store, config: RetentionConfig) -> Result<EvidenceStore, StoreError> {
        let tree = store.tree(TREE)?;
        let meta = match tree.get(META_KEY)? {
            Some(v) => codec::decode(&v).map_err(|source| StoreError::Codec {
                key: "evidence stats".into(),
                source,
            })?,
            None => Meta::default(),
        };
        Ok(EvidenceStore {
            config,
            tree,
            meta,
            pending: HashMap::new(),
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zstd_error)?,
            raw: Vec::new(),
            value: Vec::new(),
        })
    }

    /// The retention and block settings.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    fn block_age_ns(&self) -> u64 {
        u64::try_from(self.config.block_age.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records `event`: buffers it, and writes its workload's block when that is full (or the
    /// event would make it span more than `block_age`, or the workload's metadata changed).
    /// Cheap: one bincode encoding into a buffer, and a compressed write per block.
    pub fn append(&mut self, event: &Event) -> Result<(), StoreError> {
        let max_span = self.block_age_ns();
        let id = event.workload.id.as_str();
        let cut = match self.pending.get(id) {
            Some(p) => {
                p.count > 0 && (p.workload != event.workload || p.too_wide(event.ts_ns, max_span))
            }
            None => {
                self.pending
                    .insert(id.to_string(), Pending::new(event.workload.clone()));
                false
            }
        };
        if cut {
            self.write(id)?;
        }
        let p = self.pending.get_mut(id).expect("pending");
        if p.workload != event.workload {
            // Only when empty (a change cut the block above).
            p.workload = event.workload.clone();
        }
        p.push(event)?;
        if p.count as usize >= self.config.block_events.max(1) {
            self.write(id)?;
        }
        Ok(())
    }

    /// Writes every buffered block whose first event is at least `block_age` older than
    /// `now_ns`, and forgets idle workloads' buffers. Returns the number of blocks written.
    /// Call it periodically (e.g. every second).
    pub fn flush(&mut self, now_ns: u64) -> Result<usize, StoreError> {
        let age = self.block_age_ns();
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.count == 0 || now_ns.saturating_sub(p.first_ts) >= age)
            .map(|(id, _)| id.clone())
            .collect();
        let mut written = 0;
        for id in due {
            if self.pending[&id].count > 0 {
                self.write(&id)?;
                written += 1;
            }
            self.pending.remove(&id);
        }
        Ok(written)
    }

    /// Writes every buffered event. Returns the number of blocks written.
    pub fn flush_all(&mut self) -> Result<usize, StoreError> {
        let ids: Vec<String> = self.pending.keys().cloned().collect();
        let mut written = 0;
        for id in ids {
            if self.pending[&id].count > 0 {
                self.write(&id)?;
                written += 1;
            }
        }
        self.pending.clear();
        Ok(written)
    }

    /// Writes the buffered block of workload `id` (which has at least one event) and empties
    /// the buffer.
    fn write(&mut self, id: &str) -> Result<(), StoreError> {
        let p = self.pending.get_mut(id).expect("pending");
        let workload = serde_json::to_vec(&p.workload).map_err(|e| StoreError::Codec {
            key: format!("evidence of {id}"),
            source: CodecError::Json(e.to_string()),
        })?;
        self.raw.clear();
        self.raw.extend_from_slice(&p.base_ts.to_le_bytes());
        self.raw
            .extend_from_slice(&(workload.len() as u32).to_le_bytes());
        self.raw.extend_from_slice(&workload);
        self.raw.extend_from_slice(&p.recs);
        let header = Header {
            kinds: p.kinds,
            count: p.count,
            first_ts: p.first_ts,
            last_ts: p.last_ts,
            raw_len: self.raw.len() as u32,
        };
        self.value.clear();
        header.write(&mut self.value);
        self.value.resize(
            HEADER_LEN + zstd::zstd_safe::compress_bound(self.raw.len()),
            0,
        );
        let n = self
            .zstd
            .compress_to_buffer(&self.raw, &mut self.value[HEADER_LEN..])
            .map_err(zstd_error)?;
        self.value.truncate(HEADER_LEN + n);

        let seq = self.meta.next_seq;
        let wid = workload_key(id);
        let entry = TimeEntry {
            last_ts: p.last_ts,
            seq,
            wid,
            first_ts: p.first_ts,
            bytes: self.value.len() as u32,
            events: p.count,
        };
        let mut meta = self.meta;
        meta.events += u64::from(p.count);
        meta.blocks += 1;
        meta.bytes += self.value.len() as u64;
        meta.max_span_ns = meta.max_span_ns.max(p.last_ts - p.first_ts);
        meta.next_seq += 1;
        let meta_bytes = encode_meta(&meta)?;
        let bkey = entry.block_key();
        let tkey = time_key(entry.last_ts, seq);
        let tval = entry.value();
        let mut batch = sled::Batch::default();
        batch.insert(&bkey[..], &self.value[..]);
        batch.insert(&tkey[..], &tval[..]);
        batch.insert(&seq_key(seq)[..], &bkey[1..17]);
        batch.insert(META_KEY, meta_bytes);
        self.tree.apply_batch(batch)?;
        self.meta = meta;
        p.recs.clear();
        p.count = 0;
        p.kinds = 0;
        Ok(())
    }

    /// Removes blocks whose newest event is older than `max_age` before `now_ns`, then the
    /// oldest blocks until the stored blocks take at most `max_bytes`.
    pub fn retain(&mut self, now_ns: u64) -> Result<RetentionReport, StoreError> {
        let max_age = u64::try_from(self.config.max_age.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = now_ns.saturating_sub(max_age);
        let mut report = RetentionReport::default();
        loop {
            let mut victims = Vec::new();
            for kv in self.tree.range(time_key(0, 0)..time_key(cutoff, 0)) {
                let (k, v) = kv?;
                victims.push(TimeEntry::parse(&k, &v).ok_or_else(|| corrupt(&k, "bad index"))?);
                if victims.len() == RETAIN_CHUNK {
                    break;
                }
            }
            if victims.is_empty() {
                break;
            }
            let (events, bytes) = self.remove(&victims)?;
            report.expired_blocks += victims.len() as u64;
            report.expired_events += events;
            report.bytes_removed += bytes;
        }
        while self.meta.bytes > self.config.max_bytes {
            let mut victims = Vec::new();
            let mut freed = 0;
            for kv in self.tree.range(time_keys()) {
                let (k, v) = kv?;
                let e = TimeEntry::parse(&k, &v).ok_or_else(|| corrupt(&k, "bad index"))?;
                freed += u64::from(e.bytes);
                victims.push(e);
                if victims.len() == RETAIN_CHUNK
                    || self.meta.bytes.saturating_sub(freed) <= self.config.max_bytes
                {
                    break;
                }
            }
            if victims.is_empty() {
                break;
            }
            let (events, bytes) = self.remove(&victims)?;
            report.evicted_blocks += victims.len() as u64;
            report.evicted_events += events;
            report.bytes_removed += bytes;
        }
        Ok(report)
    }

    /// Removes blocks in one batch; returns their events and bytes.
    fn remove(&mut self, victims: &[TimeEntry]) -> Result<(u64, u64), StoreError> {
        let mut meta = self.meta;
        let (mut events, mut bytes) = (0, 0);
        for v in victims {
            events += u64::from(v.events);
            bytes += u64::from(v.bytes);
        }
        meta.events = meta.events.saturating_sub(events);
        meta.bytes = meta.bytes.saturating_sub(bytes);
        meta.blocks = meta.blocks.saturating_sub(victims.len() as u64);
        let mut batch = sled::Batch::default();
        for v in victims {
            batch.remove(&v.block_key()[..]);
            batch.remove(&time_key(v.last_ts, v.seq)[..]);
            batch.remove(&seq_key(v.seq)[..]);
        }
        batch.insert(META_KEY, encode_meta(&meta)?);
        self.tree.apply_batch(batch)?;
        self.meta = meta;
        Ok((events, bytes))
    }

    /// The events `q` selects, written or still buffered, in time order (events with the same
    /// time by workload id, then in the order they were appended). With a limit, the earliest.
    pub fn query(&self, q: &EvidenceQuery) -> Result<Vec<Event>, StoreError> {
        let since = q.since_ns.unwrap_or(0);
        let until = q.until_ns.unwrap_or(u64::MAX);
        if since > until {
            return Err(StoreError::InvalidName {
                what: "time range",
                value: format!("{since}..{until}"),
                why: "since_ns is after until_ns",
            });
        }
        let filter = Filter {
            since,
            until,
            kinds: kinds_mask(&q.kinds)?,
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut reader = Reader::new()?;
        let span = self.meta.max_span_ns;
        // Once `limit` events are found, events later than the limit-th one cannot be returned.
        let mut threshold = u64::MAX;
        let tighten = |out: &mut Vec<Event>, threshold: &mut u64| {
            if *threshold == u64::MAX && out.len() >= limit {
                out.sort_by(by_time);
                out.truncate(limit);
                *threshold = out[limit - 1].ts_ns;
            }
        };
        match &q.workload {
            Some(id) => {
                let wid = workload_key(id);
                let lo = block_key(&wid, since.saturating_sub(span), 0);
                let hi = block_key(&wid, until, u64::MAX);
                for kv in self.tree.range(lo..=hi) {
                    let (k, v) = kv?;
                    tighten(&mut out, &mut threshold);
                    if be(&k[9..]) > threshold {
                        break;
                    }
                    let f = Filter {
                        until: until.min(threshold),
                        ..filter
                    };
                    reader.block(&k, &v, Some(id), f, &mut out)?;
                }
            }
            None => {
                let lo = time_key(since, 0);
                let hi = time_key(until.saturating_add(span), u64::MAX);
                for kv in self.tree.range(lo..=hi) {
                    let (k, v) = kv?;
                    let e = TimeEntry::parse(&k, &v).ok_or_else(|| corrupt(&k, "bad index"))?;
                    tighten(&mut out, &mut threshold);
                    if e.last_ts.saturating_sub(span) > threshold {
                        break;
                    }
                    if e.first_ts > until.min(threshold) {
                        continue;
                    }
                    let bkey = e.block_key();
                    // Removed since the index was read: retention ran in between.
                    let Some(v) = self.tree.get(bkey)? else {
                        continue;
                    };
                    let f = Filter {
                        until: until.min(threshold),
                        ..filter
                    };
                    reader.block(&bkey, &v, None, f, &mut out)?;
                }
            }
        }
        for (id, p) in &self.pending {
            if p.count == 0
                || q.workload.as_ref().is_some_and(|w| w != id)
                || !filter.overlaps(p.first_ts, p.last_ts, p.kinds)
            {
                continue;
            }
            decode_recs(
                id.as_bytes(),
                &p.recs,
                p.base_ts,
                &p.workload,
                filter,
                &mut out,
            )?;
        }
        out.sort_by(by_time);
        out.truncate(limit);
        Ok(out)
    }

    /// Up to `max_events` written events after `cursor` (from the first when `None`), in the
    /// order their blocks were written (within a block, as appended), and the cursor after the
    /// last one returned (`cursor` again when there is nothing new). Buffered events are not
    /// returned until written. Blocks removed by retention before being read are skipped.
    pub fn read_after(
        &self,
        cursor: Option<BlockCursor>,
        max_events: usize,
    ) -> Result<(Vec<Event>, Option<BlockCursor>), StoreError> {
        let mut out = Vec::new();
        let mut next = cursor;
        if max_events == 0 {
            return Ok((out, next));
        }
        let start = cursor.map_or(0, |c| c.seq);
        let mut reader = Reader::new()?;
        let mut block = Vec::new();
        for kv in self.tree.range(seq_key(start)..=seq_key(u64::MAX)) {
            let (k, v) = kv?;
            if k.len() != 9 || v.len() != 16 {
                return Err(corrupt(&k, "bad index"));
            }
            let seq = be(&k[1..]);
            let bkey = block_key(&v, be(&v[8..]), seq);
            let Some(value) = self.tree.get(bkey)? else {
                continue;
            };
            block.clear();
            reader.block(&bkey, &value, None, Filter::ALL, &mut block)?;
            let skip = match cursor {
                Some(c) if c.seq == seq => (c.offset as usize).min(block.len()),
                _ => 0,
            };
            let take = (block.len() - skip).min(max_events - out.len());
            out.extend(block.drain(skip..skip + take));
            next = Some(BlockCursor {
                seq,
                offset: (skip + take) as u32,
            });
            if out.len() >= max_events {
                break;
            }
        }
        Ok((out, next))
    }

    /// What the store holds. Counts come from the stored counters; the oldest and newest
    /// times from the time index.
    pub fn stats(&self) -> Result<EvidenceStats, StoreError> {
        let mut stats = EvidenceStats {
            events: self.meta.events,
            blocks: self.meta.blocks,
            bytes: self.meta.bytes,
            oldest_ns: None,
            newest_ns: None,
            buffered_events: self.pending.values().map(|p| u64::from(p.count)).sum(),
        };
        if let Some(kv) = self.tree.range(time_keys()).next_back() {
            stats.newest_ns = Some(be(&kv?.0[1..]));
        }
        // The block with the oldest event ends at most `max_span_ns` after the first block to
        // end.
        if let Some(kv) = self.tree.range(time_keys()).next() {
            let first = be(&kv?.0[1..]);
            let hi = time_key(first.saturating_add(self.meta.max_span_ns), u64::MAX);
            for kv in self.tree.range(time_key(0, 0)..=hi) {
                let (k, v) = kv?;
                let e = TimeEntry::parse(&k, &v).ok_or_else(|| corrupt(&k, "bad index"))?;
                stats.oldest_ns = Some(stats.oldest_ns.map_or(e.first_ts, |o| o.min(e.first_ts)));
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests;
