//! The review queue: deviations proposed as allow-list entries, approved or rejected by a named
//! reviewer.
//!
//! In alert mode and enforce dry run, every deviation of a workload (an event entry its profile
//! does not cover) is [`observe`]d: it becomes a [`Proposal`], deduplicated by workload and
//! generalised entry (the [`DiffEntry`] of [`crate::model::event_entries`]), which counts how
//! often and when it was seen, keeps the first [`MAX_EXAMPLES`] events and the keys of up to
//! [`MAX_ALERTS`] alerts it raised.
//!
//! A reviewer [`approve`]s a pending proposal, as its exact entry or as a broader pattern that
//! covers it ([`parse_pattern`]), or [`reject`]s it. An approval is kept as an [`Approval`]
//! record; [`Approval::apply`] adds its entry to the workload's profile, after which the entry
//! is covered ([`Profile::covers_entry`]) and stops alerting. A rejected proposal keeps alerting
//! and counting. A decision is final: deciding again is [`ReviewError::AlreadyDecided`].
//!
//! Storage: proposals are JSON records in the store tree [`REVIEWS_TREE`], keyed by their id;
//! approvals in [`APPROVALS_TREE`], keyed by workload, decision time and proposal id. Every
//! change of a proposal is one read and one write under one process-wide lock, so the agent's
//! counting and a reviewer's decision (made on another thread through the API) never overwrite
//! each other. An approval writes its [`Approval`] record first and then the proposal, the
//! commit point: [`approvals`] lists only approvals whose proposal says so, so a crash between
//! the two writes leaves the proposal pending and no approval in effect. Decisions are flushed
//! before they return (a decision is acknowledged only once durable); observations are durable
//! with the store's next flush.
//!
//! The agent observes every deviating event, and a repeated deviation may be frequent: the
//! [`ReviewBuffer`] in front of the store counts repeats in memory and writes only when a
//! proposal is new to it or gains an example or an alert key; [`ReviewBuffer::flush`] writes
//! the counts gathered since.

use std::{
    cmp::Reverse,
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
    sync::{Mutex, MutexGuard, PoisonError},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{
    bound::ANY_ARGS,
    diff::DiffEntry,
    event::{Access, Event, Family, Protocol},
    model::{ExecEntry, FileEntry, LineageEntry, NetEntry, Profile, Seen},
    store::{Store, StoreError},
};

/// The store tree holding [`Proposal`]s (JSON, keyed by [`Proposal::id`]).
pub const REVIEWS_TREE: &str = "reviews";

/// The store tree holding [`Approval`]s (JSON, keyed by workload, time and proposal id).
pub const APPROVALS_TREE: &str = "approvals";

/// Example events kept per proposal: the first ones seen.
pub const MAX_EXAMPLES: usize = 3;

/// Alert keys kept per proposal: the first distinct ones.
pub const MAX_ALERTS: usize = 16;

/// Proposals a [`ReviewBuffer`] tracks by default before it flushes and starts over.
pub const DEFAULT_BUFFER_CAPACITY: usize = 4096;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a reviewer; keeps alerting.
    Pending,
    /// Allowed: its entry (or a pattern covering it) joined the profile.
    Approved,
    /// Refused: keeps alerting.
    Rejected,
}

impl State {
    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = ReviewError;

    /// `pending`, `approved` or `rejected`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(State::Pending),
            "approved" => Ok(State::Approved),
            "rejected" => Ok(State::Rejected),
            other => Err(ReviewError::Invalid {
                what: "state",
                reason: format!("{other:?} is not pending, approved or rejected"),
            }),
        }
    }
}

/// A reviewer's decision on a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided.
    pub reviewer: String,
    /// When (Unix-epoch nanoseconds).
    pub at_ns: u64,
    /// Why (may be empty).
    pub comment: String,
    /// For an approval, the entry that joined the profile: the proposal's entry or a pattern
    /// covering it. `None` for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_as: Option<DiffEntry>,
}

