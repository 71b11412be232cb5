//! Coverage: whether one entry stands for another (a widened entry for the entries it replaced,
//! or an event's entry), and finding a widened entry for an event without a walk over the
//! profile.

use std::collections::BTreeMap;

use super::{ANY_ARGS, ancestors, any_args, child_pattern, cidr, dir_of, join, network};
use super::{deep, same_depth_pattern};
use crate::{
    diff::DiffEntry,
    event::{Event, Family},
    generalize,
    model::{ExecEntry, FileEntry, LineageEntry, NetEntry, Profile, Seen, event_entries},
};

impl ExecEntry {
    /// True when the arguments are [`ANY_ARGS`]: any argument list, or unknown arguments.
    pub fn any_args(&self) -> bool {
        self.args
            .as_deref()
            .is_some_and(|a| matches!(a, [one] if one == ANY_ARGS))
    }

    /// Whether this entry stands for `other`: its path pattern covers `other`'s
    /// ([`generalize::covers`]) and its arguments are [`ANY_ARGS`] or equal to `other`'s.
    pub fn covers(&self, other: &ExecEntry) -> bool {
        generalize::covers(&self.path, &other.path) && (self.any_args() || self.args == other.args)
    }
}

impl LineageEntry {
    /// Whether this entry stands for `other`: both its paths cover `other`'s.
    pub fn covers(&self, other: &LineageEntry) -> bool {
        generalize::covers(&self.parent, &other.parent)
            && generalize::covers(&self.child, &other.child)
    }
}

impl FileEntry {
    /// Whether this entry stands for `other`: the same access class and a covering path.
    pub fn covers(&self, other: &FileEntry) -> bool {
        self.access == other.access && generalize::covers(&self.path, &other.path)
    }
}

impl NetEntry {
    /// Whether this entry stands for `other`: the same family and protocol; the same port, or
    /// port 0 on an IP entry, which means any port; an IP network (`10.1.2.0/24`) containing
    /// `other`'s address or network, or a unix path pattern covering `other`'s path.
    pub fn covers(&self, other: &NetEntry) -> bool {
        if self.family != other.family || self.protocol != other.protocol {
            return false;
        }
        if self.port != 0 && self.port != other.port {
            return false;
        }
        match (cidr(self), cidr(other)) {
            (Some((a, p)), Some((b, q))) => p <= q && network(a, p) == network(b, p),
            _ if self.family == Family::Unix => generalize::covers(&self.addr, &other.addr),
            _ => self.addr == other.addr,
        }
    }
}

impl DiffEntry {
    /// Whether this entry stands for `other`, an entry of the same kind (see the kinds'
    /// `covers`). Every entry covers itself.
    pub fn covers(&self, other: &DiffEntry) -> bool {
        match (self, other) {
            (DiffEntry::Exec(a), DiffEntry::Exec(b)) => a.covers(b),
            (DiffEntry::Lineage(a), DiffEntry::Lineage(b)) => a.covers(b),
            (DiffEntry::File(a), DiffEntry::File(b)) => a.covers(b),
            (DiffEntry::Connect(a), DiffEntry::Connect(b)) => a.covers(b),
            (DiffEntry::Listen(a), DiffEntry::Listen(b)) => a.covers(b),
            _ => false,
        }
    }
}

/// Path patterns that widening may have put in place of path `p`, most specific first:
/// `p`, `dir/*` (or `dir/*/`), then for each directory above (nearest first) the same-depth
/// wildcard `dir/*/*` and `dir/**`. Complete because widening groups entries only under such
/// directories (see `ancestors`).
fn path_forms(p: &str) -> Vec<String> {
    let mut out = vec![p.to_string()];
    out.extend(dir_of(p).map(|d| child_pattern(d, p)));
    for dir in ancestors(p) {
        out.extend(same_depth_pattern(dir, p).filter(|_| !deep(p)));
        out.push(join(dir, "**"));
    }
    out.dedup();
    out
}

/// Addresses that widening may have put in place of a network entry's: the address, its /24,
/// /16, /8 and /0 (IPv6 /64, /48, /32, /0), or a unix path's [`path_forms`].
fn addr_forms(n: &NetEntry) -> Vec<String> {
    let mut out = vec![n.addr.clone()];
    if let Some((ip, prefix)) = cidr(n) {
        let ladder = if ip.is_ipv4() {
            [24, 16, 8, 0]
        } else {
            [64, 48, 32, 0]
        };
        let wider = ladder.into_iter().filter(|&to| to < prefix);
        out.extend(wider.map(|to| format!("{}/{to}", network(ip, to))));
    } else if n.family == Family::Unix {
        out = path_forms(&n.addr);
    }
    out
}

/// An entry kind as far as coverage goes.
trait Covering: Ord + Clone {
    /// `covers` of the kind.
    fn stands_for(&self, other: &Self) -> bool;
    /// Entries that widening may have put in place of this one (it included).
    fn forms(&self) -> Vec<Self>;
}

impl Covering for ExecEntry {
    fn stands_for(&self, other: &Self) -> bool {
        self.covers(other)
    }

