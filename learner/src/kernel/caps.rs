//! Capabilities, kernel version and lockdown state of this process and host.

use std::fs;

/// Linux capability numbers the agent cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// CAP_SYS_ADMIN (21): mounting tracefs / bpffs; BPF on kernels before 5.8.
    SysAdmin = 21,
    /// CAP_SYS_RESOURCE (24): raising RLIMIT_MEMLOCK on kernels before 5.11.
    SysResource = 24,
    /// CAP_PERFMON (38): attaching tracepoints, reading user memory from BPF.
    Perfmon = 38,
    /// CAP_BPF (39): creating maps and loading programs.
    Bpf = 39,
}

impl Cap {
    /// The capability's name as in capabilities(7).
    pub fn name(self) -> &'static str {
        match self {
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::SysResource => "CAP_SYS_RESOURCE",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

/// Parses the `CapEff:` line of a /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The effective capability set of this process (0 when unreadable).
pub fn effective() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_cap_eff(&s))
        .unwrap_or(0)
}

/// True when `cap` is in the effective set `eff`.
pub fn has(eff: u64, cap: Cap) -> bool {
    eff & (1u64 << cap as u32) != 0
}

/// Kernel release as (major, minor), parsed from e.g. "6.18.44-fc-v657".
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's release string.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The active lockdown mode ("none", "integrity", "confidentiality"), or `None` when the
/// lockdown LSM is absent.
pub fn lockdown() -> Option<String> {
    fs::read_to_string("/sys/kernel/security/lockdown")
        .ok()
        .and_then(|s| parse_lockdown(&s))
}

/// Picks the bracketed mode out of "none [integrity] confidentiality".
pub fn parse_lockdown(s: &str) -> Option<String> {
    let start = s.find('[')?;
    let end = s[start..].find(']')? + start;
    Some(s[start + 1..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_of_this_machine_shape() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let eff = parse_cap_eff(status).unwrap();
        assert!(has(eff, Cap::Bpf));
        assert!(has(eff, Cap::Perfmon));
        assert!(has(eff, Cap::SysAdmin));
        assert!(
            !has(eff, Cap::SysResource),
            "bit 24 is clear in 0x1fffeffffff"
        );
    }

    #[test]
    fn releases_and_lockdown() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(parse_lockdown(""), None);
    }
}