/// A deviation of one workload, proposed as an allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Stable id: [`proposal_id`] of the workload and entry.
    pub id: String,
    /// The workload that deviated.
    pub workload: String,
    /// The generalised entry its profile does not cover.
    pub entry: DiffEntry,
    /// Where it stands.
    pub state: State,
    /// How often it was seen (written counts; see [`ReviewBuffer`]).
    pub count: u64,
    /// First seen (Unix-epoch nanoseconds).
    pub first_ns: u64,
    /// Last seen (Unix-epoch nanoseconds).
    pub last_ns: u64,
    /// The first [`MAX_EXAMPLES`] events (argv already redacted).
    pub examples: Vec<Event>,
    /// Keys of the first [`MAX_ALERTS`] distinct alerts it raised.
    pub alerts: Vec<String>,
    /// The reviewer's decision, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// An approved proposal: what joins the workload's profile, and who allowed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approved proposal.
    pub proposal_id: String,
    /// Its workload.
    pub workload: String,
    /// What joins the profile: the pattern the reviewer named, or the exact entry.
    pub entry: DiffEntry,
    /// The proposal's entry, which `entry` covers.
    pub exact: DiffEntry,
    /// Who approved.
    pub reviewer: String,
    /// When (Unix-epoch nanoseconds).
    pub at_ns: u64,
    /// Why (may be empty).
    pub comment: String,
}

impl Approval {
    /// Adds the approved entry to `profile` (seen once, at the approval's time) unless the
    /// profile holds it already; afterwards `profile.covers_entry(&self.exact)` is true. True
    /// when the profile changed, so applying twice changes nothing.
    pub fn apply(&self, profile: &mut Profile) -> bool {
        fn add<K: Ord + Clone>(
            m: &mut std::collections::BTreeMap<K, Seen>,
            k: &K,
            s: Seen,
        ) -> bool {
            if m.contains_key(k) {
                return false;
            }
            m.insert(k.clone(), s);
            true
        }
        let s = Seen::at(self.at_ns);
        match &self.entry {
            DiffEntry::Exec(k) => add(&mut profile.execs, k, s),
            DiffEntry::Lineage(k) => add(&mut profile.lineage, k, s),
            DiffEntry::File(k) => add(&mut profile.files, k, s),
            DiffEntry::Connect(k) => add(&mut profile.connects, k, s),
            DiffEntry::Listen(k) => add(&mut profile.listens, k, s),
        }
    }

    /// The store key: workload, zero-padded time and proposal id, so a workload's approvals
    /// are adjacent and in time order.
    fn key(&self) -> Vec<u8> {
        format!(
            "{}\0{:020}\0{}",
            self.workload, self.at_ns, self.proposal_id
        )
        .into_bytes()
    }
}

