//! Turning decoded records into full [`profiles::Event`]s: wall-clock time, the workload, the
//! process's executable and parent, and absolute paths.

use std::{
    collections::HashMap,
    fs,
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use profiles::{Event, EventDetail, SCHEMA_VERSION};

use crate::{attribution::Attributor, decode::Decoded, sockets};

/// `AT_FDCWD`: the path is relative to the working directory.
const AT_FDCWD: i32 = -100;
/// How long what the process table learned from /proc is trusted (pids are reused).
const PROC_TTL: Duration = Duration::from_secs(30);
/// Processes remembered at most; the table is cleared past this.
const MAX_PROCESSES: usize = 65536;

/// Converts CLOCK_BOOTTIME nanoseconds (the kernel's timestamps) to Unix-epoch nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    /// Measures the offset between the real-time and boot-time clocks now.
    pub fn now() -> Self {
        BootClock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
        }
    }

    /// Unix-epoch nanoseconds of a boot-time timestamp.
    pub fn to_unix_ns(self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.offset_ns).max(0) as u64
    }
}

#[derive(Debug, Clone)]
struct ProcInfo {
    exe: Option<String>,
    ppid: u32,
    /// From an exec event (authoritative until the next exec) or read from /proc (expires).
    from_exec: bool,
    at: Instant,
}

/// What the agent knows about live processes: executable and parent, from exec events and /proc.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
    proc_root: PathBuf,
}

/// Reads the parent pid from a /proc/PID/stat text (the field after the parenthesised comm).
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

impl ProcessTable {
    /// A table reading /proc.
    pub fn new() -> Self {
        Self::with_proc_root("/proc")
    }

    /// A table reading another procfs root (tests).
    pub fn with_proc_root(root: impl Into<PathBuf>) -> Self {
        ProcessTable {
            procs: HashMap::new(),
            proc_root: root.into(),
        }
    }

    fn read_proc(&self, pid: u32) -> ProcInfo {
        let dir = self.proc_root.join(pid.to_string());
        let exe = fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let ppid = fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_stat_ppid(&s))
            .unwrap_or(0);
        ProcInfo {
            exe,
            ppid,
            from_exec: false,
            at: Instant::now(),
        }
    }

    fn make_room(&mut self) {
        if self.procs.len() >= MAX_PROCESSES {
            self.procs.clear();
        }
    }

    /// Records a successful exec: the process now runs `exe`.
    pub fn exec(&mut self, pid: u32, ppid: u32, exe: &str) {
        self.make_room();
        let ppid = if ppid != 0 { ppid } else { self.lookup(pid).1 };
        self.procs.insert(
            pid,
            ProcInfo {
                exe: Some(exe.to_string()),
                ppid,
                from_exec: true,
                at: Instant::now(),
            },
        );
    }

    /// Executable and parent of `pid` (parent 0 when unknown).
    pub fn lookup(&mut self, pid: u32) -> (Option<String>, u32) {
        if let Some(p) = self.procs.get(&pid)
            && (p.from_exec || p.at.elapsed() < PROC_TTL)
        {
            return (p.exe.clone(), p.ppid);
        }
        let info = self.read_proc(pid);
        let out = (info.exe.clone(), info.ppid);
        if info.exe.is_some() {
            self.make_room();
            self.procs.insert(pid, info);
        }
        out
    }

    /// Directory a relative path of `pid` is relative to: its cwd, or the directory open as `dirfd`.
    pub fn base_dir(&self, pid: u32, dirfd: i32) -> Option<PathBuf> {
        let dir = self.proc_root.join(pid.to_string());
        let link = if dirfd == AT_FDCWD {
            dir.join("cwd")
        } else {
            dir.join("fd").join(dirfd.to_string())
        };
        fs::read_link(link).ok()
    }
}

