//! `baseliner doctor`: checks everything the agent needs and says how to fix what is missing.

use std::path::Path;

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_map_supported, is_program_supported},
};

use crate::{
    attribution::cgroup,
    kernel::{
        LoadOptions, Probes,
        caps::{self, Cap},
        load,
        mounts::{self, MountOutcome},
    },
};

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Satisfied.
    Pass,
    /// Not satisfied; the agent cannot run.
    Fail,
    /// Worth knowing, not required today.
    Info,
}

/// One line of the doctor's report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found, and for a failure how to fix it.
    pub detail: String,
}

fn check(name: &str, ok: bool, pass: String, fail: String) -> Check {
    Check {
        name: name.to_string(),
        status: if ok { Status::Pass } else { Status::Fail },
        detail: if ok { pass } else { fail },
    }
}

/// Runs every check, in order. Mounts tracefs and bpffs when they are missing and it can.
pub fn run() -> Vec<Check> {
    let mut out = Vec::new();
    let release = caps::kernel_release();
    let version = caps::parse_release(&release);
    out.push(check(
        "kernel version",
        version.is_some_and(|v| v >= (5, 8)),
        format!("{release} (5.8 or later needed for the BPF ring buffer)"),
        format!(
            "{release}: Baseliner needs Linux 5.8 or later (BPF ring buffer); upgrade the kernel"
        ),
    ));
    let btf = Path::new("/sys/kernel/btf/vmlinux");
    out.push(check(
        "kernel BTF",
        btf.exists(),
        format!("{} present", btf.display()),
        format!(
            "{} missing: use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            btf.display()
        ),
    ));
    if btf.exists() {
        out.push(match crate::kernel::layout::running_kernel() {
            Ok(l) => Check {
                name: "direct task reads".into(),
                status: Status::Pass,
                detail: format!(
                    "task_struct.comm at {}, cgroups at {}: the probes read the task name and \
                     cgroup id without helper calls",
                    l.task_comm, l.task_cgroups
                ),
            },
            Err(e) => Check {
                name: "direct task reads".into(),
                status: Status::Info,
                detail: format!("{e}; the probes use helper calls instead (slower)"),
            },
        });
    }

    let eff = caps::effective();
    let admin = caps::has(eff, Cap::SysAdmin);
    for cap in [Cap::Bpf, Cap::Perfmon] {
        let have = caps::has(eff, cap);
        out.push(check(
            cap.name(),
            have || admin,
            if have {
                "present".into()
            } else {
                "absent, but CAP_SYS_ADMIN covers it".into()
            },
            format!(
                "missing: run as root or grant it (`setcap {}+ep $(command -v baseliner)`)",
                cap.name().to_lowercase()
            ),
        ));
    }
    let old = version.is_some_and(|v| v < (5, 11));
    let sys_resource = caps::has(eff, Cap::SysResource);
    out.push(Check {
        name: Cap::SysResource.name().into(),
        status: if !old || sys_resource {
            Status::Pass
        } else {
            Status::Fail
        },
        detail: match (old, sys_resource) {
            (false, true) => {
                "present (not needed on 5.11+: BPF memory is charged to the memory cgroup)".into()
            }
            (false, false) => {
                "absent, not needed on 5.11+: BPF memory is charged to the memory cgroup".into()
            }
            (true, true) => "present (needed before 5.11 to raise RLIMIT_MEMLOCK)".into(),
            (true, false) => {
                "missing: kernels before 5.11 need it to raise RLIMIT_MEMLOCK for BPF maps".into()
            }
        },
    });

    let lockdown = caps::lockdown();
    out.push(Check {
        name: "lockdown".into(),
        status: if lockdown.as_deref() == Some("confidentiality") { Status::Info } else { Status::Pass },
        detail: match lockdown.as_deref() {
            None => "lockdown LSM not active".into(),
            Some("confidentiality") => "confidentiality: BPF may not read kernel memory; the program load checks below decide".into(),
            Some(mode) => format!("{mode}: BPF tracing allowed"),
        },
    });

    for (name, outcome, path) in [
        ("tracefs", mounts::ensure_tracefs(), mounts::TRACEFS),
        ("bpffs", mounts::ensure_bpffs(), mounts::BPFFS),
    ] {
        out.push(match outcome {
            MountOutcome::Present => check(name, true, format!("mounted at {path}"), String::new()),
            MountOutcome::Mounted => check(
                name,
                true,
                format!("was missing; mounted at {path}"),
                String::new(),
            ),
            MountOutcome::Failed(why) => check(name, false, String::new(), why),
        });
    }

    match cgroup::cgroup2_mount() {
        Ok(p) => out.push(check(
            "cgroup2",
            true,
            format!("mounted at {}", p.display()),
            String::new(),
        )),
        Err(e) => out.push(check("cgroup2", false, String::new(), e.to_string())),
    }

    for (name, ty) in [
        ("map type ring buffer", MapType::RingBuf),
        ("map type LRU hash", MapType::LruHash),
        ("map type LPM trie", MapType::LpmTrie),
        ("map type per-CPU array", MapType::PerCpuArray),
    ] {
        let r = is_map_supported(ty);
        out.push(check(
            name,
            matches!(r, Ok(true)),
            "supported".into(),
            match r {
                Ok(_) => "not supported by this kernel".into(),
                Err(e) => format!("probe failed: {e}"),
            },
        ));
    }
    for (name, ty, needed) in [
        ("program type tracepoint", ProgramType::TracePoint, true),
        (
            "program type raw tracepoint",
            ProgramType::RawTracePoint,
            true,
        ),
        (
            "program type cgroup_sock_addr",
            ProgramType::CgroupSockAddr,
            true,
        ),
    ] {
        let r = is_program_supported(ty);
        let ok = matches!(r, Ok(true));
        out.push(Check {
            name: name.into(),
            status: if ok {
                Status::Pass
            } else if needed {
                Status::Fail
            } else {
                Status::Info
            },
            detail: match r {
                Ok(true) => "loads".into(),
                Ok(false) => "not supported by this kernel".into(),
                Err(e) => format!("probe failed: {e}"),
            },
        });
    }

    // The decisive check: load and attach every program of the agent (filter on, nothing
    // monitored, so nothing is captured), then detach.
    // The enforcement programs attach to the cgroup2 root; nothing is enforced until a cgroup
    // is in the enforcement map.
    let root = crate::attribution::cgroup::cgroup2_mount().ok();
    let opts = LoadOptions {
        filter: true,
        ring_bytes: 64 * 1024,
        enforce_root: root.clone(),
        ..LoadOptions::default()
    };
    out.push(match Probes::load(&opts, &[]) {
        Ok(p) => {
            drop(p);
            let enforce = match &root {
                Some(r) => format!(
                    " and both enforcement programs (cgroup/connect4, connect6) attach to {}",
                    r.display()
                ),
                None => " (no cgroup2 mount: the enforcement programs were not tried)".into(),
            };
            check(
                "agent programs",
                root.is_some(),
                format!(
                    "all {} tracepoint programs load and attach{enforce}",
                    load::TRACEPOINTS.len()
                ),
                format!("the tracepoint programs load{enforce}"),
            )
        }
        Err(e) => check("agent programs", false, String::new(), e.to_string()),
    });
    out
}

/// True when no check failed.
pub fn all_pass(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}
