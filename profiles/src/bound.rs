//! Bounded profile size. A profile holds at most [`Limits::max_entries`] entries; beyond that,
//! [`Profile::widen_to`] replaces entries by wider patterns that cover them, merging their
//! counts and times, instead of dropping any. [`StoredProfile::record_bounded`] records events
//! this way and notes every widening in the learning state, so the profile reads as incomplete
//! and says why.
//!
//! Each step widens the kind with the most entries, least widening first:
//! * files: the directory with the most entries directly in it (per access class) collapses to
//!   `dir/*` (`dir/*/` for directory opens; `dir/x/**` stays); when no directory has two, the
//!   deepest directory with several entries below it collapses to `dir/*/*` (all at the same
//!   depth) or else `dir/**`;
//! * lineage: the same for the children of one parent, then for the parents of one child; when
//!   all parents and children are distinct, both sides widen to their top-level directory
//!   (`/usr/**` -> `/opt/**`);
//! * execs: first the argument lists of one program merge into "any arguments" ([`ANY_ARGS`]),
//!   then program paths collapse as files do, with any arguments;
//! * connects and listens (per protocol and port): IPv4 addresses widen to their /24 and IPv6 to
//!   their /64 (`10.1.2.0/24`), unix socket paths collapse as files do, addresses widen to /16 and
//!   /48; then the ports of one address merge into port 0, "any port"; then the addresses of one
//!   /16 (/48) merge whatever their port, into port 0.
//!
//! Only when no kind can be widened so does a step collapse at the root (`/*`, `/**`; `*`, `**`
//! for relative paths; `/**` -> `/**` for lineage) or widen addresses to /8 (/32 for IPv6) and
//! then to any address (`0.0.0.0/0`, `::/0`), each first per port, then with any port. A
//! widening never drops an entry that nothing can cover (`/`, an empty path): a profile made of
//! such entries stays above the bound.

mod cover;

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};

use crate::{
    diff::protocol_name,
    event::{Event, EventDetail, Family},
    generalize,
    learning::Learning,
    model::{EntryKind, ExecEntry, FileEntry, LineageEntry, NetEntry, Profile, Seen},
    store::StoredProfile,
};

/// The argument list of an exec entry that stands for any arguments, including unknown ones:
/// `args: Some(vec![ANY_ARGS])`. Rendered as `exec /usr/bin/curl <any>`.
pub const ANY_ARGS: &str = "<any>";

/// The default [`Limits::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 1000;

/// The start of every reason the size bound puts in [`Learning::incomplete`].
pub const WIDENING_REASON: &str = "size bound (";

/// Size limits of one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most entries a profile holds, all kinds together (execs, lineage, files, connects and
    /// listens); beyond it entries are widened. Default [`DEFAULT_MAX_ENTRIES`].
    pub max_entries: usize,
    /// Most distinct files of one access class directly in one directory; one more and they
    /// collapse to `dir/*` (generalisation, not incompleteness: a directory of many distinct
    /// names, such as a cache, is learned as "any file here"). Default
    /// [`DEFAULT_MAX_DIR_CHILDREN`].
    #[serde(default = "default_max_dir_children")]
    pub max_dir_children: usize,
}

/// Default of [`Limits::max_dir_children`].
pub const DEFAULT_MAX_DIR_CHILDREN: usize = 64;

fn default_max_dir_children() -> usize {
    DEFAULT_MAX_DIR_CHILDREN
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_dir_children: DEFAULT_MAX_DIR_CHILDREN,
        }
    }
}

