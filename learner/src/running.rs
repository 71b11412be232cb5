//! Processes that were already running when the agent started. They are read from /proc once, at
//! start-up, and reported as `exec` events marked `existing`, so a workload is learned without
//! waiting for its next exec.
//!
//! What /proc gives is what a live exec would have told, with three differences: the program
//! path is the resolved executable (`/proc/PID/exe`), not the path as passed to execve; `argv` is
//! the command line as it reads now (a process may have rewritten it); the time is the process's
//! start (fork) time, in clock ticks.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fs, io,
    path::Path,
};

use learner_ebpf::{ARG_CHUNK, ARGV_LIMIT, EventKind, MAX_ARGS};
use profiles::{Event, EventDetail};

use crate::{
    attribution::cgroup,
    decode::{Decoded, Header},
    enrich::Enricher,
};

/// `PF_FORKNOEXEC`: the process forked and has not exec'd since; it runs its parent's image.
const PF_FORKNOEXEC: u32 = 0x0000_0040;
/// `PF_KTHREAD`: a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;
/// What the kernel appends to the link of an executable that was deleted or replaced.
const DELETED: &str = " (deleted)";

/// The fields of `/proc/PID/stat` the scan uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Task command name (field 2, between the parentheses).
    pub comm: String,
    /// Parent pid (field 4).
    pub ppid: u32,
    /// `PF_*` flags (field 9).
    pub flags: u32,
    /// Start time in clock ticks since boot (field 22).
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name may hold spaces and parentheses, so it runs from
/// the first `(` to the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields from 3 (state) on; field N is at index N - 3.
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        flags: rest.get(6)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

/// Real uid and gid from `/proc/PID/status` (the first number of its `Uid:` and `Gid:` lines).
pub fn parse_status_ids(text: &str) -> Option<(u32, u32)> {
    let first = |key: &str| -> Option<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((first("Uid:")?, first("Gid:")?))
}

/// Arguments as an exec event carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Argv {
    /// Arguments, `argv[0]` first.
    pub argv: Vec<String>,
    /// Cut by the same limits as the kernel's exec capture.
    pub truncated: bool,
    /// The command line no longer shows the exec's arguments.
    pub unknown: bool,
}

/// Splits `/proc/PID/cmdline` (NUL-terminated arguments) and keeps what the kernel's exec capture
/// would keep. When the text does not end in a NUL the process wrote its own title over the
/// arguments (setproctitle), so they are reported unknown.
pub fn parse_cmdline(bytes: &[u8]) -> Argv {
    let Some(body) = bytes.strip_suffix(b"\0") else {
        return Argv {
            unknown: !bytes.is_empty(),
            ..Argv::default()
        };
    };
    let (argv, truncated) = limit_argv(body.split(|b| *b == 0));
    Argv {
        argv,
        truncated,
        unknown: false,
    }
}

/// The kernel's limits on exec arguments (learner-ebpf `exec.rs`): at most [`MAX_ARGS`]
/// arguments; no new argument once [`ARGV_LIMIT`] bytes are used; each argument read into
/// [`ARG_CHUNK`] bytes with its NUL, so cut to `ARG_CHUNK - 1` bytes. An argument that fills its
/// chunk is flagged as cut even when it fits exactly, as the kernel cannot tell.
pub fn limit_argv<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut used = 0;
    let mut truncated = false;
    for arg in args {
        if out.len() == MAX_ARGS || used >= ARGV_LIMIT {
            truncated = true;
            break;
        }
        let read = (arg.len() + 1).min(ARG_CHUNK);
        truncated |= read >= ARG_CHUNK;
        out.push(String::from_utf8_lossy(&arg[..read - 1]).into_owned());
        used += read;
    }
    (out, truncated)
}

/// The executable path from a `/proc/PID/exe` link, without the `" (deleted)"` the kernel adds
/// when the file was replaced since (an upgraded package).
pub fn strip_deleted(link: &str) -> &str {
    link.strip_suffix(DELETED).unwrap_or(link)
}

/// What /proc says about one running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningProcess {
    /// Process id.
    pub pid: u32,
    /// Parent pid (now; a process whose parent exited has been re-parented).
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Task command name.
    pub comm: String,
    /// Executable, `" (deleted)"` removed.
    pub exe: String,
    /// Command line.
    pub argv: Argv,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
    /// Forked from its parent and not exec'd since.
    pub forked_no_exec: bool,
    /// cgroup2 id.
    pub cgroup_id: u64,
}