/// A review operation failed.
#[derive(Debug, Error)]
pub enum ReviewError {
    /// No proposal has this id.
    #[error("no review proposal {id:?}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The proposal was approved or rejected before (a conflict: decisions are final).
    #[error("review proposal {id} was already {state}")]
    AlreadyDecided {
        /// The proposal.
        id: String,
        /// Its state.
        state: State,
    },
    /// The pattern to approve as is malformed, of another kind, or does not cover the entry.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another argument is invalid (an empty reviewer or workload, an unknown state).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// `reviewer`, `workload` or `state`.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The id of the proposal for `entry` of `workload`: the first 16 hex digits of the SHA-256 of
/// the workload, a NUL and the entry's rendered form.
pub fn proposal_id(workload: &str, entry: &DiffEntry) -> String {
    let mut h = Sha256::new();
    h.update(workload.as_bytes());
    h.update([0]);
    h.update(entry.to_string().as_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Serialises every read-modify-write of the review trees in this process (one process owns
/// the store).
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check_name(what: &'static str, value: &str) -> Result<(), ReviewError> {
    let reason = if value.trim().is_empty() {
        "is empty"
    } else if value.contains('\0') {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    Err(ReviewError::Invalid {
        what,
        reason: reason.into(),
    })
}

fn load(store: &Store, id: &str) -> Result<Option<Proposal>, ReviewError> {
    Ok(store.get_json(REVIEWS_TREE, id.as_bytes())?)
}

fn save(store: &Store, p: &Proposal) -> Result<(), ReviewError> {
    Ok(store.put_json(REVIEWS_TREE, p.id.as_bytes(), p)?)
}

impl Proposal {
    /// Counts observations `seen`, keeping `example` and `alert` while there is room.
    fn fold(&mut self, seen: &Seen, example: Option<&Event>, alert: Option<&str>) {
        let mut s = *seen;
        if self.count > 0 {
            s.merge(&Seen {
                count: self.count,
                first_ns: self.first_ns,
                last_ns: self.last_ns,
            });
        }
        (self.count, self.first_ns, self.last_ns) = (s.count, s.first_ns, s.last_ns);
        if let Some(e) = example
            && self.examples.len() < MAX_EXAMPLES
        {
            self.examples.push(e.clone());
        }
        if let Some(a) = alert
            && self.alerts.len() < MAX_ALERTS
            && !self.alerts.iter().any(|k| k == a)
        {
            self.alerts.push(a.to_string());
        }
    }
}

/// [`observe`] with `extra` observations counted in the same write; true when new.
fn upsert(
    store: &Store,
    workload: &str,
    entry: &DiffEntry,
    event: &Event,
    alert_key: Option<&str>,
    extra: Option<Seen>,
) -> Result<(Proposal, bool), ReviewError> {
    check_name("workload", workload)?;
    let id = proposal_id(workload, entry);
    let mut seen = Seen::at(event.ts_ns);
    if let Some(x) = &extra {
        seen.merge(x);
    }
    let _guard = lock();
    let (mut p, new) = match load(store, &id)? {
        Some(p) => (p, false),
        None => {
            let p = Proposal {
                id,
                workload: workload.to_string(),
                entry: entry.clone(),
                state: State::Pending,
                count: 0,
                first_ns: seen.first_ns,
                last_ns: seen.last_ns,
                examples: Vec::new(),
                alerts: Vec::new(),
                decision: None,
            };
            (p, true)
        }
    };
    p.fold(&seen, Some(event), alert_key);
    save(store, &p)?;
    Ok((p, new))
}

/// Records one deviating `event` of `workload` whose generalised `entry` its profile does not
/// cover, and the key of the alert it raised, if any: creates the pending proposal or counts on
/// the existing one, whatever its state (a rejected proposal stays rejected). One read and one
/// write; durable with the store's next flush. Returns the proposal as written.
pub fn observe(
    store: &Store,
    workload: &str,
    entry: &DiffEntry,
    event: &Event,
    alert_key: Option<&str>,
) -> Result<Proposal, ReviewError> {
    upsert(store, workload, entry, event, alert_key, None).map(|(p, _)| p)
}

/// The proposal `id`.
pub fn get(store: &Store, id: &str) -> Result<Proposal, ReviewError> {
    load(store, id)?.ok_or_else(|| ReviewError::NotFound { id: id.to_string() })
}

/// The proposals of `workload` (all when `None`) in `state` (any when `None`): pending first,
/// then approved, then rejected; within a state the most recently seen first (ties by id).
pub fn list(
    store: &Store,
    workload: Option<&str>,
    state: Option<State>,
) -> Result<Vec<Proposal>, ReviewError> {
    let mut out: Vec<Proposal> = store.all_json(REVIEWS_TREE)?;
    out.retain(|p| workload.is_none_or(|w| p.workload == w) && state.is_none_or(|s| p.state == s));
    out.sort_by(|a, b| {
        let key = |p: &Proposal| (p.state, Reverse(p.last_ns));
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// The pending proposal `id` (the caller holds the lock).
fn pending(store: &Store, id: &str) -> Result<Proposal, ReviewError> {
    let p = get(store, id)?;
    match p.state {
        State::Pending => Ok(p),
        state => Err(ReviewError::AlreadyDecided { id: p.id, state }),
    }
}

/// Approves the pending proposal `id` as `reviewer` at `now_ns`: as its exact entry, or as
/// `pattern`, a broader entry covering it ([`parse_pattern`]). Stores the [`Approval`], marks
/// the proposal approved and flushes; the caller then [`Approval::apply`]s it to the live
/// profile. Errors, which change nothing: [`ReviewError::NotFound`],
/// [`ReviewError::AlreadyDecided`], [`ReviewError::InvalidPattern`], an empty reviewer.
pub fn approve(
    store: &Store,
    id: &str,
    reviewer: &str,
    comment: &str,
    pattern: Option<&str>,
    now_ns: u64,
) -> Result<Approval, ReviewError> {
    let guard = lock();
    let mut p = pending(store, id)?;
    check_name("reviewer", reviewer)?;
    let entry = match pattern {
        Some(text) => parse_pattern(&p.entry, text)?,
        None => p.entry.clone(),
    };
    let approval = Approval {
        proposal_id: p.id.clone(),
        workload: p.workload.clone(),
        entry: entry.clone(),
        exact: p.entry.clone(),
        reviewer: reviewer.to_string(),
        at_ns: now_ns,
        comment: comment.to_string(),
    };
    store.put_json(APPROVALS_TREE, &approval.key(), &approval)?;
    p.state = State::Approved;
    p.decision = Some(Decision {
        reviewer: reviewer.to_string(),
        at_ns: now_ns,
        comment: comment.to_string(),
        approved_as: Some(entry),
    });
    save(store, &p)?;
    drop(guard); // the flush need not hold up observations
    store.flush()?;
    Ok(approval)
}

/// Rejects the pending proposal `id` as `reviewer` at `now_ns` and flushes; the deviation keeps
/// alerting and counting. Errors as [`approve`]'s. Returns the proposal as written.
pub fn reject(
    store: &Store,
    id: &str,
    reviewer: &str,
    comment: &str,
    now_ns: u64,
) -> Result<Proposal, ReviewError> {
    let guard = lock();
    let mut p = pending(store, id)?;
    check_name("reviewer", reviewer)?;
    p.state = State::Rejected;
    p.decision = Some(Decision {
        reviewer: reviewer.to_string(),
        at_ns: now_ns,
        comment: comment.to_string(),
        approved_as: None,
    });
    save(store, &p)?;
    drop(guard); // the flush need not hold up observations
    store.flush()?;
    Ok(p)
}

/// The approvals in effect for `workload` (all when `None`), by workload and then in time
/// order: those whose proposal is approved with this very decision (see the module docs).
pub fn approvals(store: &Store, workload: Option<&str>) -> Result<Vec<Approval>, ReviewError> {
    let mut all: Vec<Approval> = store.all_json(APPROVALS_TREE)?;
    all.retain(|a| workload.is_none_or(|w| a.workload == w));
    let mut out = Vec::with_capacity(all.len());
    for a in all {
        let committed = load(store, &a.proposal_id)?.is_some_and(|p| {
            p.state == State::Approved && p.decision.is_some_and(|d| d.at_ns == a.at_ns)
        });
        if committed {
            out.push(a);
        }
    }
    Ok(out)
}

// --- Patterns ------------------------------------------------------------------------------

const KIND_WORDS: [&str; 5] = ["exec", "lineage", "file", "connect", "listen"];

fn kind_word(e: &DiffEntry) -> &'static str {
    match e {
        DiffEntry::Exec(_) => "exec",
        DiffEntry::Lineage(_) => "lineage",
        DiffEntry::File(_) => "file",
        DiffEntry::Connect(_) => "connect",
        DiffEntry::Listen(_) => "listen",
    }
}

/// Splits shell-style words as [`DiffEntry`]'s rendering quotes them: whitespace separates,
/// `'...'` quotes literally, a backslash escapes the next character (`'\''` is a quote).
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => cur.get_or_insert_with(String::new).push(c),
                None => return Err("trailing backslash".into()),
            },
            c if c.is_whitespace() => out.extend(cur.take()),
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    Ok(out)
}

/// A path pattern standing in for `exact`'s path: not empty, absolute exactly when it is.
fn path_like(word: &str, exact: &str) -> Result<String, String> {
    if word.is_empty() {
        return Err("the path is empty".into());
    }
    if word.contains('\0') {
        return Err("the path contains a NUL character".into());
    }
    match (word.starts_with('/'), exact.starts_with('/')) {
        (false, true) => Err(format!(
            "{word:?} is relative but the entry's path {exact:?} is absolute"
        )),
        (true, false) => Err(format!(
            "{word:?} is absolute but the entry's path {exact:?} is relative"
        )),
        _ => Ok(word.to_string()),
    }
}

fn exec_pattern(words: &[String], e: &ExecEntry) -> Result<DiffEntry, String> {
    let (path, rest) = words.split_first().ok_or("no program path")?;
    let args = match rest {
        [] => Some(vec![ANY_ARGS.to_string()]),
        [a, b] if a == "(arguments" && b == "unknown)" => None,
        args => Some(args.to_vec()),
    };
    Ok(DiffEntry::Exec(ExecEntry {
        path: path_like(path, &e.path)?,
        args,
    }))
}

fn lineage_pattern(words: &[String], l: &LineageEntry) -> Result<DiffEntry, String> {
    match words {
        [parent, arrow, child] if arrow == "->" => Ok(DiffEntry::Lineage(LineageEntry {
            parent: path_like(parent, &l.parent)?,
            child: path_like(child, &l.child)?,
        })),
        _ => Err("expected \"PARENT -> CHILD\"".into()),
    }
}

fn file_pattern(words: &[String], f: &FileEntry) -> Result<DiffEntry, String> {
    let (path, access) = match words {
        [path] => (path, f.access),
        [path, access] if access.starts_with('(') && access.ends_with(')') => {
            let name = &access[1..access.len() - 1];
            let access = [Access::Read, Access::Write, Access::Create]
                .into_iter()
                .find(|a| a.as_str() == name)
                .ok_or_else(|| format!("unknown access class {access:?} (read, write, create)"))?;
            (path, access)
        }
        _ => return Err("expected \"PATH [(ACCESS)]\" (quote paths with spaces)".into()),
    };
    Ok(DiffEntry::File(FileEntry {
        path: path_like(path, &f.path)?,
        access,
    }))
}

fn protocol(name: &str) -> Option<Protocol> {
    use Protocol::*;
    [Tcp, Udp, Raw, Stream, Dgram, Seqpacket, Unknown]
        .into_iter()
        .find(|&p| crate::diff::protocol_name(p) == name)
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
        Family::Unix => "unix socket",
    }
}

/// An IP address or CIDR, normalised: the network address of a CIDR, a plain address for a
/// full-length prefix.
fn ip_pattern(text: &str) -> Result<(Family, String), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
    let (family, max) = match ip {
        IpAddr::V4(_) => (Family::Inet, 32),
        IpAddr::V6(_) => (Family::Inet6, 128),
    };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            let p: u8 = p
                .parse()
                .map_err(|_| format!("{text:?} has an invalid prefix length {p:?}"))?;
            if p > max {
                let name = family_name(family);
                return Err(format!(
                    "prefix /{p} of {text:?} is out of range for {name} (at most {max})"
                ));
            }
            p
        }
    };
    let net = match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    };
    let text = if prefix == max {
        net.to_string()
    } else {
        format!("{net}/{prefix}")
    };
    Ok((family, text))
}

