//! The enforcement maps and programs: attaching the connect checks, writing allow-lists and
//! reading the enforcement counters.

use std::path::Path;

use aya::{
    maps::{
        HashMap, MapData, MapError, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{CgroupAttachMode, CgroupSockAddr},
};
use learner_ebpf::{EnforceEntry, EnforceStats, ExecAllowKey, Net4Key, Net6Key};

use super::{
    diagnose::{self, HostFacts},
    load::{LoadError, Probes, map_err},
};

/// The connect programs, attached to the cgroup2 root.
pub const CONNECT_PROGRAMS: [&str; 2] = ["enforce_connect4", "enforce_connect6"];

/// The program that holds the exec check.
pub const EXEC_PROGRAM: &str = "sched_process_exec";

/// Where the enforcement links are pinned in bpffs, one file per program: a pinned link keeps
/// its program, and the maps it uses, attached after the agent exits, so blocking does not
/// lapse while the agent restarts. The next agent replaces the pins with its own once its
/// allow-lists are loaded ([`Probes::pin_enforcement`]). `rm -r` the directory to end blocking
/// with no agent running.
pub const PIN_DIR: &str = "/sys/fs/bpf/baseliner";

/// Removes `key` from a map; an absent key is fine.
fn forget(r: Result<(), MapError>, what: &str) -> Result<(), LoadError> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(map_err(what)(e)),
    }
}

impl Probes {
    /// Loads the connect checks and attaches them to the cgroup2 hierarchy at `root`, so they
    /// see every cgroup's connects. It is a BPF link, which the kernel runs beside any other
    /// program attached there (links take no attach flags).
    pub(super) fn attach_enforcement(
        &mut self,
        root: &Path,
        facts: &HostFacts,
    ) -> Result<(), LoadError> {
        let explain = |what: &str, e: &(dyn std::error::Error + 'static)| {
            LoadError::Kernel(diagnose::explain(what, e, facts))
        };
        let cgroup = std::fs::File::open(root)
            .map_err(|e| explain(&format!("opening the cgroup2 root {}", root.display()), &e))?;
        for name in CONNECT_PROGRAMS {
            let prog: &mut CgroupSockAddr = self
                .ebpf_mut()
                .program_mut(name)
                .ok_or_else(|| LoadError::Missing(format!("program {name}")))?
                .try_into()
                .map_err(|e| explain(&format!("program {name}"), &e))?;
            prog.load()
                .map_err(|e| explain(&format!("loading program {name} (cgroup/connect)"), &e))?;
            let link = prog
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(|e| explain(&format!("attaching {name} to {}", root.display()), &e))?;
            let link = prog
                .take_link(link)
                .map_err(|e| explain(&format!("program {name}"), &e))?;
            let fd = aya::programs::links::FdLink::try_from(link)
                .map_err(|e| explain(&format!("the link of {name}"), &e))?;
            self.enforcement_links.push((name, fd));
        }
        Ok(())
    }

    /// Pins the enforcement links under [`PIN_DIR`] (mounting bpffs when needed), replacing the
    /// pins of a previous agent, whose programs then detach. Call it once this agent's
    /// allow-lists are in its maps, so blocking never lapses in between. Returns how many
    /// links were pinned.
    pub fn pin_enforcement(&mut self) -> Result<usize, LoadError> {
        if self.enforcement_links.is_empty() {
            return Ok(0);
        }
        if let super::mounts::MountOutcome::Failed(why) = super::mounts::ensure_bpffs() {
            return Err(LoadError::Mount(why));
        }
        let dir = Path::new(PIN_DIR);
        let io = |what: String, e: std::io::Error| LoadError::Kernel(format!("{what}: {e}"));
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating {PIN_DIR}"), e))?;
        let mut n = 0;
        for (name, link) in std::mem::take(&mut self.enforcement_links) {
            let path = dir.join(name);
            // bpffs refuses names with a dot.
            let fresh = dir.join(format!("{name}-new"));
            let _ = std::fs::remove_file(&fresh);
            let pinned = link.pin(&fresh).map_err(|e| {
                LoadError::Kernel(format!("pinning {name} at {}: {e}", fresh.display()))
            })?;
            // One rename: the old pin (and with it a previous agent's program) goes in the
            // same step as this one arrives.
            std::fs::rename(&fresh, &path)
                .map_err(|e| io(format!("replacing the pin {}", path.display()), e))?;
            self.pinned.push(pinned);
            n += 1;
        }
        Ok(n)
    }