fn read_text(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name)).ok()
}

/// Reads process `pid` under `proc_root`. `cgroup_id` maps the process's cgroup2 path (as in
/// `/proc/PID/cgroup`) to its id, or to `None` when the process is not wanted. `None` for kernel
/// threads, zombies, unwanted processes, and processes that exit while being read.
pub fn read_process(
    proc_root: &Path,
    pid: u32,
    cgroup_id: impl FnOnce(&str) -> Option<u64>,
) -> Option<RunningProcess> {
    let dir = proc_root.join(pid.to_string());
    let cgroup_id = cgroup_id(&cgroup::parse_proc_cgroup(&read_text(&dir, "cgroup")?)?)?;
    // Kernel threads and zombies have no executable.
    let exe = fs::read_link(dir.join("exe")).ok()?;
    let stat = parse_stat(&read_text(&dir, "stat")?)?;
    if stat.flags & PF_KTHREAD != 0 {
        return None;
    }
    let (uid, gid) = parse_status_ids(&read_text(&dir, "status")?)?;
    let argv = parse_cmdline(&fs::read(dir.join("cmdline")).ok()?);
    Some(RunningProcess {
        pid,
        ppid: stat.ppid,
        uid,
        gid,
        comm: stat.comm,
        exe: strip_deleted(&exe.to_string_lossy()).to_string(),
        argv,
        start_ticks: stat.start_ticks,
        forked_no_exec: stat.flags & PF_FORKNOEXEC != 0,
        cgroup_id,
    })
}

/// Every process under `proc_root` that `cgroup_id` wants (see [`read_process`]), except this
/// one, oldest first (a parent before its children).
pub fn scan(
    proc_root: &Path,
    mut cgroup_id: impl FnMut(&str) -> Option<u64>,
) -> io::Result<Vec<RunningProcess>> {
    let me = std::process::id();
    let mut found: Vec<RunningProcess> = fs::read_dir(proc_root)?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| read_process(proc_root, pid, &mut cgroup_id))
        .collect();
    found.sort_by_key(|p| (p.start_ticks, p.pid));
    Ok(found)
}

/// Processes to report as exec events: those started before `before_ticks` (later ones are the
/// live capture's), less the forked copies of a parent in the same cgroup (a server's workers):
/// they never exec'd, and their parent's event already reports the program.
pub fn to_report(found: &[RunningProcess], before_ticks: u64) -> Vec<&RunningProcess> {
    let by_pid: HashMap<u32, &RunningProcess> = found.iter().map(|p| (p.pid, p)).collect();
    found
        .iter()
        .filter(|p| p.start_ticks < before_ticks)
        .filter(|p| {
            !(p.forked_no_exec
                && by_pid
                    .get(&p.ppid)
                    .is_some_and(|q| q.exe == p.exe && q.cgroup_id == p.cgroup_id))
        })
        .collect()
}

/// Clock ticks per second of /proc times (`USER_HZ`).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

/// CLOCK_BOOTTIME now, in nanoseconds.
pub fn boot_ns_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl RunningProcess {
    /// The process as the decoded record of its exec, at its start time.
    fn decoded(&self, hz: u64) -> Decoded {
        let boot_ns = (self.start_ticks as u128 * 1_000_000_000 / hz as u128) as u64;
        Decoded {
            header: Header {
                kind: EventKind::Exec,
                boot_ns,
                cgroup_id: self.cgroup_id,
                pid: self.pid,
                tid: self.pid,
                ppid: self.ppid,
                uid: self.uid,
                gid: self.gid,
                comm: self.comm.clone(),
                blocked: false,
            },
            detail: EventDetail::Exec {
                filename: self.exe.clone(),
                argv: self.argv.argv.clone(),
                argv_truncated: self.argv.truncated,
                argv_unknown: self.argv.unknown,
            },
            dirfd: None,
            fd: None,
        }
    }
}