impl Profile {
    /// When the directory of `file` holds more than `max` distinct files of `file`'s access
    /// class directly, folds them into `dir/*` (their counts and times merged); returns how
    /// many entries were folded. Costs one range scan of that directory.
    pub fn collapse_crowded_dir(&mut self, file: &FileEntry, max: usize) -> usize {
        let Some(dir) = generalize::parent_dir(&file.path) else {
            return 0;
        };
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let start = FileEntry {
            path: prefix.clone(),
            access: file.access,
        };
        let children: Vec<FileEntry> = self
            .files
            .range(start..)
            .map(|(k, _)| k)
            .take_while(|k| k.path.starts_with(&prefix))
            .filter(|k| {
                let rest = &k.path[prefix.len()..];
                k.access == file.access
                    && !rest.is_empty()
                    && !rest.trim_end_matches('/').contains('/')
                    && !rest.starts_with('*')
            })
            .cloned()
            .collect();
        if children.len() <= max {
            return 0;
        }
        let mut seen: Option<Seen> = None;
        for k in &children {
            if let Some(s) = self.files.remove(k) {
                match &mut seen {
                    Some(acc) => acc.merge(&s),
                    None => seen = Some(s),
                }
            }
        }
        if let Some(s) = seen {
            self.files
                .entry(FileEntry {
                    path: format!("{prefix}*"),
                    access: file.access,
                })
                .and_modify(|e| e.merge(&s))
                .or_insert(s);
        }
        children.len()
    }
}

/// One widening step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// The kind of entries widened.
    pub kind: EntryKind,
    /// How many entries fewer the profile has.
    pub removed: usize,
    /// What happened, e.g. `312 read entries under /var/cache/app collapsed to /var/cache/app/*`.
    pub description: String,
}

impl fmt::Display for Widening {
    /// `files: 312 read entries under /var/cache/app collapsed to /var/cache/app/*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", kind_name(self.kind), self.description)
    }
}

/// What [`StoredProfile::record_bounded`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Kinds that gained an entry (as [`Profile::record`] returns them).
    pub new: Vec<EntryKind>,
    /// Widenings the bound forced.
    pub widenings: Vec<Widening>,
}

/// The name of a kind as in the profile: `execs`, `lineage`, `files`, `connects`, `listens`.
pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Exec => "execs",
        EntryKind::Lineage => "lineage",
        EntryKind::File => "files",
        EntryKind::Connect => "connects",
        EntryKind::Listen => "listens",
    }
}

const KINDS: [EntryKind; 5] = [
    EntryKind::Exec,
    EntryKind::Lineage,
    EntryKind::File,
    EntryKind::Connect,
    EntryKind::Listen,
];

fn any_args() -> Option<Vec<String>> {
    Some(vec![ANY_ARGS.to_string()])
}

// --- Paths ---------------------------------------------------------------------------------

/// The directory of a path or pattern ([`generalize::parent_dir`]); `""`, the root of relative
/// paths, for a relative single segment.
fn parent(p: &str) -> Option<&str> {
    match generalize::parent_dir(p) {
        Some(d) => Some(d),
        None if !p.is_empty() && !p.starts_with('/') => Some(""),
        None => None,
    }
}

/// A path or pattern without its wildcard tail (the trailing `*`, `**` segments and slash that
/// widening adds): `/a/*/*` → `/a`, `/a/*/` → `/a`, `/*` → `/`, `*` → `""`, `/a/b` → `/a/b`.
fn stem(p: &str) -> &str {
    let mut s = p.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(p);
    loop {
        match s.rsplit_once('/') {
            Some(("", "*" | "**")) => return "/",
            Some((head, "*" | "**")) => s = head,
            None if s == "*" || s == "**" => return "",
            _ => return s,
        }
    }
}

/// The directories `p` may be grouped under, nearest first: those above it, but for a pattern
/// only those above its wildcard tail — `/a/*/*` goes under `/a` and `/`, not `/a/*`, since
/// what it covers need not lie in `/a/*`. So every pattern widening makes is rooted in a
/// directory above each entry it covers, which keeps the coverage lookups complete.
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    let stem = stem(p).len();
    std::iter::successors(parent(p), |d| parent(d)).filter(move |d| d.len() <= stem)
}

/// The directory `p` is directly in, if `p` may be grouped under it (see [`ancestors`]).
fn dir_of(p: &str) -> Option<&str> {
    parent(p).filter(|d| d.len() <= stem(p).len())
}

/// Segments below the root: 0 for `/` and for the relative root `""`.
fn depth(dir: &str) -> usize {
    dir.split('/').filter(|s| !s.is_empty()).count()
}

