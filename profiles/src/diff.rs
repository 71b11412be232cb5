//! What changed between two profiles of a workload: entries that appeared and entries that
//! disappeared. Counts and times are ignored; only the presence of an entry matters.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde::{Deserialize, Serialize};

use crate::{
    event::{Family, Protocol},
    model::{EntryKind, ExecEntry, FileEntry, LineageEntry, NetEntry, Profile, Seen},
};

/// One profile entry of any kind. Serialised with a `kind` tag beside the entry's fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiffEntry {
    /// An executed program ([`Profile::execs`]).
    Exec(ExecEntry),
    /// A parent → child program start ([`Profile::lineage`]).
    Lineage(LineageEntry),
    /// A file access ([`Profile::files`]).
    File(FileEntry),
    /// An outgoing connection destination ([`Profile::connects`]).
    Connect(NetEntry),
    /// A local address served on ([`Profile::listens`]).
    Listen(NetEntry),
}

impl DiffEntry {
    /// Which part of a profile the entry belongs to.
    pub fn kind(&self) -> EntryKind {
        match self {
            DiffEntry::Exec(_) => EntryKind::Exec,
            DiffEntry::Lineage(_) => EntryKind::Lineage,
            DiffEntry::File(_) => EntryKind::File,
            DiffEntry::Connect(_) => EntryKind::Connect,
            DiffEntry::Listen(_) => EntryKind::Listen,
        }
    }
}

/// Entries only in the new profile (`added`) and only in the old one (`removed`), each sorted
/// by kind, then entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDiff {
    /// Present in the new profile only.
    pub added: Vec<DiffEntry>,
    /// Present in the old profile only.
    pub removed: Vec<DiffEntry>,
}

impl ProfileDiff {
    /// True when both profiles have the same entries.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Every entry of a profile with its record, in [`DiffEntry`] order.
pub(crate) fn entries(p: &Profile) -> impl Iterator<Item = (DiffEntry, &Seen)> {
    fn each<K: Clone>(
        m: &BTreeMap<K, Seen>,
        wrap: fn(K) -> DiffEntry,
    ) -> impl Iterator<Item = (DiffEntry, &Seen)> {
        m.iter().map(move |(k, s)| (wrap(k.clone()), s))
    }
    each(&p.execs, DiffEntry::Exec)
        .chain(each(&p.lineage, DiffEntry::Lineage))
        .chain(each(&p.files, DiffEntry::File))
        .chain(each(&p.connects, DiffEntry::Connect))
        .chain(each(&p.listens, DiffEntry::Listen))
}

/// The entries of `old` and `new` that the other lacks.
pub fn diff(old: &Profile, new: &Profile) -> ProfileDiff {
    let keys = |p| entries(p).map(|(e, _)| e).collect::<BTreeSet<_>>();
    let (old, new) = (keys(old), keys(new));
    ProfileDiff {
        added: new.difference(&old).cloned().collect(),
        removed: old.difference(&new).cloned().collect(),
    }
}

/// Quotes a word shell-style unless it consists of plain path and pattern characters.
fn quote(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.=:,+@%*<>[]".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// The lower-case protocol name used in JSON.
pub(crate) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Raw => "raw",
        Protocol::Stream => "stream",
        Protocol::Dgram => "dgram",
        Protocol::Seqpacket => "seqpacket",
        Protocol::Unknown => "unknown",
    }
}

/// Renders a network entry as `proto addr:port`, `proto [addr]:port` or `proto unix:path`.
struct NetRender<'a>(&'a NetEntry);

impl fmt::Display for NetRender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let proto = protocol_name(n.protocol);
        match n.family {
            Family::Inet => write!(f, "{proto} {}:{}", n.addr, n.port),
            Family::Inet6 => write!(f, "{proto} [{}]:{}", n.addr, n.port),
            Family::Unix => write!(f, "{proto} unix:{}", quote(&n.addr)),
        }
    }
}

impl fmt::Display for DiffEntry {
    /// One readable line, e.g. `exec /usr/bin/curl -s <num>`, `file /etc/shadow (read)`,
    /// `connect tcp 127.0.0.1:5432`, `lineage /bin/sh -> /usr/bin/curl`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffEntry::Exec(e) => {
                write!(f, "exec {}", quote(&e.path))?;
                match &e.args {
                    Some(args) => args.iter().try_for_each(|a| write!(f, " {}", quote(a))),
                    None => f.write_str(" (arguments unknown)"),
                }
            }
            DiffEntry::Lineage(l) => {
                write!(f, "lineage {} -> {}", quote(&l.parent), quote(&l.child))
            }
            DiffEntry::File(e) => write!(f, "file {} ({})", quote(&e.path), e.access),
            DiffEntry::Connect(n) => write!(f, "connect {}", NetRender(n)),
            DiffEntry::Listen(n) => write!(f, "listen {}", NetRender(n)),
        }
    }
}