/// The exec events of the processes running under `proc_root` in the `watched` cgroups (all when
/// `None`) that started before `before_boot_ns` (CLOCK_BOOTTIME), oldest first, marked
/// `existing`. They go through `enricher` like live records: the same attribution and lineage,
/// and its process table learns them as if their exec had been seen.
pub fn existing_events(
    enricher: &mut Enricher,
    proc_root: &Path,
    watched: Option<&BTreeSet<u64>>,
    before_boot_ns: u64,
) -> io::Result<Vec<Event>> {
    let mount = enricher.attributor().resolver().root().to_path_buf();
    let mut ids: HashMap<String, Option<u64>> = HashMap::new();
    let found = scan(proc_root, |path| {
        *ids.entry(path.to_string()).or_insert_with(|| {
            let id = cgroup::cgroup_id(&mount.join(path.trim_start_matches('/'))).ok()?;
            watched.is_none_or(|w| w.contains(&id)).then_some(id)
        })
    })?;
    let hz = ticks_per_second();
    let before_ticks = (before_boot_ns as u128 * hz as u128 / 1_000_000_000) as u64;
    // A start time in ticks is rounded down: a process in the tick of `before_boot_ns` counts
    // as earlier, so it may be reported twice (here and live) but is never missed.
    let report = to_report(&found, before_ticks + 1);
    let events = report
        .into_iter()
        .map(|p| {
            let mut e = enricher.enrich(p.decoded(hz));
            if let Some(parent) = &mut e.parent_exe {
                *parent = strip_deleted(parent).to_string();
            }
            e.existing = true;
            e
        })
        .collect();
    Ok(events)
}

