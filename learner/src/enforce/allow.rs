//! A workload's allow-list: its profile compiled into what the kernel checks — program paths as
//! hashes of exact paths and directory prefixes, destinations as address prefixes with a port —
//! and the same check in userspace, so a dry run says exactly what enforcement would block.
//!
//! Profile patterns the kernel cannot match exactly are widened to a directory: a placeholder
//! (`<num>`, `<tmp>`, ...) or wildcard in the last path segment allows the directory's direct
//! children, one in an earlier segment allows the whole tree below the segments before it. The
//! kernel never blocks what the profile allows; userspace still alerts on what the kernel let
//! through. Unix-socket destinations and relative program paths are not checked in the kernel.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use learner_ebpf::{
    EXEC_DIR, EXEC_EXACT, EXEC_TREE, ExecAllowKey, NET_KEY_FIXED_BITS, Net4Key, Net6Key, path_hash,
};
use profiles::{Event, EventDetail, Family, model::Profile};

/// One allowed destination: an address prefix and a port (0: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetRule {
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
    /// Port; 0 allows any.
    pub port: u16,
}

/// A compiled allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// (kind, hash) of allowed programs: [`EXEC_EXACT`], [`EXEC_DIR`] or [`EXEC_TREE`].
    pub execs: BTreeSet<(u32, u64)>,
    /// Allowed destinations.
    pub net: BTreeSet<NetRule>,
    /// Profile entries compiled to a broader rule than they are.
    pub widened: usize,
    /// Profile entries the kernel cannot check (relative paths, unix sockets).
    pub unchecked: usize,
}

fn is_pattern(segment: &str) -> bool {
    segment.contains('*') || (segment.contains('<') && segment.contains('>'))
}