impl fmt::Display for ProfileDiff {
    /// One line per entry: `+ ` for added, `- ` for removed; lines are separated by newlines
    /// (no trailing newline; empty when there is no difference).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let added = self.added.iter().map(|e| ('+', e));
        let removed = self.removed.iter().map(|e| ('-', e));
        for (i, (sign, e)) in added.chain(removed).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{sign} {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::Access;

    /// Adds `e` to the matching map of `p`.
    pub(crate) fn insert(p: &mut Profile, e: DiffEntry, s: Seen) {
        match e {
            DiffEntry::Exec(k) => p.execs.insert(k, s),
            DiffEntry::Lineage(k) => p.lineage.insert(k, s),
            DiffEntry::File(k) => p.files.insert(k, s),
            DiffEntry::Connect(k) => p.connects.insert(k, s),
            DiffEntry::Listen(k) => p.listens.insert(k, s),
        };
    }

    fn net(family: Family, protocol: Protocol, addr: &str, port: u16) -> NetEntry {
        NetEntry {
            family,
            protocol,
            addr: addr.into(),
            port,
        }
    }

    fn exec(path: &str, args: Option<&[&str]>) -> DiffEntry {
        let args = args.map(|a| a.iter().map(|s| s.to_string()).collect());
        DiffEntry::Exec(ExecEntry {
            path: path.into(),
            args,
        })
    }

    fn file(path: &str) -> DiffEntry {
        DiffEntry::File(FileEntry {
            path: path.into(),
            access: Access::Read,
        })
    }

    fn lineage(parent: &str, child: &str) -> DiffEntry {
        DiffEntry::Lineage(LineageEntry {
            parent: parent.into(),
            child: child.into(),
        })
    }

    fn profile(entries: &[DiffEntry]) -> Profile {
        let mut p = Profile::default();
        entries
            .iter()
            .for_each(|e| insert(&mut p, e.clone(), Seen::at(1)));
        p
    }

    /// One entry of every kind.
    fn base() -> Vec<DiffEntry> {
        vec![
            exec("/usr/sbin/nginx", Some(&["-g", "daemon off;"])),
            lineage("/usr/lib/systemd/systemd", "/usr/sbin/nginx"),
            file("/etc/nginx/nginx.conf"),
            DiffEntry::Connect(net(Family::Inet, Protocol::Tcp, "10.0.0.5", 5432)),
            DiffEntry::Listen(net(Family::Inet, Protocol::Tcp, "0.0.0.0", 80)),
        ]
    }

    #[test]
    fn identical_profiles_have_no_diff() {
        let a = profile(&base());
        let mut b = profile(&base());
        b.files.values_mut().for_each(|s| s.observe(99)); // counts and times do not matter
        let d = diff(&a, &b);
        assert!(d.is_empty(), "{d}");
        assert_eq!(d.to_string(), "");
        assert!(diff(&Profile::default(), &Profile::default()).is_empty());
    }

    #[test]
    fn added_and_removed_per_kind() {
        let old = profile(&base());
        let added = [
            exec("/usr/bin/curl", Some(&["-s", "<num>"])),
            lineage("/bin/sh", "/usr/bin/curl"),
            file("/etc/shadow"),
            DiffEntry::Connect(net(Family::Inet, Protocol::Tcp, "127.0.0.1", 5432)),
            DiffEntry::Listen(net(Family::Inet6, Protocol::Udp, "::", 53)),
            DiffEntry::Listen(net(Family::Unix, Protocol::Stream, "/run/app.sock", 0)),
        ];
        let mut new = profile(&base()[..3]);
        added
            .iter()
            .for_each(|e| insert(&mut new, e.clone(), Seen::at(5)));
        new.files.remove(&FileEntry {
            path: "/etc/nginx/nginx.conf".into(),
            access: Access::Read,
        });

        let d = diff(&old, &new);
        assert_eq!(d.added, added);
        assert_eq!(
            d.removed,
            [base()[2].clone(), base()[3].clone(), base()[4].clone()]
        );
        assert_eq!(
            d.to_string(),
            "+ exec /usr/bin/curl -s <num>\n\
             + lineage /bin/sh -> /usr/bin/curl\n\
             + file /etc/shadow (read)\n\
             + connect tcp 127.0.0.1:5432\n\
             + listen udp [::]:53\n\
             + listen stream unix:/run/app.sock\n\
             - file /etc/nginx/nginx.conf (read)\n\
             - connect tcp 10.0.0.5:5432\n\
             - listen tcp 0.0.0.0:80"
        );
    }

    #[test]
    fn diff_is_antisymmetric() {
        let a = profile(&base());
        let b = profile(&[&base()[1..], &[file("/tmp/x")]].concat());
        let (ab, ba) = (diff(&a, &b), diff(&b, &a));
        assert_eq!(ab.added, ba.removed);
        assert_eq!(ab.removed, ba.added);
        assert_eq!((ab.added.len(), ab.removed.len()), (1, 1));
    }

    #[test]
    fn rendering_and_serialisation() {
        let nginx = "exec /usr/sbin/nginx";
        let args = Some(&["-g", "daemon off;", ""][..]);
        assert_eq!(
            exec("/usr/sbin/nginx", args).to_string(),
            format!("{nginx} -g 'daemon off;' ''")
        );
        assert_eq!(exec("/usr/sbin/nginx", Some(&[])).to_string(), nginx);
        let unknown = exec("/usr/sbin/nginx", None).to_string();
        assert_eq!(unknown, format!("{nginx} (arguments unknown)"));
        let c = DiffEntry::Connect(net(Family::Inet6, Protocol::Tcp, "::1", 443));
        assert_eq!(c.to_string(), "connect tcp [::1]:443");
        let v = serde_json::to_value(&c).unwrap();
        let fields =
            r#"{"kind":"connect","family":"inet6","protocol":"tcp","addr":"::1","port":443}"#;
        assert_eq!(
            v,
            serde_json::from_str::<serde_json::Value>(fields).unwrap()
        );
        assert_eq!(serde_json::from_value::<DiffEntry>(v).unwrap(), c);
        let d = ProfileDiff {
            added: vec![file("/a")],
            removed: vec![],
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"added":[{"kind":"file","path":"/a","access":"read"}],"removed":[]}"#
        );
    }
}