    fn forms(&self) -> Vec<Self> {
        let mut out = Vec::new();
        for path in path_forms(&self.path) {
            for args in [self.args.clone(), any_args()] {
                out.push(ExecEntry {
                    path: path.clone(),
                    args,
                });
            }
        }
        out
    }
}

impl Covering for LineageEntry {
    fn stands_for(&self, other: &Self) -> bool {
        self.covers(other)
    }

    fn forms(&self) -> Vec<Self> {
        let children = path_forms(&self.child);
        let each = |parent: String| {
            children.iter().map(move |child| LineageEntry {
                parent: parent.clone(),
                child: child.clone(),
            })
        };
        path_forms(&self.parent)
            .into_iter()
            .flat_map(each)
            .collect()
    }
}

impl Covering for FileEntry {
    fn stands_for(&self, other: &Self) -> bool {
        self.covers(other)
    }

    fn forms(&self) -> Vec<Self> {
        let each = |path| FileEntry {
            path,
            access: self.access,
        };
        path_forms(&self.path).into_iter().map(each).collect()
    }
}

impl Covering for NetEntry {
    fn stands_for(&self, other: &Self) -> bool {
        self.covers(other)
    }

    fn forms(&self) -> Vec<Self> {
        let ports = if self.port == 0 {
            vec![0]
        } else {
            vec![self.port, 0]
        };
        let each = |addr: String| {
            ports.iter().map(move |&port| NetEntry {
                addr: addr.clone(),
                port,
                ..self.clone()
            })
        };
        addr_forms(self).into_iter().flat_map(each).collect()
    }
}

/// An entry of `map` other than `key` that widening may have put in place of `key` and that
/// covers it: a handful of lookups, no walk over the map.
fn widened_cover<K: Covering>(map: &BTreeMap<K, Seen>, key: &K) -> Option<K> {
    let forms = key.forms().into_iter().filter(|f| f != key);
    forms
        .filter(|f| map.contains_key(f))
        .find(|f| f.stands_for(key))
}

/// Whether `map` holds `key` or an entry covering it (a walk only when no widened form does).
fn covered<K: Covering>(map: &BTreeMap<K, Seen>, key: &K) -> bool {
    map.contains_key(key)
        || widened_cover(map, key).is_some()
        || map.keys().any(|k| k.stands_for(key))
}

/// Counts `key` at `ts_ns`: on itself when present, else (with `widened`) on a widened entry
/// covering it, else as a new entry. True when the entry is new.
fn observe<K: Covering>(map: &mut BTreeMap<K, Seen>, key: K, ts_ns: u64, widened: bool) -> bool {
    if let Some(s) = map.get_mut(&key) {
        s.observe(ts_ns);
        return false;
    }
    let cover = widened.then(|| widened_cover(map, &key)).flatten();
    match cover.and_then(|c| map.get_mut(&c)) {
        Some(s) => {
            s.observe(ts_ns);
            false
        }
        None => {
            map.insert(key, Seen::at(ts_ns));
            true
        }
    }
}

impl Profile {
    /// Counts one entry; with `widened`, an entry without an exact match goes to a widened
    /// entry covering it when there is one. True when the entry is new.
    pub(crate) fn observe(&mut self, entry: DiffEntry, ts_ns: u64, widened: bool) -> bool {
        match entry {
            DiffEntry::Exec(k) => observe(&mut self.execs, k, ts_ns, widened),
            DiffEntry::Lineage(k) => observe(&mut self.lineage, k, ts_ns, widened),
            DiffEntry::File(k) => observe(&mut self.files, k, ts_ns, widened),
            DiffEntry::Connect(k) => observe(&mut self.connects, k, ts_ns, widened),
            DiffEntry::Listen(k) => observe(&mut self.listens, k, ts_ns, widened),
        }
    }

    /// [`Profile::record`] for a widened profile: an event whose exact entry is absent but that
    /// a widened entry covers (`/var/cache/app/*`, `10.1.2.0/24`, port 0, [`ANY_ARGS`]) is
    /// counted on that entry instead of adding its own, so a widened profile does not grow back.
    /// Finding the widened entry takes a few lookups per entry (per directory level of its
    /// path), only for entries without an exact match.
    pub fn record_covered(&mut self, e: &Event) -> Vec<crate::model::EntryKind> {
        self.record_with(e, true)
    }

    /// Whether the profile holds `entry` or an entry covering it ([`DiffEntry::covers`]).
    pub fn covers_entry(&self, entry: &DiffEntry) -> bool {
        match entry {
            DiffEntry::Exec(k) => covered(&self.execs, k),
            DiffEntry::Lineage(k) => covered(&self.lineage, k),
            DiffEntry::File(k) => covered(&self.files, k),
            DiffEntry::Connect(k) => covered(&self.connects, k),
            DiffEntry::Listen(k) => covered(&self.listens, k),
        }
    }

    /// Whether the profile already accounts for `e` (argv already redacted): every entry the
    /// event would record is present or covered by an entry. True for events that record none.
    pub fn covers(&self, e: &Event) -> bool {
        event_entries(e)
            .iter()
            .all(|entry| self.covers_entry(entry))
    }
}
