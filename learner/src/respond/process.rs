//! Process trees: a process and its descendants inside one workload, found in /proc, and
//! signalled as one.

use std::{collections::BTreeSet, path::Path};

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent(proc_root: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    crate::running::parse_stat(&stat).map(|s| s.ppid)
}

/// The cgroup2 path of `pid`.
fn cgroup(proc_root: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    crate::attribution::cgroup::parse_proc_cgroup(&text)
}

/// `pid` and its descendants that live in the cgroup `workload` (or below it).
pub fn tree(proc_root: &Path, pid: u32, workload: &str) -> BTreeSet<u32> {
    let inside = |p: u32| {
        cgroup(proc_root, p).is_some_and(|c| {
            c == workload || c.strip_prefix(workload).is_some_and(|r| r.starts_with('/'))
        })
    };
    let all: Vec<(u32, u32)> = std::fs::read_dir(proc_root)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, parent(proc_root, p)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = BTreeSet::new();
    if !inside(pid) {
        return found;
    }
    found.insert(pid);
    // Breadth-first over the parent links.
    loop {
        let before = found.len();
        for (p, pp) in &all {
            if found.contains(pp) && inside(*p) {
                found.insert(*p);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// Freezes (SIGSTOP) `pid`'s tree inside `workload` and, with `kill`, kills it (SIGKILL).
/// Never signals pid 1, the agent or its ancestors. Returns how many processes were signalled.
pub fn signal_tree(
    proc_root: &Path,
    pid: u32,
    workload: &str,
    kill: bool,
) -> Result<usize, String> {
    let me = std::process::id();
    let mut spared = BTreeSet::from([0, 1, me]);
    let mut p = me;
    while let Some(pp) = parent(proc_root, p).filter(|&pp| pp > 1) {
        spared.insert(pp);
        p = pp;
    }
    if spared.contains(&pid) {
        return Err("skipped: the agent, its ancestors and pid 1 are never acted on".into());
    }
    let tree: Vec<u32> = tree(proc_root, pid, workload)
        .into_iter()
        .filter(|p| !spared.contains(p))
        .collect();
    if tree.is_empty() {
        return Err("skipped: the process is gone".into());
    }
    // Stop first, so no member forks or reaps while the tree is being killed.
    for p in &tree {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(*p as i32, libc::SIGSTOP) };
    }
    if kill {
        for p in &tree {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(*p as i32, libc::SIGKILL) };
        }
    }
    Ok(tree.len())
}