fn port(text: &str) -> Result<u16, String> {
    match text {
        "*" => Ok(0),
        t => t
            .parse()
            .map_err(|_| format!("{t:?} is not a port (0-65535, 0 or * for any)")),
    }
}

/// `unix:PATH`, `ADDR[/PREFIX][:PORT]`, `[ADDR6[/PREFIX]][:PORT]` or a bare IPv6 address or
/// CIDR; a missing port is `n`'s.
fn endpoint_pattern(text: &str, n: &NetEntry) -> Result<(Family, String, u16), String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return Ok((Family::Unix, path_like(path, &n.addr)?, 0));
    }
    let (addr, port_text) = if let Some(inner) = text.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{text:?} lacks its closing bracket"))?;
        match after {
            "" => (addr, None),
            a => (
                addr,
                Some(
                    a.strip_prefix(':')
                        .ok_or_else(|| format!("unexpected {a:?} after the address"))?,
                ),
            ),
        }
    } else {
        match text.matches(':').count() {
            0 => (text, None),
            1 => text
                .split_once(':')
                .map(|(a, p)| (a, Some(p)))
                .unwrap_or((text, None)),
            _ => (text, None),
        }
    };
    let (family, addr) = ip_pattern(addr)?;
    if text.starts_with('[') && family != Family::Inet6 {
        return Err(format!("brackets are for IPv6 addresses, not {addr:?}"));
    }
    let port = port_text.map_or(Ok(n.port), port)?;
    Ok((family, addr, port))
}

