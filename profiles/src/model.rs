//! The behaviour profile of one workload: what it executed (with generalised arguments), which
//! program started which, the files it touched by access class, where it connected and where it
//! listened. Keys are generalised patterns ([`crate::generalize`]); each entry counts how often
//! it was seen and when first and last.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    diff::DiffEntry,
    event::{Access, Endpoint, Event, EventDetail, Family, Protocol},
    generalize,
};

/// How often an entry was seen, and when (Unix-epoch nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Number of observations (deduplicated repeats in the kernel count once).
    pub count: u64,
    /// First observation.
    pub first_ns: u64,
    /// Latest observation.
    pub last_ns: u64,
}

impl Seen {
    /// A first observation at `ts_ns`.
    pub fn at(ts_ns: u64) -> Seen {
        Seen {
            count: 1,
            first_ns: ts_ns,
            last_ns: ts_ns,
        }
    }

    /// Adds one observation.
    pub fn observe(&mut self, ts_ns: u64) {
        self.merge(&Seen::at(ts_ns));
    }

    /// Combines two records of the same entry (commutative and associative).
    pub fn merge(&mut self, o: &Seen) {
        self.count = self.count.saturating_add(o.count);
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// An executed program with its generalised arguments (without `argv[0]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecEntry {
    /// Program path pattern.
    pub path: String,
    /// Generalised arguments after `argv[0]`; `None` when they were not captured.
    pub args: Option<Vec<String>>,
}

/// A parent program starting a child program.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LineageEntry {
    /// The parent's executable pattern.
    pub parent: String,
    /// The child's executable pattern.
    pub child: String,
}

/// A file path pattern and how it was opened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path pattern.
    pub path: String,
    /// Access class.
    pub access: Access,
}

/// A network endpoint: a destination for connects, a local address for listeners.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NetEntry {
    /// Address family.
    pub family: Family,
    /// Transport.
    pub protocol: Protocol,
    /// IP address (or CIDR once widened), or a unix socket path pattern.
    pub addr: String,
    /// Port; 0 for unix sockets.
    pub port: u16,
}

/// What one workload was seen doing. Serialised with each map as a list of `[entry, seen]`
/// pairs (JSON object keys must be strings), sorted by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ProfileLists", from = "ProfileLists")]
pub struct Profile {
    /// Executed programs.
    pub execs: BTreeMap<ExecEntry, Seen>,
    /// Parent → child program starts.
    pub lineage: BTreeMap<LineageEntry, Seen>,
    /// Files by access class.
    pub files: BTreeMap<FileEntry, Seen>,
    /// Outgoing connection destinations.
    pub connects: BTreeMap<NetEntry, Seen>,
    /// Local addresses served on (TCP listen, UDP bind).
    pub listens: BTreeMap<NetEntry, Seen>,
}

/// The serialised form of [`Profile`].
#[derive(Serialize, Deserialize)]
struct ProfileLists {
    execs: Vec<(ExecEntry, Seen)>,
    lineage: Vec<(LineageEntry, Seen)>,
    files: Vec<(FileEntry, Seen)>,
    connects: Vec<(NetEntry, Seen)>,
    listens: Vec<(NetEntry, Seen)>,
}

impl From<Profile> for ProfileLists {
    fn from(p: Profile) -> Self {
        ProfileLists {
            execs: p.execs.into_iter().collect(),
            lineage: p.lineage.into_iter().collect(),
            files: p.files.into_iter().collect(),
            connects: p.connects.into_iter().collect(),
            listens: p.listens.into_iter().collect(),
        }
    }
}

impl From<ProfileLists> for Profile {
    fn from(l: ProfileLists) -> Self {
        // Duplicate entries (a hand-edited file) are merged, not dropped.
        fn collect<K: Ord>(v: Vec<(K, Seen)>) -> BTreeMap<K, Seen> {
            let mut m: BTreeMap<K, Seen> = BTreeMap::new();
            for (k, s) in v {
                match m.get_mut(&k) {
                    Some(e) => e.merge(&s),
                    None => {
                        m.insert(k, s);
                    }
                }
            }
            m
        }
        Profile {
            execs: collect(l.execs),
            lineage: collect(l.lineage),
            files: collect(l.files),
            connects: collect(l.connects),
            listens: collect(l.listens),
        }
    }
}

