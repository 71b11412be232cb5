//! Turns kernel loading failures into messages that name the cause and the fix.

use std::{error::Error as StdError, io, path::Path};

use super::{
    caps::{self, Cap},
    mounts,
};

/// Finds the first OS error code in an error's source chain.
pub fn os_error(err: &(dyn StdError + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(code) = io.raw_os_error()
        {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

/// Facts about the host used to explain a failure (gathered once, testable without root).
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Effective capabilities.
    pub cap_eff: u64,
    /// (major, minor) kernel version.
    pub kernel: Option<(u32, u32)>,
    /// Lockdown mode, when the lockdown LSM is active.
    pub lockdown: Option<String>,
    /// Kernel BTF present at /sys/kernel/btf/vmlinux.
    pub btf: bool,
    /// tracefs usable.
    pub tracefs: bool,
}

impl HostFacts {
    /// Reads the facts of this host and process.
    pub fn current() -> Self {
        HostFacts {
            cap_eff: caps::effective(),
            kernel: caps::parse_release(&caps::kernel_release()),
            lockdown: caps::lockdown(),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            tracefs: mounts::tracefs_ready(),
        }
    }

    /// Capabilities missing for loading and attaching, by name.
    pub fn missing_caps(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        let admin = caps::has(self.cap_eff, Cap::SysAdmin);
        for cap in [Cap::Bpf, Cap::Perfmon] {
            if !caps::has(self.cap_eff, cap) && !admin {
                missing.push(cap.name());
            }
        }
        if self.kernel.is_some_and(|k| k < (5, 11)) && !caps::has(self.cap_eff, Cap::SysResource) {
            missing.push(Cap::SysResource.name());
        }
        missing
    }
}

/// Explains a failure of `what` (e.g. "loading program sys_enter_openat") with the likely cause.
pub fn explain(what: &str, err: &(dyn StdError + 'static), facts: &HostFacts) -> String {
    let code = os_error(err);
    let mut msg = format!("{what} failed: {err}");
    let detail = err.source().map(|s| s.to_string()).unwrap_or_default();
    if !detail.is_empty() && !msg.contains(&detail) {
        msg.push_str(&format!(" ({detail})"));
    }
    let cause = match code {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            let missing = facts.missing_caps();
            if !missing.is_empty() {
                format!(
                    "the process lacks {}; run as root or grant them (e.g. `setcap cap_bpf,cap_perfmon+ep baseliner`)",
                    missing.join(", ")
                )
            } else if facts.lockdown.as_deref() == Some("confidentiality") {
                "kernel lockdown is in confidentiality mode, which forbids reading kernel and user memory from BPF; boot with lockdown=integrity or none".to_string()
            } else if facts.kernel.is_some_and(|k| k < (5, 11)) {
                "on kernels before 5.11 BPF memory counts against RLIMIT_MEMLOCK; grant CAP_SYS_RESOURCE or raise the limit".to_string()
            } else {
                "permission denied although capabilities look sufficient; check seccomp, a container runtime's BPF restrictions, or kernel.unprivileged_bpf_disabled".to_string()
            }
        }
        Some(libc::ENOENT) if !facts.tracefs => format!(
            "tracefs is not mounted, so tracepoints cannot be found; run `mount -t tracefs nodev {}`",
            mounts::TRACEFS
        ),
        Some(libc::ENOENT) => "the kernel does not have this tracepoint (too old, or the syscall tracepoints are disabled: CONFIG_FTRACE_SYSCALLS)".to_string(),
        Some(libc::EINVAL) | Some(libc::E2BIG) | Some(ENOTSUPP) => {
            "the kernel rejected the program or map type; it may be too old (the agent needs Linux 5.8 or later for the BPF ring buffer)".to_string()
        }
        _ if !facts.btf => "the kernel has no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF); install a kernel built with BTF".to_string(),
        _ => String::new(),
    };
    if !cause.is_empty() {
        msg.push_str(": ");
        msg.push_str(&cause);
    }
    msg
}

/// Kernel-internal "operation not supported" (524) returned by some BPF commands; not in libc.
const ENOTSUPP: i32 = 524;

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cap_eff: u64) -> HostFacts {
        HostFacts {
            cap_eff,
            kernel: Some((6, 18)),
            lockdown: None,
            btf: true,
            tracefs: true,
        }
    }

    #[test]
    fn eperm_names_the_missing_capabilities() {
        let err = io::Error::from_raw_os_error(libc::EPERM);
        let msg = explain("creating map EVENTS", &err, &facts(0));
        assert!(
            msg.contains("CAP_BPF") && msg.contains("CAP_PERFMON"),
            "{msg}"
        );
        assert!(
            !msg.contains("CAP_SYS_RESOURCE"),
            "not needed on 6.18: {msg}"
        );
    }

    #[test]
    fn eperm_on_old_kernel_names_sys_resource() {
        let err = io::Error::from_raw_os_error(libc::EPERM);
        let mut f = facts(0);
        f.kernel = Some((5, 4));
        assert!(explain("x", &err, &f).contains("CAP_SYS_RESOURCE"));
    }

    #[test]
    fn eperm_with_caps_under_lockdown_names_lockdown() {
        let err = io::Error::from_raw_os_error(libc::EPERM);
        let mut f = facts(u64::MAX);
        f.lockdown = Some("confidentiality".into());
        assert!(explain("x", &err, &f).contains("lockdown"));
    }

    #[test]
    fn enoent_without_tracefs_says_mount_it() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        let mut f = facts(u64::MAX);
        f.tracefs = false;
        assert!(explain("attaching", &err, &f).contains("mount -t tracefs"));
    }

    #[test]
    fn einval_names_unsupported_type() {
        let err = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(
            explain("loading", &err, &facts(u64::MAX)).contains("rejected the program or map type")
        );
    }

    #[test]
    fn finds_codes_deep_in_the_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(os_error(&e), Some(libc::EACCES));
    }
}