/// The kernel rule for a program path pattern, and whether it is broader than the pattern;
/// `None` for a path the kernel cannot check.
fn exec_rule(path: &str) -> Option<((u32, u64), bool)> {
    if !path.starts_with('/') {
        return None;
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let Some(first) = segments.iter().position(|s| is_pattern(s)) else {
        return Some(((EXEC_EXACT, path_hash(path.as_bytes())), false));
    };
    let mut prefix = String::from("/");
    for s in &segments[..first] {
        prefix.push_str(s);
        prefix.push('/');
    }
    let last = first + 1 == segments.len();
    let hash = path_hash(prefix.as_bytes());
    match segments[first] {
        "**" if last => Some(((EXEC_TREE, hash), false)),
        "*" if last => Some(((EXEC_DIR, hash), false)),
        _ if last => Some(((EXEC_DIR, hash), true)),
        _ => Some(((EXEC_TREE, hash), true)),
    }
}

/// Parses an entry address: `a.b.c.d`, `a.b.c.d/n`, IPv6 likewise.
fn parse_net(addr: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = match addr.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (addr, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p.parse::<u8>().ok().filter(|&n| n <= max)?,
        None => max,
    };
    Some((masked(ip, prefix), prefix))
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl AllowList {
    /// Compiles the programs and destinations `profile` allows.
    pub fn compile(profile: &Profile) -> AllowList {
        let mut list = AllowList::default();
        for e in profile.execs.keys() {
            match exec_rule(&e.path) {
                Some((rule, widened)) => {
                    list.execs.insert(rule);
                    list.widened += usize::from(widened);
                }
                None => list.unchecked += 1,
            }
        }
        for n in profile.connects.keys() {
            let parsed = match n.family {
                Family::Unix => None,
                Family::Inet | Family::Inet6 => parse_net(&n.addr),
            };
            match parsed {
                Some((addr, prefix)) => {
                    list.net.insert(NetRule {
                        addr,
                        prefix,
                        port: n.port,
                    });
                }
                None => list.unchecked += 1,
            }
        }
        list
    }

    /// Whether the kernel lets `path` run (relative paths are not checked: allowed).
    pub fn allows_exec(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return true;
        }
        let bytes = path.as_bytes();
        let mut last_dir = None;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'/' {
                let h = path_hash(&bytes[..=i]);
                if self.execs.contains(&(EXEC_TREE, h)) {
                    return true;
                }
                last_dir = Some(h);
            }
        }
        self.execs.contains(&(EXEC_EXACT, path_hash(bytes)))
            || last_dir.is_some_and(|h| self.execs.contains(&(EXEC_DIR, h)))
    }

    /// Whether the kernel lets a connect to `addr`:`port` through. IPv4-mapped IPv6
    /// destinations match IPv4 rules too.
    pub fn allows_connect(&self, addr: IpAddr, port: u16) -> bool {
        let v4 = match addr {
            IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4),
            v4 => Some(v4),
        };
        self.net.iter().any(|r| {
            (r.port == 0 || r.port == port)
                && [Some(addr), v4]
                    .into_iter()
                    .flatten()
                    .any(|a| a.is_ipv4() == r.addr.is_ipv4() && masked(a, r.prefix) == r.addr)
        })
    }

    /// What the kernel does with `event` under this list: `Some(why)` when it blocks it (in
    /// words), `None` when it lets it through or does not check its kind.
    pub fn blocks(&self, event: &Event) -> Option<String> {
        match &event.detail {
            EventDetail::Exec { filename, .. } => (!self.allows_exec(filename))
                .then(|| format!("the program {filename} is not in the workload's allow-list")),
            EventDetail::Connect { dest } if dest.family != Family::Unix => {
                let ip: IpAddr = dest.addr.parse().ok()?;
                (!self.allows_connect(ip, dest.port)).then(|| {
                    format!(
                        "the destination {}:{} is not in the workload's allow-list",
                        dest.addr, dest.port
                    )
                })
            }
            _ => None,
        }
    }

    /// Entries the kernel maps hold for this list in `cgroup_id` at `generation`.
    pub fn exec_keys(&self, cgroup_id: u64, generation: u32) -> Vec<ExecAllowKey> {
        self.execs
            .iter()
            .map(|&(kind, hash)| ExecAllowKey {
                cgroup_id,
                generation,
                kind,
                hash,
            })
            .collect()
    }

    /// IPv4 trie entries (prefix bits, key data) for `cgroup_id` at `generation`.
    pub fn net4_keys(&self, cgroup_id: u64, generation: u32) -> Vec<(u32, Net4Key)> {
        self.net
            .iter()
            .filter_map(|r| match r.addr {
                IpAddr::V4(a) => Some((
                    NET_KEY_FIXED_BITS + u32::from(r.prefix),
                    Net4Key {
                        cgroup_id,
                        generation,
                        port_be: r.port.to_be(),
                        addr: a.octets(),
                    },
                )),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// IPv6 trie entries for `cgroup_id` at `generation`; IPv4 rules also as IPv4-mapped
    /// addresses (`::ffff:a.b.c.d`), which an IPv6 socket uses to reach IPv4 hosts.
    pub fn net6_keys(&self, cgroup_id: u64, generation: u32) -> Vec<(u32, Net6Key)> {
        self.net
            .iter()
            .map(|r| {
                let (addr, prefix) = match r.addr {
                    IpAddr::V6(a) => (a.octets(), u32::from(r.prefix)),
                    IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 96 + u32::from(r.prefix)),
                };
                (
                    NET_KEY_FIXED_BITS + prefix,
                    Net6Key {
                        cgroup_id,
                        generation,
                        port_be: r.port.to_be(),
                        addr,
                    },
                )
            })
            .collect()
    }

    /// Writes (`allow`) or removes this list's entries for `cgroup_id` at `generation` in the
    /// kernel maps.
    pub fn apply(
        &self,
        probes: &mut crate::kernel::Probes,
        cgroup_id: u64,
        generation: u32,
        allow: bool,
    ) -> Result<(), crate::kernel::load::LoadError> {
        probes.exec_allow(&self.exec_keys(cgroup_id, generation), allow)?;
        probes.net4_allow(&self.net4_keys(cgroup_id, generation), allow)?;
        probes.net6_allow(&self.net6_keys(cgroup_id, generation), allow)
    }

    /// Kernel map entries this list takes: programs and destinations.
    pub fn kernel_entries(&self) -> usize {
        self.execs.len() + self.net.len() + self.net.iter().filter(|r| r.addr.is_ipv4()).count()
    }
}

#[cfg(test)]
mod tests {
    use profiles::model::{ExecEntry, NetEntry, Seen};

    use super::*;

    fn profile(execs: &[&str], connects: &[(Family, &str, u16)]) -> Profile {
        let mut p = Profile::default();
        let seen = Seen {
            count: 1,
            first_ns: 1,
            last_ns: 1,
        };
        for e in execs {
            p.execs.insert(
                ExecEntry {
                    path: e.to_string(),
                    args: None,
                },
                seen,
            );
        }
        for (family, addr, port) in connects {
            p.connects.insert(
                NetEntry {
                    family: *family,
                    protocol: if *family == Family::Unix {
                        profiles::Protocol::Stream
                    } else {
                        profiles::Protocol::Tcp
                    },
                    addr: addr.to_string(),
                    port: *port,
                },
                seen,
            );
        }
        p
    }

    #[test]
    fn exact_paths_directories_and_trees() {
        let list = AllowList::compile(&profile(
            &[
                "/usr/bin/python3",
                "/opt/app/bin/*",
                "/srv/plugins/**",
                "/var/cache/<hex>/run",
                "/tmp/job-<num>",
                "relative/tool",
            ],
            &[],
        ));
        assert_eq!((list.widened, list.unchecked), (2, 1));
        assert!(list.allows_exec("/usr/bin/python3"));
        assert!(!list.allows_exec("/usr/bin/python"));
        assert!(!list.allows_exec("/usr/bin/python3x"));
        assert!(!list.allows_exec("/usr/bin"));
        assert!(list.allows_exec("/opt/app/bin/worker"));
        assert!(
            !list.allows_exec("/opt/app/bin/sub/worker"),
            "children only"
        );
        assert!(list.allows_exec("/srv/plugins/a/b/c"));
        assert!(!list.allows_exec("/srv/pluginsx/a"));
        // A placeholder in the middle widens to the tree before it.
        assert!(list.allows_exec("/var/cache/0a1b/run"));
        assert!(list.allows_exec("/var/cache/anything/else"));
        // In the last segment, to the directory's children.
        assert!(list.allows_exec("/tmp/job-17"));
        assert!(
            list.allows_exec("/tmp/xmrig"),
            "widened: the kernel cannot tell"
        );
        assert!(!list.allows_exec("/tmp/x/xmrig"));
        assert!(
            list.allows_exec("relative/other"),
            "relative paths pass the kernel"
        );
        assert!(!AllowList::default().allows_exec("/bin/true"));
    }

    #[test]
    fn destinations_by_prefix_and_port() {
        let list = AllowList::compile(&profile(
            &[],
            &[
                (Family::Inet, "127.0.0.1", 5432),
                (Family::Inet, "10.1.0.0/16", 0),
                (Family::Inet6, "fd00::/8", 443),
                (Family::Unix, "/run/app.sock", 0),
                (Family::Inet, "not-an-address", 80),
            ],
        ));
        assert_eq!(list.unchecked, 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(list.allows_connect(ip("127.0.0.1"), 5432));
        assert!(!list.allows_connect(ip("127.0.0.1"), 5433));
        assert!(!list.allows_connect(ip("127.0.0.2"), 5432));
        assert!(list.allows_connect(ip("10.1.200.3"), 9));
        assert!(!list.allows_connect(ip("10.2.0.1"), 9));
        assert!(list.allows_connect(ip("fd12::1"), 443));
        assert!(!list.allows_connect(ip("fd12::1"), 80));
        assert!(
            list.allows_connect(ip("::ffff:127.0.0.1"), 5432),
            "v4-mapped"
        );
        // The kernel keys: three rules, the two IPv4 ones also as mapped IPv6.
        assert_eq!(list.net4_keys(7, 1).len(), 2);
        let v6 = list.net6_keys(7, 1);
        assert_eq!(v6.len(), 3);
        let mapped = v6
            .iter()
            .find(|(_, k)| k.addr[10..12] == [0xff, 0xff] && k.addr[12] == 127)
            .unwrap();
        assert_eq!(mapped.0, NET_KEY_FIXED_BITS + 128);
        assert_eq!({ mapped.1.port_be }, 5432u16.to_be());
    }
}