fn join(dir: &str, tail: &str) -> String {
    match dir {
        "" => tail.to_string(),
        "/" => format!("/{tail}"),
        d => format!("{d}/{tail}"),
    }
}

fn show(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

/// Ends in `**`: "anything below".
fn deep(p: &str) -> bool {
    p == "**" || p.ends_with("/**")
}

/// The part of `p` below its ancestor `dir`.
fn rest<'a>(dir: &str, p: &'a str) -> Option<&'a str> {
    match dir {
        "" => Some(p),
        "/" => p.strip_prefix('/'),
        d => p.strip_prefix(d)?.strip_prefix('/'),
    }
}

/// `n` one-segment wildcards: `*/*/*`.
fn stars(n: usize) -> String {
    vec!["*"; n].join("/")
}

/// What `p`, directly in `dir`, becomes when `dir`'s entries collapse: `dir/*`, or `dir/*/` for
/// a directory; a deep pattern (`dir/x/**`) stays, since `*` would not cover it.
fn child_pattern(dir: &str, p: &str) -> String {
    if deep(p) {
        return p.to_string();
    }
    let slash = if p.len() > 1 && p.ends_with('/') {
        "/"
    } else {
        ""
    };
    join(dir, &format!("*{slash}"))
}

/// The same-depth wildcard for `p` below its ancestor `dir` (`dir/*/*`), if `p` is a plain
/// path (not a directory, not deep).
fn same_depth_pattern(dir: &str, p: &str) -> Option<String> {
    let r = rest(dir, p)?;
    (!r.ends_with('/') && !deep(r)).then(|| join(dir, &stars(r.split('/').count())))
}

/// What every path below `dir` becomes when they collapse together: the same-depth wildcard
/// when they all have one, else `dir/**`.
fn below_pattern<'a>(dir: &str, mut paths: impl Iterator<Item = &'a str>) -> String {
    let first = paths.next().and_then(|p| same_depth_pattern(dir, p));
    match first {
        Some(f) if paths.all(|p| same_depth_pattern(dir, p).as_ref() == Some(&f)) => f,
        _ => join(dir, "**"),
    }
}

// --- Network addresses ---------------------------------------------------------------------

/// The address (or network) and prefix length of an IP entry; `None` for unix sockets and for
/// an address that does not parse as one of its family.
fn cidr(n: &NetEntry) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match n.addr.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (n.addr.as_str(), None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = match (n.family, ip) {
        (Family::Inet, IpAddr::V4(_)) => 32,
        (Family::Inet6, IpAddr::V6(_)) => 128,
        _ => return None,
    };
    let prefix = match prefix {
        Some(p) => p.parse().ok().filter(|&p| p <= max)?,
        None => max,
    };
    Some((ip, prefix))
}

