//! The enforcement canary: proof that blocking works, instead of assuming it. A process in its
//! own cgroup in enforce mode (allowed: only the agent's own program and one loopback port)
//! connects to another loopback port, where a listener waits, and then execs `/bin/true`. The
//! kernel must refuse the connect with EPERM and kill the exec with SIGKILL; anything else is a
//! failed canary.

use std::{
    collections::BTreeSet,
    io::Read,
    net::TcpListener,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use api::CanaryReport;
use learner_ebpf::{ENFORCE_CONNECT, ENFORCE_EXEC, EXEC_EXACT, EnforceEntry, path_hash};
use profiles::{Event, EventDetail, Workload};
use scorer::alert::{Alert, Reason};

use super::allow::{AllowList, NetRule};
use crate::{kernel::Probes, recorder::now_ns};

/// The canary's cgroup, under the cgroup2 root.
pub const CANARY_CGROUP: &str = "baseliner-canary";
/// The generation the canary's allow-list uses (workloads count up from 1).
const CANARY_GENERATION: u32 = u32::MAX;
/// The program the canary execs, which its allow-list does not hold.
const FORBIDDEN: &str = "/bin/true";
/// What the canary process prints when its connect was refused with EPERM.
const REFUSED: &str = "connect: refused (EPERM)";

/// Runs in the canary process (`baseliner __canary PORT`): connect, report, exec.
pub fn probe(port: u16) -> ! {
    let verdict = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => REFUSED.to_string(),
        Err(e) => format!("connect: failed otherwise ({e})"),
        Ok(_) => "connect: allowed".to_string(),
    };
    println!("{verdict}");
    let err = Command::new(FORBIDDEN).exec();
    println!("exec: failed ({err})");
    std::process::exit(3);
}

/// Judges a canary run from its exit status and output.
pub fn judge(status: ExitStatus, output: &str, at_ns: u64) -> CanaryReport {
    let exec_killed = status.signal() == Some(libc::SIGKILL);
    let connect_refused = output.lines().any(|l| l == REFUSED);
    let mut problems = Vec::new();
    if !connect_refused {
        let line = output.lines().next().unwrap_or("no output");
        problems.push(format!(
            "a connect outside the allow-list was not refused ({line})"
        ));
    }
    if !exec_killed {
        problems.push(format!(
            "an exec outside the allow-list was not killed (the canary ended with {status})"
        ));
    }
    CanaryReport {
        at_ns,
        ok: problems.is_empty(),
        exec_killed,
        connect_refused,
        detail: if problems.is_empty() {
            "the kernel killed the exec and refused the connect".into()
        } else {
            problems.join("; ")
        },
    }
}

/// The rule name of a failed canary's alert.
pub const CANARY: &str = "enforcement-canary";

/// The critical alert about a failed canary run.
pub fn alert(report: &CanaryReport) -> Alert {
    let cgroup = format!("/{CANARY_CGROUP}");
    let event = Event {
        schema: profiles::SCHEMA_VERSION,
        ts_ns: report.at_ns,
        workload: Workload {
            id: cgroup.clone(),
            cgroup_id: 0,
            cgroup,
            runtime: None,
            container_id: None,
            pod_uid: None,
            unit: None,
            k8s: None,
        },
        pid: std::process::id(),
        tid: std::process::id(),
        ppid: 0,
        uid: 0,
        gid: 0,
        comm: "baseliner".into(),
        exe: None,
        parent_exe: None,
        existing: false,
        blocked: false,
        detail: EventDetail::Exec {
            filename: FORBIDDEN.into(),
            argv: vec![FORBIDDEN.into()],
            argv_truncated: false,
            argv_unknown: false,
        },
    };
    let text = format!(
        "enforcement canary failed: {}; blocking may not be in force",
        report.detail
    );
    Alert::new(
        &event,
        "enforcement canary",
        vec![Reason::new(CANARY, 1.0, text, None)],
    )
}

/// Runs the canary once: sets up its cgroup and allow-list, runs the probe, and removes both.
pub fn run(probes: &mut Probes, cgroup_root: &Path) -> Result<CanaryReport> {
    let cg = cgroup_root.join(CANARY_CGROUP);
    match std::fs::create_dir(&cg) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", cg.display())),
    }
    let result = run_in(probes, &cg);
    let _ = std::fs::remove_dir(&cg);
    result
}

fn run_in(probes: &mut Probes, cg: &Path) -> Result<CanaryReport> {
    let cgroup_id = crate::attribution::cgroup::cgroup_id(cg)
        .with_context(|| format!("reading the id of {}", cg.display()))?;
    let exe: PathBuf = std::env::current_exe().context("finding the agent's program")?;
    let allowed = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let target = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let port = target.local_addr()?.port();
    let list = AllowList {
        execs: BTreeSet::from([(EXEC_EXACT, path_hash(exe.as_os_str().as_encoded_bytes()))]),
        net: BTreeSet::from([NetRule {
            addr: "127.0.0.1".parse()?,
            prefix: 32,
            port: allowed.local_addr()?.port(),
        }]),
        ..AllowList::default()
    };
    let g = CANARY_GENERATION;
    list.apply(probes, cgroup_id, g, true)?;
    probes.enforce(
        cgroup_id,
        EnforceEntry {
            flags: ENFORCE_EXEC | ENFORCE_CONNECT,
            generation: g,
        },
    )?;
    let outcome = spawn_probe(&exe, cg, port);
    probes.unenforce(cgroup_id)?;
    list.apply(probes, cgroup_id, g, false)?;
    let (status, output) = outcome?;
    Ok(judge(status, &output, now_ns()))
}

/// Starts the probe in `cg` and waits for it (5 s at most).
fn spawn_probe(exe: &Path, cg: &Path, port: u16) -> Result<(ExitStatus, String)> {
    let procs = cg.join("cgroup.procs");
    let mut cmd = Command::new(exe);
    cmd.arg("__canary")
        .arg(port.to_string())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: the closure only writes to a file, which is fine in a freshly forked child.
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, b"0"));
    }
    let mut child = cmd.spawn().context("starting the canary")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    Ok((status, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_passes_only_when_both_were_blocked() {
        let killed = ExitStatus::from_raw(libc::SIGKILL);
        let ran = ExitStatus::from_raw(0);
        let ok = judge(killed, &format!("{REFUSED}\n"), 7);
        assert!(ok.ok && ok.exec_killed && ok.connect_refused, "{ok:?}");
        let open = judge(killed, "connect: allowed\n", 7);
        assert!(!open.ok && open.exec_killed && !open.connect_refused);
        assert!(
            open.detail.contains("was not refused (connect: allowed)"),
            "{}",
            open.detail
        );
        let alive = judge(ran, &format!("{REFUSED}\n"), 7);
        assert!(!alive.ok && !alive.exec_killed);
        assert!(alive.detail.contains("was not killed"), "{}", alive.detail);
    }
}