    /// Puts `cgroup_id` under enforcement (or changes what is enforced, or the generation).
    pub fn enforce(&mut self, cgroup_id: u64, entry: EnforceEntry) -> Result<(), LoadError> {
        let mut map: HashMap<&mut MapData, u64, EnforceEntry> = self.typed_map("ENFORCE")?;
        map.insert(cgroup_id, entry, 0)
            .map_err(map_err("writing map ENFORCE"))
    }

    /// Ends enforcement for `cgroup_id` at once.
    pub fn unenforce(&mut self, cgroup_id: u64) -> Result<(), LoadError> {
        let mut map: HashMap<&mut MapData, u64, EnforceEntry> = self.typed_map("ENFORCE")?;
        forget(map.remove(&cgroup_id), "removing from map ENFORCE")
    }

    /// Adds (`allow`) or removes allowed programs.
    pub fn exec_allow(&mut self, keys: &[ExecAllowKey], allow: bool) -> Result<(), LoadError> {
        let mut map: HashMap<&mut MapData, ExecAllowKey, u8> = self.typed_map("EXEC_ALLOW")?;
        for k in keys {
            if allow {
                map.insert(k, 1, 0)
                    .map_err(map_err("writing map EXEC_ALLOW"))?;
            } else {
                forget(map.remove(k), "removing from map EXEC_ALLOW")?;
            }
        }
        Ok(())
    }

    /// Adds (`allow`) or removes allowed IPv4 destinations: (prefix length, key data).
    pub fn net4_allow(&mut self, keys: &[(u32, Net4Key)], allow: bool) -> Result<(), LoadError> {
        self.lpm_allow("NET4_ALLOW", keys, allow)
    }

    /// Adds (`allow`) or removes allowed IPv6 destinations: (prefix length, key data).
    pub fn net6_allow(&mut self, keys: &[(u32, Net6Key)], allow: bool) -> Result<(), LoadError> {
        self.lpm_allow("NET6_ALLOW", keys, allow)
    }

    fn lpm_allow<K: aya::Pod>(
        &mut self,
        name: &str,
        keys: &[(u32, K)],
        allow: bool,
    ) -> Result<(), LoadError> {
        let mut map: LpmTrie<&mut MapData, K, u8> = self.typed_map(name)?;
        for (bits, data) in keys {
            let key = Key::new(*bits, *data);
            if allow {
                map.insert(&key, 1, 0)
                    .map_err(map_err(&format!("writing map {name}")))?;
            } else {
                forget(map.remove(&key), &format!("removing from map {name}"))?;
            }
        }
        Ok(())
    }

    /// Removes this agent's pins (when nothing is enforced, nothing needs to outlive it); its
    /// programs detach when it exits.
    pub fn unpin_enforcement(&mut self) -> Result<(), LoadError> {
        let names = [EXEC_PROGRAM].into_iter().chain(CONNECT_PROGRAMS);
        for name in names {
            let path = Path::new(PIN_DIR).join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LoadError::Kernel(format!(
                        "removing the pin {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        self.pinned.clear();
        Ok(())
    }

    /// The enforcement counters, summed over CPUs.
    pub fn enforce_stats(&mut self) -> Result<EnforceStats, LoadError> {
        let arr: PerCpuArray<&mut MapData, EnforceStats> = self.typed_map("ENFORCE_STATS")?;
        let per_cpu = arr
            .get(&0, 0)
            .map_err(map_err("reading map ENFORCE_STATS"))?;
        let mut sum = EnforceStats::default();
        for s in per_cpu.iter() {
            sum.add(s);
        }
        Ok(sum)
    }
}
