//! The `baseliner` command line, end to end (root; runs in CI): `capture --json` prints one
//! schema-versioned event per line and the kernel statistics on exit; `doctor` passes here.

use std::{
    io::Read,
    process::{Command, Stdio},
};

use baseliner_tests::{TestCgroup, baseliner_bin, live_enabled};

#[test]
fn capture_json_prints_events_and_statistics() {
    if !live_enabled("capture_json_prints_events_and_statistics") {
        return;
    }
    let cg = TestCgroup::new("cli").unwrap();
    let mut agent = Command::new(baseliner_bin())
        .args([
            "capture",
            "--json",
            "--stats-json",
            "--duration",
            "4",
            "--cgroup",
        ])
        .arg(&cg.rel) // a path relative to the cgroup2 mount
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = baseliner_tests::wait_until_capturing(agent.stderr.take().unwrap());
    let status = cg
        .command("/bin/sh")
        .arg("-c")
        .arg("/bin/echo cli-marker one >/dev/null")
        .status()
        .unwrap();
    assert!(status.success());

    let mut stdout = String::new();
    agent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(agent.wait().unwrap().success(), "capture failed: {rest}");

    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["schema"], 1);
        assert_eq!(e["workload"]["id"], cg.rel.as_str());
        assert!(e["ts_ns"].as_u64().unwrap() > 0);
    }
    let echo = events
        .iter()
        .find(|e| e["kind"] == "exec" && e["filename"] == "/bin/echo")
        .unwrap_or_else(|| panic!("no exec of /bin/echo in {stdout}"));
    assert_eq!(
        echo["argv"],
        serde_json::json!(["/bin/echo", "cli-marker", "one"])
    );
    // The events also parse as the typed contract.
    for l in stdout.lines() {
        let _: profiles::Event = serde_json::from_str(l).unwrap();
    }

    // The last stderr line is the statistics object; every emitted event was printed.
    let stats: serde_json::Value = serde_json::from_str(
        rest.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("stats line"),
    )
    .unwrap();
    for key in ["seen", "emitted", "deduplicated", "dropped"] {
        assert!(stats["total"][key].is_u64(), "{key} missing in {stats}");
    }
    assert_eq!(stats["received"], stats["total"]["emitted"]);
    assert_eq!(stats["received"].as_u64().unwrap(), events.len() as u64);
    assert!(
        stats["exec"]["emitted"].as_u64().unwrap() >= 2,
        "sh and echo: {stats}"
    );
}

#[test]
fn capture_rejects_a_missing_cgroup_with_a_clear_error() {
    let out = Command::new(baseliner_bin())
        .args([
            "capture",
            "--cgroup",
            "/no-such-cgroup-baseliner",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no-such-cgroup-baseliner") && err.contains("not a cgroup2 directory"),
        "{err}"
    );
}

#[test]
fn capture_rejects_a_negative_duration() {
    let out = Command::new(baseliner_bin())
        .args(["capture", "--duration=-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}

#[test]
fn doctor_passes_on_this_host() {
    if !live_enabled("doctor_passes_on_this_host") {
        return;
    }
    let out = Command::new(baseliner_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<_> = report
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "doctor failed: {failed:#?}");
    assert!(out.status.success());
    let names: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for want in [
        "kernel version",
        "kernel BTF",
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_RESOURCE",
        "lockdown",
        "tracefs",
        "bpffs",
        "cgroup2",
        "agent programs",
    ] {
        assert!(
            names.contains(&want),
            "doctor does not check {want}: {names:?}"
        );
    }
}

#[test]
fn capture_by_pid_watches_that_process_cgroup() {
    if !live_enabled("capture_by_pid_watches_that_process_cgroup") {
        return;
    }
    let cg = TestCgroup::new("clipid").unwrap();
    let mut workload = cg
        .command("/bin/bash")
        .arg("-c")
        .arg("sleep 2; /bin/echo pid-marker >/dev/null")
        .spawn()
        .unwrap();
    let out = Command::new(baseliner_bin())
        .args(["capture", "--json", "--duration", "4", "--pid"])
        .arg(workload.id().to_string())
        .output()
        .unwrap();
    assert!(workload.wait().unwrap().success());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let echo = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "exec" && e["argv"][1] == "pid-marker")
        .unwrap_or_else(|| panic!("no exec of the workload's echo: {stdout}"));
    assert_eq!(echo["workload"]["id"], cg.rel.as_str());
}