fn net_pattern(words: &[String], n: &NetEntry) -> Result<NetEntry, String> {
    let (proto, text) = match words {
        [text] => (n.protocol, text),
        [p, text] => {
            let proto = protocol(p).ok_or_else(|| format!("unknown protocol {p:?}"))?;
            (proto, text)
        }
        _ => return Err("expected \"[PROTOCOL] ADDRESS[:PORT]\"".into()),
    };
    let (family, addr, port) = endpoint_pattern(text, n)?;
    if family != n.family {
        let (ours, theirs) = (family_name(family), family_name(n.family));
        return Err(format!(
            "{text:?} is an {ours} address but the entry's is {theirs}"
        ));
    }
    Ok(NetEntry {
        family,
        protocol: proto,
        addr,
        port,
    })
}

/// Parses `pattern`, a broader entry to approve `exact` as, and checks that it covers `exact`.
///
/// The pattern is an entry of `exact`'s kind, written as [`DiffEntry`]'s rendering
/// (`file /opt/app/** (read)`, `connect tcp 10.0.0.0/8:0`) or shorter, without the kind word
/// and with what it leaves out taken from `exact`:
/// * exec: `PATH [ARGS...]`; without arguments any arguments are allowed ([`ANY_ARGS`]);
/// * lineage: `PARENT -> CHILD`;
/// * file: `PATH [(ACCESS)]`, by default `exact`'s access class;
/// * connect, listen: `[PROTOCOL] ADDRESS[:PORT]` with an address `10.0.0.0/8`, `[fd00::/8]`
///   (a bare `fd00::/8` without port), or `unix:PATH`; port `0` or `*` means any port, and by
///   default the protocol and port are `exact`'s. CIDRs are normalised to their network.
///
/// Paths are patterns (`/opt/app/bin/*`, `/opt/app/**`; see [`crate::generalize`]); words with
/// spaces are quoted shell-style, as the rendering does. The rendering of `exact` itself gives
/// `exact`. Errors are [`ReviewError::InvalidPattern`]: empty, another kind, a relative pattern
/// for an absolute path or the reverse, a bad address, CIDR, prefix or port, or a pattern that
/// does not cover `exact` (checked with [`Profile::covers_entry`]).
pub fn parse_pattern(exact: &DiffEntry, pattern: &str) -> Result<DiffEntry, ReviewError> {
    let bad = |reason: String| ReviewError::InvalidPattern {
        pattern: pattern.to_string(),
        reason,
    };
    let text = pattern.trim();
    if text.is_empty() {
        return Err(bad("the pattern is empty".into()));
    }
    if text == exact.to_string() {
        return Ok(exact.clone());
    }
    let mut words = words(text).map_err(bad)?;
    let kind = kind_word(exact);
    if let Some(first) = words.first()
        && KIND_WORDS.contains(&first.as_str())
    {
        if first != kind {
            return Err(bad(format!(
                "a {first} pattern cannot approve the {kind} entry \"{exact}\""
            )));
        }
        words.remove(0);
    }
    if words.is_empty() {
        return Err(bad(format!("nothing follows {kind:?}")));
    }
    let candidate = match exact {
        DiffEntry::Exec(e) => exec_pattern(&words, e),
        DiffEntry::Lineage(l) => lineage_pattern(&words, l),
        DiffEntry::File(f) => file_pattern(&words, f),
        DiffEntry::Connect(n) => net_pattern(&words, n).map(DiffEntry::Connect),
        DiffEntry::Listen(n) => net_pattern(&words, n).map(DiffEntry::Listen),
    }
    .map_err(bad)?;
    let mut one = Profile::default();
    Approval {
        proposal_id: String::new(),
        workload: String::new(),
        entry: candidate.clone(),
        exact: exact.clone(),
        reviewer: String::new(),
        at_ns: 0,
        comment: String::new(),
    }
    .apply(&mut one);
    if !one.covers_entry(exact) {
        return Err(bad(format!(
            "\"{candidate}\" does not cover the proposed entry \"{exact}\""
        )));
    }
    Ok(candidate)
}