/// Number of distinct workloads among `events`.
pub fn workload_count(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| e.workload.id.as_str())
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_comm() {
        // Fields 3..=22 after the comm; flags 0x40 (forked, no exec), start time 9876.
        let text = "4242 (my (odd) comm) S 17 4242 4242 0 -1 64 10 0 0 0 1 2 0 0 20 0 1 0 9876 \
                    1000 10 18446744073709551615\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                comm: "my (odd) comm".into(),
                ppid: 17,
                flags: 64,
                start_ticks: 9876,
            })
        );
        let empty = "7 () R 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert_eq!(
            parse_stat(empty).map(|s| (s.comm, s.start_ticks)),
            Some(("".into(), 5))
        );
        assert_eq!(parse_stat("1 (init) S 0 1"), None, "cut short");
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(") 1 ("), None);
    }

    #[test]
    fn stat_of_this_process() {
        let text = fs::read_to_string("/proc/self/stat").unwrap();
        let s = parse_stat(&text).unwrap();
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
        assert!(s.start_ticks > 0);
        assert_eq!(s.flags & PF_KTHREAD, 0);
    }

    #[test]
    fn status_gives_real_ids() {
        let text = "Name:\tsudo\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t99\n\
                    Uid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t0\nGroups:\t4 27\n";
        assert_eq!(parse_status_ids(text), Some((1000, 100)));
        assert_eq!(parse_status_ids("Uid:\t1\t1\t1\t1\n"), None, "no Gid line");
        assert_eq!(parse_status_ids(""), None);
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let me = fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(parse_status_ids(&me), Some((uid, gid)));
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cmdline_splits_on_nul() {
        let a = parse_cmdline(b"/usr/bin/sleep\x0030\x00");
        assert_eq!(a.argv, strings(&["/usr/bin/sleep", "30"]));
        assert!(!a.truncated && !a.unknown);
        // Empty arguments are arguments.
        let a = parse_cmdline(b"sh\x00-c\x00\x00x y\x00\x00");
        assert_eq!(a.argv, strings(&["sh", "-c", "", "x y", ""]));
        // No arguments at all (exec'd with an empty argv, or the memory is gone).
        assert_eq!(parse_cmdline(b""), Argv::default());
        // A title written over the arguments: the exec's arguments are unknown.
        let a = parse_cmdline(b"nginx: master process /usr/sbin/nginx");
        assert!(a.unknown && a.argv.is_empty());
    }

    #[test]
    fn cmdline_is_cut_like_the_kernel_cuts_it() {
        // Too many arguments: 32 are kept.
        let many: Vec<u8> = (0..40)
            .flat_map(|i| format!("a{i}\0").into_bytes())
            .collect();
        let a = parse_cmdline(&many);
        assert_eq!(a.argv.len(), MAX_ARGS);
        assert_eq!(a.argv[31], "a31");
        assert!(a.truncated);
        // Exactly 32 arguments are not cut.
        let (v, cut) = limit_argv((0..MAX_ARGS).map(|_| &b"x"[..]));
        assert_eq!((v.len(), cut), (MAX_ARGS, false));
        // A long argument keeps ARG_CHUNK - 1 bytes.
        let long = vec![b'z'; 600];
        let (v, cut) = limit_argv([&b"prog"[..], &long[..]]);
        assert_eq!(v[1].len(), ARG_CHUNK - 1);
        assert!(cut);
        let (_, cut) = limit_argv([&vec![b'z'; ARG_CHUNK - 2][..]]);
        assert!(!cut, "fits with its NUL");
        // Past ARGV_LIMIT bytes no further argument is read.
        let chunk = vec![b'y'; 300];
        let (v, cut) = limit_argv([&chunk[..], &chunk, &chunk, &chunk, &chunk, &b"last"[..]]);
        // 4 arguments of 256 bytes (cut) reach 1024.
        assert_eq!(v.len(), 4);
        assert!(cut);
        let (v, cut) = limit_argv([&vec![b'y'; 200][..]; 5]);
        assert_eq!(
            v.len(),
            5,
            "1005 bytes: the fifth still starts below the limit"
        );
        assert!(!cut);
        // Invalid UTF-8 is replaced, as in live events.
        assert_eq!(limit_argv([&b"\xff"[..]]).0, strings(&["\u{fffd}"]));
    }

    #[test]
    fn deleted_executables_keep_their_path() {
        assert_eq!(
            strip_deleted("/usr/sbin/nginx (deleted)"),
            "/usr/sbin/nginx"
        );
        assert_eq!(strip_deleted("/usr/sbin/nginx"), "/usr/sbin/nginx");
    }

    fn process(pid: u32, ppid: u32, exe: &str, forked: bool, cgroup_id: u64) -> RunningProcess {
        RunningProcess {
            pid,
            ppid,
            uid: 0,
            gid: 0,
            comm: "x".into(),
            exe: exe.into(),
            argv: Argv::default(),
            start_ticks: pid as u64,
            forked_no_exec: forked,
            cgroup_id,
        }
    }

    #[test]
    fn forked_workers_and_late_processes_are_not_reported() {
        let found = vec![
            process(10, 1, "/usr/sbin/nginx", false, 5),
            process(11, 10, "/usr/sbin/nginx", true, 5), // a worker
            process(12, 10, "/usr/sbin/nginx", true, 6), // moved to another cgroup
            process(13, 10, "/bin/sh", false, 5),        // exec'd
            process(14, 1, "/usr/bin/daemon", true, 5),  // parent gone, re-parented
            process(15, 13, "/bin/sh", true, 5),         // subshell
            process(30, 1, "/usr/bin/late", false, 5),
        ];
        let pids: Vec<u32> = to_report(&found, 30).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 12, 13, 14]);
    }

    #[test]
    fn this_process_is_skipped_and_its_child_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let child_pid = child.id();
        // Wait until the child has exec'd sleep and the new image's arguments are in place
        // (exe switches before the argument pages are set up).
        for _ in 0..200 {
            if fs::read_link(format!("/proc/{child_pid}/exe"))
                .is_ok_and(|p| p.file_name().is_some_and(|n| n == "sleep"))
                && fs::read(format!("/proc/{child_pid}/cmdline")).is_ok_and(|c| c.ends_with(b"5\0"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let my_cgroup = cgroup::cgroup_of_pid(std::process::id()).unwrap();
        let found = scan(Path::new("/proc"), |path| (path == my_cgroup).then_some(7)).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().all(|p| p.pid != std::process::id()));
        let p = found
            .iter()
            .find(|p| p.pid == child_pid)
            .unwrap_or_else(|| panic!("child {child_pid} not found: {found:#?}"));
        assert_eq!(p.ppid, std::process::id());
        assert_eq!(p.argv.argv, strings(&["sleep", "5"]));
        assert_eq!(p.comm, "sleep");
        assert_eq!(p.cgroup_id, 7);
        assert!(p.exe.ends_with("/sleep"), "{}", p.exe);
        assert!(!p.forked_no_exec);
        let started = p.start_ticks * 1_000_000_000 / ticks_per_second();
        assert!(started <= boot_ns_now(), "starts in the past");
    }
}