/// The network of `ip` with a `prefix`-bit mask.
fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    let keep = |bits: u32| bits.saturating_sub(u32::from(prefix));
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(keep(32)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(keep(128)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

fn port_text(port: u16) -> String {
    match port {
        0 => "any port".into(),
        p => format!("port {p}"),
    }
}

// --- Plans ---------------------------------------------------------------------------------

/// Entries to replace: old → new, where new covers old.
type Moves<K> = Vec<(K, K)>;

/// Entries to replace and what that means.
struct Plan<K> {
    moves: Moves<K>,
    description: String,
}

/// Picks the groups of entries to widen together: groups of two or more whose `moves` (old
/// entry → new entry) make the map smaller, highest `rank` first (in group order on ties).
fn pick<'a, G: Ord, K: Ord + 'a, R: Ord>(
    groups: BTreeMap<G, Vec<&'a K>>,
    rank: impl Fn(&G, usize) -> R,
    moves: impl Fn(&G, &[&'a K]) -> Vec<(K, K)>,
) -> Vec<(R, G, Moves<K>)> {
    let mut ranked: Vec<(R, G, Moves<K>)> = groups
        .into_iter()
        .filter(|(_, members)| members.len() > 1)
        .filter_map(|(g, members)| {
            let moves = moves(&g, &members);
            let targets: BTreeSet<&K> = moves.iter().map(|(_, new)| new).collect();
            (targets.len() < moves.len()).then(|| (rank(&g, members.len()), g, moves))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0)); // stable: ties stay in group order
    ranked
}

/// Groups `keys` by `group` (keys without a group are left out).
fn group_by<'a, G: Ord, K: 'a>(
    keys: impl Iterator<Item = &'a K>,
    group: impl Fn(&K) -> Option<G>,
) -> BTreeMap<G, Vec<&'a K>> {
    let mut groups: BTreeMap<G, Vec<&K>> = BTreeMap::new();
    for k in keys {
        if let Some(g) = group(k) {
            groups.entry(g).or_default().push(k);
        }
    }
    groups
}

/// Replaces entries as planned, merging the records of entries that become one; returns how
/// many entries fewer the map has.
fn apply<K: Ord>(map: &mut BTreeMap<K, Seen>, moves: Vec<(K, K)>) -> usize {
    let before = map.len();
    for (old, new) in moves {
        if old == new {
            continue;
        }
        if let Some(s) = map.remove(&old) {
            map.entry(new).and_modify(|e| e.merge(&s)).or_insert(s);
        }
    }
    before - map.len()
}

/// A path inside entries of type `K`.
struct PathField<K> {
    /// The path, if the entry has one.
    get: fn(&K) -> Option<&str>,
    /// The entry with another path (and whatever else widening the path implies).
    set: fn(&K, String) -> K,
    /// What the entries of a group are, from the group's entry (with an empty path).
    noun: fn(&K) -> String,
}

const EXEC_PATH: PathField<ExecEntry> = PathField {
    get: |k| Some(&k.path),
    set: |_, path| ExecEntry {
        path,
        args: any_args(),
    },
    noun: |_| "programs (any arguments)".into(),
};

const FILE_PATH: PathField<FileEntry> = PathField {
    get: |k| Some(&k.path),
    set: |k, path| FileEntry {
        path,
        access: k.access,
    },
    noun: |g| format!("{} entries", g.access),
};

const LINEAGE_CHILD: PathField<LineageEntry> = PathField {
    get: |k| Some(&k.child),
    set: |k, child| LineageEntry {
        parent: k.parent.clone(),
        child,
    },
    noun: |g| format!("programs started by {}", g.parent),
};

const LINEAGE_PARENT: PathField<LineageEntry> = PathField {
    get: |k| Some(&k.parent),
    set: |k, parent| LineageEntry {
        parent,
        child: k.child.clone(),
    },
    noun: |g| format!("parents of {}", g.child),
};

const UNIX_PATH: PathField<NetEntry> = PathField {
    get: |k| (k.family == Family::Unix).then_some(k.addr.as_str()),
    set: |k, addr| NetEntry { addr, ..k.clone() },
    noun: |g| format!("{} unix sockets", protocol_name(g.protocol)),
};

/// `new`, when its path covers `old`'s; else `old` unchanged (never drop behaviour).
fn covering<K: Clone>(f: &PathField<K>, old: &K, target: String) -> K {
    match (f.get)(old) {
        Some(p) if generalize::covers(&target, p) => (f.set)(old, target),
        _ => old.clone(),
    }
}

/// Collapses the entries directly in the directory with the most of them: the root (`/`, or
/// `""` for relative paths) when `root`, any other directory otherwise.
fn children<K: Ord + Clone>(map: &BTreeMap<K, Seen>, f: &PathField<K>, root: bool) -> Vec<Plan<K>> {
    let groups = group_by(map.keys(), |k| {
        let dir = dir_of((f.get)(k)?).filter(|d| (depth(d) == 0) == root)?;
        Some(((f.set)(k, String::new()), dir.to_string()))
    });
    let moves = |(_, dir): &(K, String), members: &[&K]| {
        let each = |k: &&K| {
            let target = (f.get)(k).map_or_else(String::new, |p| child_pattern(dir, p));
            ((*k).clone(), covering(f, k, target))
        };
        members.iter().map(each).collect()
    };
    let picked = pick(groups, |_, size| size, moves);
    picked
        .into_iter()
        .map(|(_, (group, dir), moves)| {
            let (n, noun, dir_shown) = (moves.len(), (f.noun)(&group), show(&dir));
            let pattern = join(&dir, "*");
            let description = format!("{n} {noun} under {dir_shown} collapsed to {pattern}");
            Plan { moves, description }
        })
        .collect()
}

/// Collapses everything below one directory, the deepest with several entries below it (then
/// the one with the most): the root when `root`, any other directory otherwise.
fn below<K: Ord + Clone>(map: &BTreeMap<K, Seen>, f: &PathField<K>, root: bool) -> Vec<Plan<K>> {
    let mut groups: BTreeMap<(usize, K, String), Vec<&K>> = BTreeMap::new();
    for k in map.keys() {
        let Some(p) = (f.get)(k) else { continue };
        for dir in ancestors(p).filter(|d| (depth(d) == 0) == root) {
            let group = (depth(dir), (f.set)(k, String::new()), dir.to_string());
            groups.entry(group).or_default().push(k);
        }
    }
    let moves = |(_, _, dir): &(usize, K, String), members: &[&K]| {
        let target = below_pattern(dir, members.iter().filter_map(|k| (f.get)(k)));
        let each = |k: &&K| ((*k).clone(), covering(f, k, target.clone()));
        members.iter().map(each).collect::<Vec<_>>()
    };
    let picked = pick(groups, |g, size| (g.0, size), moves);
    let deepest = picked.first().map(|(_, (d, ..), _)| *d);
    // Groups at one depth are disjoint; deeper ones come first.
    picked
        .into_iter()
        .take_while(|(_, (d, ..), _)| Some(*d) == deepest)
        .map(|(_, (_, group, dir), moves)| {
            let target = below_pattern(&dir, moves.iter().filter_map(|(k, _)| (f.get)(k)));
            let (n, noun) = (moves.len(), (f.noun)(&group));
            let description = format!("{n} {noun} below {} collapsed to {target}", show(&dir));
            Plan { moves, description }
        })
        .collect()
}

/// Merges the argument lists of the program with the most of them into [`ANY_ARGS`].
fn merge_args(map: &BTreeMap<ExecEntry, Seen>) -> Vec<Plan<ExecEntry>> {
    let groups = group_by(map.keys(), |k| Some(k.path.clone()));
    let moves = |path: &String, members: &[&ExecEntry]| {
        let any = ExecEntry {
            path: path.clone(),
            args: any_args(),
        };
        members
            .iter()
            .map(|k| ((*k).clone(), any.clone()))
            .collect()
    };
    let picked = pick(groups, |_, size| size, moves);
    picked
        .into_iter()
        .map(|(_, path, moves)| {
            let n = moves.len();
            let description =
                format!("{n} argument lists of {path} merged into any arguments ({ANY_ARGS})");
            Plan { moves, description }
        })
        .collect()
}

/// Widens the IP addresses of one protocol and port to their /`v4` or /`v6` network (the
/// network with the most of them); with `any_port`, those of one protocol whatever their port,
/// into port 0.
fn widen_ips(
    map: &BTreeMap<NetEntry, Seen>,
    v4: u8,
    v6: u8,
    any_port: bool,
) -> Vec<Plan<NetEntry>> {
    let groups = group_by(map.keys(), |k| {
        let (ip, prefix) = cidr(k)?;
        let to = if ip.is_ipv4() { v4 } else { v6 };
        let addr = (prefix >= to).then(|| format!("{}/{to}", network(ip, to)))?;
        let port = if any_port { 0 } else { k.port };
        Some((k.family, k.protocol, port, addr))
    });
    let moves = |(_, _, port, addr): &(Family, _, u16, String), members: &[&NetEntry]| {
        let each = |k: &&NetEntry| {
            let new = NetEntry {
                addr: addr.clone(),
                port: *port,
                ..(*k).clone()
            };
            ((*k).clone(), new)
        };
        members.iter().map(each).collect()
    };
    let picked = pick(groups, |_, size| size, moves);
    picked
        .into_iter()
        .map(|(_, (_, protocol, port, addr), moves)| {
            let (n, proto, port) = (moves.len(), protocol_name(protocol), port_text(port));
            let description = format!("{n} {proto} addresses with {port} collapsed to {addr}");
            Plan { moves, description }
        })
        .collect()
}

/// Merges the ports of the IP address (or network) with the most of them into port 0, "any port".
fn merge_ports(map: &BTreeMap<NetEntry, Seen>) -> Vec<Plan<NetEntry>> {
    let ip = map.keys().filter(|k| k.family != Family::Unix);
    let groups = group_by(ip, |k| Some((k.family, k.protocol, k.addr.clone())));
    let moves = |_: &_, members: &[&NetEntry]| {
        let each = |k: &&NetEntry| {
            (
                (*k).clone(),
                NetEntry {
                    port: 0,
                    ..(*k).clone()
                },
            )
        };
        members.iter().map(each).collect()
    };
    let picked = pick(groups, |_, size| size, moves);
    picked
        .into_iter()
        .map(|(_, (_, protocol, addr), moves)| {
            let (n, proto) = (moves.len(), protocol_name(protocol));
            let description = format!("{n} ports of {proto} {addr} collapsed to port 0 (any port)");
            Plan { moves, description }
        })
        .collect()
}

/// Widens both sides of lineage entries at once, for parents and children that are all
/// distinct: each path below a top-level directory becomes `/top/**` (only the root `/**`, or
/// `**` for a relative path, when `root`); the largest resulting group merges.
fn widen_lineage(map: &BTreeMap<LineageEntry, Seen>, root: bool) -> Vec<Plan<LineageEntry>> {
    let wide = |p: &str| {
        let dir = ancestors(p).find(|d| depth(d) == usize::from(!root));
        let target = dir.map(|d| join(d, "**"));
        target
            .filter(|t| generalize::covers(t, p))
            .unwrap_or_else(|| p.to_string())
    };
    let groups = group_by(map.keys(), |k| {
        Some(LineageEntry {
            parent: wide(&k.parent),
            child: wide(&k.child),
        })
    });
    let moves = |target: &LineageEntry, members: &[&LineageEntry]| {
        members
            .iter()
            .map(|k| ((*k).clone(), target.clone()))
            .collect()
    };
    let picked = pick(groups, |_, size| size, moves);
    picked
        .into_iter()
        .map(|(_, target, moves)| {
            let (n, parent, child) = (moves.len(), &target.parent, &target.child);
            let description = format!("{n} entries collapsed to {parent} -> {child}");
            Plan { moves, description }
        })
        .collect()
}

/// The first of `strategies` that has something to widen.
fn first<K>(strategies: &[&dyn Fn() -> Vec<Plan<K>>]) -> Vec<Plan<K>> {
    let mut plans = strategies.iter().map(|s| s()).filter(|p| !p.is_empty());
    plans.next().unwrap_or_default()
}

fn exec_plans(m: &BTreeMap<ExecEntry, Seen>, root: bool) -> Vec<Plan<ExecEntry>> {
    let args = || if root { Vec::new() } else { merge_args(m) };
    first(&[&args, &|| children(m, &EXEC_PATH, root), &|| {
        below(m, &EXEC_PATH, root)
    }])
}

fn lineage_plans(m: &BTreeMap<LineageEntry, Seen>, root: bool) -> Vec<Plan<LineageEntry>> {
    first(&[
        &|| children(m, &LINEAGE_CHILD, root),
        &|| below(m, &LINEAGE_CHILD, root),
        &|| children(m, &LINEAGE_PARENT, root),
        &|| below(m, &LINEAGE_PARENT, root),
        &|| widen_lineage(m, root),
    ])
}

fn file_plans(m: &BTreeMap<FileEntry, Seen>, root: bool) -> Vec<Plan<FileEntry>> {
    first(&[&|| children(m, &FILE_PATH, root), &|| {
        below(m, &FILE_PATH, root)
    }])
}

fn net_plans(m: &BTreeMap<NetEntry, Seen>, root: bool) -> Vec<Plan<NetEntry>> {
    if root {
        first(&[
            &|| children(m, &UNIX_PATH, true),
            &|| below(m, &UNIX_PATH, true),
            &|| widen_ips(m, 8, 32, false),
            &|| widen_ips(m, 8, 32, true),
            &|| widen_ips(m, 0, 0, false),
            &|| widen_ips(m, 0, 0, true),
        ])
    } else {
        first(&[
            &|| widen_ips(m, 24, 64, false),
            &|| children(m, &UNIX_PATH, false),
            &|| below(m, &UNIX_PATH, false),
            &|| widen_ips(m, 16, 48, false),
            &|| merge_ports(m),
            &|| widen_ips(m, 16, 48, true),
        ])
    }
}

/// How far one round of widening a kind may go: the size the whole profile must shrink to,
/// and how many entries the kind must keep to stay the one to widen.
#[derive(Clone, Copy)]
struct Round {
    /// Entries of the other kinds.
    others: usize,
    max_entries: usize,
    /// The kind is widened while it has at least this many entries.
    largest_from: usize,
}

/// Widens `map` by the first strategy of `plans` that applies, group by group (best first),
/// while the profile is over the bound and the kind is still the one to widen.
fn carry_out<K: Ord>(
    map: &mut BTreeMap<K, Seen>,
    kind: EntryKind,
    plans: fn(&BTreeMap<K, Seen>, bool) -> Vec<Plan<K>>,
    root: bool,
    round: Round,
) -> Vec<Widening> {
    let mut done = Vec::new();
    for Plan { moves, description } in plans(map, root) {
        let removed = apply(map, moves);
        done.push(Widening {
            kind,
            removed,
            description,
        });
        if round.others + map.len() <= round.max_entries || map.len() < round.largest_from {
            break;
        }
    }
    done
}

impl Profile {
    fn kind_len(&self, kind: EntryKind) -> usize {
        match kind {
            EntryKind::Exec => self.execs.len(),
            EntryKind::Lineage => self.lineage.len(),
            EntryKind::File => self.files.len(),
            EntryKind::Connect => self.connects.len(),
            EntryKind::Listen => self.listens.len(),
        }
    }

    /// Widens `kind` by one strategy (a last-resort one when `root`); nothing when it has none.
    fn widen_kind(&mut self, kind: EntryKind, root: bool, max_entries: usize) -> Vec<Widening> {
        let len = self.kind_len(kind);
        // Stays first in the order of `widen_to` while it has at least as many entries as each
        // kind after it, and more than each kind before it.
        let rank = |k: EntryKind| self.kind_len(k) + usize::from(k < kind);
        let others = KINDS.into_iter().filter(|&k| k != kind);
        let round = Round {
            others: self.len() - len,
            max_entries,
            largest_from: others.map(rank).max().unwrap_or(0),
        };
        match kind {
            EntryKind::Exec => carry_out(&mut self.execs, kind, exec_plans, root, round),
            EntryKind::Lineage => carry_out(&mut self.lineage, kind, lineage_plans, root, round),
            EntryKind::File => carry_out(&mut self.files, kind, file_plans, root, round),
            EntryKind::Connect => carry_out(&mut self.connects, kind, net_plans, root, round),
            EntryKind::Listen => carry_out(&mut self.listens, kind, net_plans, root, round),
        }
    }

    /// Widens entries (see the module docs) until the profile holds at most
    /// `limits.max_entries`, or nothing more can be widened. Every entry before is covered by
    /// an entry after ([`crate::diff::DiffEntry::covers`]), and the counts add up: nothing is
    /// dropped. Deterministic: the same profile always widens the same way. Returns the steps
    /// taken, in order (none when the profile is within the bound).
    ///
    /// Each step widens one group of entries of the kind with the most entries (the first in
    /// profile order on ties). The groups one strategy offers are disjoint; they are widened
    /// one after another, best first, while that kind stays the largest, rather than
    /// recomputing every group after each step.
    pub fn widen_to(&mut self, limits: &Limits) -> Vec<Widening> {
        let mut done = Vec::new();
        'widen: while self.len() > limits.max_entries {
            let mut kinds = KINDS;
            kinds.sort_by_key(|&k| Reverse(self.kind_len(k)));
            for root in [false, true] {
                for kind in kinds {
                    let steps = self.widen_kind(kind, root, limits.max_entries);
                    if !steps.is_empty() {
                        done.extend(steps);
                        continue 'widen;
                    }
                }
            }
            break;
        }
        done
    }
}

// --- Learning state --------------------------------------------------------------------------

/// How often a widening reason says its kind was widened: `(once)`, `(3 times)`.
fn times_in(reason: &str, marker: &str) -> Option<u64> {
    let rest = &reason[reason.find(marker)? + marker.len()..];
    match &rest[..rest.find(')')?] {
        "once" => Some(1),
        n => n.strip_suffix(" times")?.parse().ok(),
    }
}

impl Learning {
    /// True when the size bound forced widening (a reason starts with [`WIDENING_REASON`]).
    /// Such a profile records events through [`Profile::record_covered`].
    pub fn widened(&self) -> bool {
        self.incomplete
            .iter()
            .any(|r| r.starts_with(WIDENING_REASON))
    }

    /// Marks the profile incomplete because the bound forced `w`. One reason per kind, which
    /// counts the widenings and names the latest, e.g. `size bound (1000 entries) forced
    /// widening of files (3 times); latest: 312 read entries under /var/cache/app collapsed to
    /// /var/cache/app/*`. The list of reasons stays short however often widening happens.
    pub fn note_widening(&mut self, limits: &Limits, w: &Widening) {
        let kind = kind_name(w.kind);
        let marker = format!(" forced widening of {kind} (");
        let own = |r: &String| r.starts_with(WIDENING_REASON) && r.contains(&marker);
        let at = self.incomplete.iter().position(own);
        let times = at.and_then(|i| times_in(&self.incomplete[i], &marker));
        let times = match times.unwrap_or(0) + 1 {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        let reason = format!(
            "{WIDENING_REASON}{} entries) forced widening of {kind} ({times}); latest: {}",
            limits.max_entries, w.description
        );
        match at {
            Some(i) => self.incomplete[i] = reason,
            None => self.incomplete.push(reason),
        }
    }
}

impl StoredProfile {
    /// Records one event (argv already redacted) and keeps the profile within `limits`: the
    /// event is counted on an existing entry when one matches exactly or, once the profile was
    /// widened, when a widened entry covers it; only when it adds an entry and the profile is
    /// over the bound (a constant-time check) are entries widened and the learning state marked
    /// incomplete with the reason ([`Learning::note_widening`]).
    pub fn record_bounded(&mut self, event: &Event, limits: &Limits) -> RecordOutcome {
        // Covering patterns are looked up only for entries without an exact match, so this
        // costs nothing on repeats; it keeps collapsed directories from growing back.
        let new = self.profile.record_with(event, true);
        if new.contains(&EntryKind::File)
            && let EventDetail::Open { path, access, .. } = &event.detail
        {
            let file = FileEntry {
                path: generalize::path(path),
                access: *access,
            };
            self.profile
                .collapse_crowded_dir(&file, limits.max_dir_children);
        }
        self.learning.changed(&new, event.ts_ns);
        let over = !new.is_empty() && self.profile.len() > limits.max_entries;
        if !over {
            return RecordOutcome {
                new,
                widenings: Vec::new(),
            };
        }
        // Widen a tenth below the bound, so that each of the next new entries does not cost a
        // widening round of its own.
        let target = Limits {
            max_entries: limits.max_entries - limits.max_entries / 10,
            ..*limits
        };
        let widenings = self.profile.widen_to(&target);
        for w in &widenings {
            self.learning.note_widening(limits, w);
        }
        RecordOutcome { new, widenings }
    }

    /// Widens the profile to `limits` now (after a merge, or when the bound was lowered) and
    /// notes each widening in the learning state.
    pub fn bound(&mut self, limits: &Limits) -> Vec<Widening> {
        let widenings = self.profile.widen_to(limits);
        for w in &widenings {
            self.learning.note_widening(limits, w);
        }
        widenings
    }
}

#[cfg(test)]
mod tests;