// --- Buffer --------------------------------------------------------------------------------

/// What the buffer knows of one proposal.
#[derive(Debug)]
struct Tracked {
    id: String,
    /// Examples the stored proposal holds.
    examples: usize,
    /// Alert keys the stored proposal holds.
    alerts: Vec<String>,
    /// Observations counted since the last write.
    unwritten: Option<Seen>,
}

/// What [`ReviewBuffer::observe`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The proposal's id.
    pub id: String,
    /// True when the proposal was created (it was not in the store).
    pub new: bool,
    /// True when the observation was written through to the store; false when only counted
    /// in memory until the next [`ReviewBuffer::flush`].
    pub written: bool,
}

/// An in-memory front of [`observe`] for the agent's hot path.
///
/// A deviation is written through (one read and one write, as [`observe`]) when the buffer
/// does not know its proposal yet (a new proposal, or the first sighting since the buffer was
/// created or cleared), or when the stored proposal gains something reviewers see: an example
/// (fewer than [`MAX_EXAMPLES`] kept) or a new alert key (fewer than [`MAX_ALERTS`] kept). Any
/// other repeat only adds to an in-memory count and last-seen time, with no store access.
/// [`ReviewBuffer::flush`] writes those counts (call it periodically and before
/// shutdown; counts not flushed are lost with the process). A reviewer's decision made
/// meanwhile is kept: writes read the stored proposal and only add counts to it.
///
/// At most `capacity` proposals are tracked; one more flushes the buffer and starts over.
#[derive(Debug)]
pub struct ReviewBuffer {
    tracked: HashMap<String, HashMap<DiffEntry, Tracked>>,
    len: usize,
    capacity: usize,
}