/// Which part of a profile changed when an event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// [`Profile::execs`].
    Exec,
    /// [`Profile::lineage`].
    Lineage,
    /// [`Profile::files`].
    File,
    /// [`Profile::connects`].
    Connect,
    /// [`Profile::listens`].
    Listen,
}

fn net_entry(ep: &Endpoint) -> NetEntry {
    let addr = match ep.family {
        Family::Unix if ep.addr.starts_with('/') => generalize::path(&ep.addr),
        _ => ep.addr.clone(),
    };
    NetEntry {
        family: ep.family,
        protocol: ep.protocol,
        addr,
        port: ep.port,
    }
}

/// The entries an event records, in order: an exec gives its exec entry and, when the parent is
/// known, a lineage entry; an open a file entry; a connect, listen or UDP bind a network entry.
/// Events that carry no profile entry (ptrace, set*id, a bind to an ephemeral port) give none.
pub fn event_entries(e: &Event) -> Vec<DiffEntry> {
    match &e.detail {
        EventDetail::Exec {
            filename,
            argv,
            argv_unknown,
            ..
        } => {
            let path = generalize::path(filename);
            let args = (!argv_unknown).then(|| generalize::argv(argv.get(1..).unwrap_or(&[])));
            let lineage = e.parent_exe.as_ref().map(|parent| {
                DiffEntry::Lineage(LineageEntry {
                    parent: generalize::path(parent),
                    child: path.clone(),
                })
            });
            let exec = DiffEntry::Exec(ExecEntry { path, args });
            std::iter::once(exec).chain(lineage).collect()
        }
        EventDetail::Open { path, access, .. } => vec![DiffEntry::File(FileEntry {
            path: generalize::path(path),
            access: *access,
        })],
        EventDetail::Connect { dest } => vec![DiffEntry::Connect(net_entry(dest))],
        // A TCP server is recorded by its listen; a UDP server by its bind. A bind to port 0
        // asks for an ephemeral port, which is never an entry.
        EventDetail::Listen { local: Some(local) } => vec![DiffEntry::Listen(net_entry(local))],
        EventDetail::Bind { local } if local.protocol == Protocol::Udp && local.port != 0 => {
            vec![DiffEntry::Listen(net_entry(local))]
        }
        _ => Vec::new(),
    }
}

impl Profile {
    /// Total number of entries (a sum of map sizes: constant time).
    pub fn len(&self) -> usize {
        self.execs.len()
            + self.lineage.len()
            + self.files.len()
            + self.connects.len()
            + self.listens.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records one event; returns the kinds of entries that were new. The event's argv must
    /// already be redacted. Events that carry no profile entry (ptrace, set*id, a bind to an
    /// ephemeral port) change nothing and return an empty list.
    ///
    /// Every entry is recorded under its exact key; once a profile was widened, use
    /// [`Profile::record_covered`] so that events a widened entry covers are counted there.
    pub fn record(&mut self, e: &Event) -> Vec<EntryKind> {
        self.record_with(e, false)
    }

    /// [`Profile::record`], except that with `covered` an entry whose exact key is absent is
    /// counted on a widened entry covering it, when there is one.
    pub(crate) fn record_with(&mut self, e: &Event, covered: bool) -> Vec<EntryKind> {
        let entries = event_entries(e).into_iter();
        entries
            .filter_map(|entry| {
                let kind = entry.kind();
                self.observe(entry, e.ts_ns, covered).then_some(kind)
            })
            .collect()
    }

    /// Adds another profile of the same workload (another node, replica or time span). Merging
    /// is commutative and associative: the order parts arrive in does not matter.
    pub fn merge(&mut self, other: &Profile) {
        fn union<K: Ord + Clone>(into: &mut BTreeMap<K, Seen>, from: &BTreeMap<K, Seen>) {
            for (k, s) in from {
                into.entry(k.clone())
                    .and_modify(|e| e.merge(s))
                    .or_insert(*s);
            }
        }
        union(&mut self.execs, &other.execs);
        union(&mut self.lineage, &other.lineage);
        union(&mut self.files, &other.files);
        union(&mut self.connects, &other.connects);
        union(&mut self.listens, &other.listens);
    }
}

#[cfg(test)]
pub(crate) mod tests;
