//! tracefs and bpffs: find them, and mount them when they are missing.

use std::{ffi::CString, fs, io, path::Path};

/// Where tracefs is expected (tracepoints are looked up under `events/`).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where bpffs is expected (pinned maps and programs).
pub const BPFFS: &str = "/sys/fs/bpf";

/// True when `/proc/mounts` text lists a filesystem of type `fstype` at `target`.
pub fn is_mounted_in(proc_mounts: &str, fstype: &str, target: &str) -> bool {
    proc_mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, t, ty) = (f.next(), f.next(), f.next());
        t == Some(target) && ty == Some(fstype)
    })
}

/// True when tracefs is usable: mounted at [`TRACEFS`] or reachable through debugfs.
pub fn tracefs_ready() -> bool {
    Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
}

/// True when bpffs is mounted at [`BPFFS`].
pub fn bpffs_ready() -> bool {
    fs::read_to_string("/proc/mounts")
        .map(|m| is_mounted_in(&m, "bpf", BPFFS))
        .unwrap_or(false)
}

/// What [`ensure`] did for one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// It was already there.
    Present,
    /// The agent mounted it.
    Mounted,
    /// It is missing and could not be mounted; the text says why and how to fix it.
    Failed(String),
}

fn mount(fstype: &str, source: &str, target: &str) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let (src, tgt, ty) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ensure_one(ready: fn() -> bool, fstype: &str, source: &str, target: &str) -> MountOutcome {
    if ready() {
        return MountOutcome::Present;
    }
    match mount(fstype, source, target) {
        Ok(()) if ready() => MountOutcome::Mounted,
        Ok(()) => {
            MountOutcome::Failed(format!("mounted {fstype} at {target} but it is not usable"))
        }
        Err(e) => MountOutcome::Failed(format!(
            "{fstype} is not mounted at {target} and mounting it failed: {e} \
             (needs CAP_SYS_ADMIN; run `mount -t {fstype} {source} {target}` as root, \
             or mount the host's {target} into the agent's container)"
        )),
    }
}

/// Mounts tracefs when tracepoints cannot be found.
pub fn ensure_tracefs() -> MountOutcome {
    ensure_one(tracefs_ready, "tracefs", "nodev", TRACEFS)
}

/// Mounts bpffs when it is missing.
pub fn ensure_bpffs() -> MountOutcome {
    ensure_one(bpffs_ready, "bpf", "bpf", BPFFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_by_type_and_target() {
        let m = "sysfs /sys sysfs rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n\
                 bpf /sys/fs/bpf bpf rw 0 0\n";
        assert!(is_mounted_in(m, "tracefs", "/sys/kernel/tracing"));
        assert!(is_mounted_in(m, "bpf", "/sys/fs/bpf"));
        assert!(!is_mounted_in(m, "bpf", "/sys/fs/bpf2"));
        assert!(!is_mounted_in(m, "tracefs", "/sys/fs/bpf"));
    }
}