impl Default for ReviewBuffer {
    fn default() -> Self {
        ReviewBuffer::with_capacity(DEFAULT_BUFFER_CAPACITY)
    }
}

impl ReviewBuffer {
    /// A buffer tracking up to [`DEFAULT_BUFFER_CAPACITY`] proposals.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer tracking up to `capacity` proposals (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        ReviewBuffer {
            tracked: HashMap::new(),
            len: 0,
            capacity: capacity.max(1),
        }
    }

    /// [`observe`] through the buffer (see the type's docs).
    pub fn observe(
        &mut self,
        store: &Store,
        workload: &str,
        entry: &DiffEntry,
        event: &Event,
        alert_key: Option<&str>,
    ) -> Result<Observed, ReviewError> {
        let known = self
            .tracked
            .get_mut(workload)
            .and_then(|m| m.get_mut(entry));
        if let Some(t) = known {
            let gains_alert = alert_key
                .is_some_and(|k| t.alerts.len() < MAX_ALERTS && !t.alerts.iter().any(|a| a == k));
            if t.examples >= MAX_EXAMPLES && !gains_alert {
                match &mut t.unwritten {
                    Some(s) => s.observe(event.ts_ns),
                    None => t.unwritten = Some(Seen::at(event.ts_ns)),
                }
                return Ok(Observed {
                    id: t.id.clone(),
                    new: false,
                    written: false,
                });
            }
            let extra = t.unwritten;
            let (p, new) = upsert(store, workload, entry, event, alert_key, extra)?;
            (t.examples, t.alerts, t.unwritten) = (p.examples.len(), p.alerts, None);
            return Ok(Observed {
                id: p.id,
                new,
                written: true,
            });
        }
        if self.len >= self.capacity {
            self.flush(store)?;
            self.tracked.clear();
            self.len = 0;
        }
        let (p, new) = upsert(store, workload, entry, event, alert_key, None)?;
        let t = Tracked {
            id: p.id.clone(),
            examples: p.examples.len(),
            alerts: p.alerts,
            unwritten: None,
        };
        let per_workload = self.tracked.entry(workload.to_string()).or_default();
        per_workload.insert(entry.clone(), t);
        self.len += 1;
        Ok(Observed {
            id: p.id,
            new,
            written: true,
        })
    }

    /// Writes the counts gathered in memory: one read and one write per proposal with unwritten
    /// counts, adding them to the stored proposal whatever its state. Durable with the store's
    /// next flush. Returns how many proposals were written. On an error the counts not yet
    /// written stay buffered. A proposal that vanished from the store is forgotten.
    pub fn flush(&mut self, store: &Store) -> Result<usize, ReviewError> {
        let mut written = 0;
        let mut gone = Vec::new();
        for (workload, entries) in &mut self.tracked {
            for (entry, t) in entries.iter_mut() {
                let Some(extra) = t.unwritten else { continue };
                let _guard = lock();
                match load(store, &t.id)? {
                    Some(mut p) => {
                        p.fold(&extra, None, None);
                        save(store, &p)?;
                        written += 1;
                    }
                    None => gone.push((workload.clone(), entry.clone())),
                }
                t.unwritten = None;
            }
        }
        for (workload, entry) in gone {
            if let Some(m) = self.tracked.get_mut(&workload)
                && m.remove(&entry).is_some()
            {
                self.len -= 1;
            }
        }
        Ok(written)
    }

    /// Proposals with counts not yet written.
    pub fn unwritten(&self) -> usize {
        let entries = self.tracked.values().flat_map(|m| m.values());
        entries.filter(|t| t.unwritten.is_some()).count()
    }

    /// Proposals tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no proposal is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests;