/// Joins a relative path to its base and removes `.` and `..` lexically (no symlinks followed).
pub fn absolutize(base: &Path, rel: &str) -> String {
    let mut out = PathBuf::from("/");
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// Builds full events from decoded records.
pub struct Enricher {
    clock: BootClock,
    attributor: Attributor,
    processes: ProcessTable,
}

impl Enricher {
    /// An enricher attributing cgroups under the cgroup2 mount `cgroup_root`.
    pub fn new(cgroup_root: PathBuf) -> Self {
        Enricher {
            clock: BootClock::now(),
            attributor: Attributor::new(cgroup_root),
            processes: ProcessTable::new(),
        }
    }

    /// The attributor (to resolve `--cgroup` paths with the same cache).
    pub fn attributor(&mut self) -> &mut Attributor {
        &mut self.attributor
    }

    /// Completes a decoded record.
    pub fn enrich(&mut self, d: Decoded) -> Event {
        let Decoded {
            header: h,
            mut detail,
            dirfd,
            fd,
        } = d;
        let pid = h.pid;
        let make_abs = |procs: &ProcessTable, p: &mut String| {
            if !p.starts_with('/')
                && !p.is_empty()
                && let Some(base) = procs.base_dir(pid, dirfd.unwrap_or(AT_FDCWD))
            {
                *p = absolutize(&base, p);
            }
        };
        let (exe, ppid) = match &mut detail {
            EventDetail::Exec { filename, .. } => {
                make_abs(&self.processes, filename);
                self.processes.exec(pid, h.ppid, filename);
                (Some(filename.clone()), self.processes.lookup(pid).1)
            }
            EventDetail::Open { path, .. } => {
                make_abs(&self.processes, path);
                self.processes.lookup(pid)
            }
            EventDetail::Listen { local } => {
                // Bound before the agent started, or to port 0: ask /proc for the real address.
                if local
                    .as_ref()
                    .is_none_or(|l| l.port == 0 && l.family != profiles::Family::Unix)
                    && let Some(found) = fd
                        .and_then(|fd| sockets::local_endpoint(&self.processes.proc_root, pid, fd))
                {
                    *local = Some(found);
                }
                self.processes.lookup(pid)
            }
            EventDetail::Connect { dest: ep } | EventDetail::Bind { local: ep }
                if ep.protocol == profiles::Protocol::Unknown
                    && ep.family != profiles::Family::Unix =>
            {
                // The socket predates the agent: its protocol is in /proc while it is open.
                if let Some(found) =
                    fd.and_then(|fd| sockets::local_endpoint(&self.processes.proc_root, pid, fd))
                {
                    ep.protocol = found.protocol;
                }
                self.processes.lookup(pid)
            }
            _ => self.processes.lookup(pid),
        };
        let ppid = if h.ppid != 0 { h.ppid } else { ppid };
        // Lineage: who started this program.
        let parent_exe = match detail {
            EventDetail::Exec { .. } if ppid != 0 => self.processes.lookup(ppid).0,
            _ => None,
        };
        Event {
            schema: SCHEMA_VERSION,
            ts_ns: self.clock.to_unix_ns(h.boot_ns),
            workload: self.attributor.workload(h.cgroup_id),
            pid,
            tid: h.tid,
            ppid,
            uid: h.uid,
            gid: h.gid,
            comm: h.comm,
            exe,
            parent_exe,
            existing: false,
            blocked: h.blocked,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolutize_resolves_dots() {
        assert_eq!(
            absolutize(Path::new("/home/u"), "notes.txt"),
            "/home/u/notes.txt"
        );
        assert_eq!(absolutize(Path::new("/home/u"), "./a/../b"), "/home/u/b");
        assert_eq!(
            absolutize(Path::new("/"), "../../etc/shadow"),
            "/etc/shadow"
        );
    }

    #[test]
    fn stat_ppid_survives_odd_comm() {
        assert_eq!(parse_stat_ppid("1234 (a) b) c) S 77 1234 1234 0"), Some(77));
        assert_eq!(parse_stat_ppid("1 (systemd) S 0 1 1"), Some(0));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn process_table_reads_this_process_and_prefers_exec() {
        let mut t = ProcessTable::new();
        let me = std::process::id();
        let (exe, ppid) = t.lookup(me);
        assert_eq!(
            exe.as_deref(),
            std::env::current_exe()
                .ok()
                .as_deref()
                .and_then(|p| p.to_str())
        );
        assert_eq!(ppid, std::os::unix::process::parent_id());
        t.exec(me, 1, "/usr/bin/other");
        assert_eq!(t.lookup(me), (Some("/usr/bin/other".into()), 1));
        // Relative paths resolve against this process's cwd.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(t.base_dir(me, AT_FDCWD), Some(cwd));
    }

    #[test]
    fn boot_clock_is_close_to_now() {
        let c = BootClock::now();
        let boot = clock_ns(libc::CLOCK_BOOTTIME) as u64;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let got = c.to_unix_ns(boot);
        assert!(got.abs_diff(unix) < 1_000_000_000, "{got} vs {unix}");
    }
}
