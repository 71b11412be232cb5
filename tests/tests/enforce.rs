//! Enforce mode end to end (root; runs in CI), each in its own cgroup2 directory: after
//! learning, a dry run blocks nothing and its alert says what enforce mode would block; in
//! enforce mode an allowed program still runs and an unknown one dies with SIGKILL before it runs
//! (it would have written a marker file, and the file does not exist); an allowed loopback
//! connect works and an unknown port gets EPERM; a miner-like program is stopped within a
//! second; switching back to alert lets the same program run; processes outside the workload
//! are never touched. Blocking survives the agent's crash (its programs are pinned), and the
//! next agent takes over from the dead one's programs.

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use baseliner_tests::{
    LearnAgent, TestCgroup, live_enabled, loopback_listener, marker_program, run_cli_ok, set_mode,
    wait_alert, wait_enforcing, write_miner,
};

/// One test at a time: enforcement programs are pinned under one bpffs directory, and an agent
/// that stops cleanly with nothing enforced removes the pins there.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// bash in the workload opening a TCP connection to 127.0.0.1:`port`.
fn connect_in(cg: &TestCgroup, port: u16) -> Output {
    cg.command("/bin/bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} || exit 3; exec 3>&-"
        ))
        .output()
        .unwrap()
}

#[test]
fn enforce_blocks_what_the_profile_does_not_allow_and_only_in_the_workload() {
    if !live_enabled("enforce_blocks_what_the_profile_does_not_allow_and_only_in_the_workload") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = baseliner_tests::temp_dir("enforce");
    let store = dir.join("store");
    let cg = TestCgroup::new("enforce").unwrap();
    let (allowed_port, other_port) = (loopback_listener(), loopback_listener());
    let alerts = dir.join("alerts.jsonl");
    let agent = LearnAgent::start(
        &store,
        &[&cg.path],
        &[
            "--flush-interval",
            "0.2",
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
        ],
    )
    .unwrap();

    // Learn: bash runs /bin/true and talks to one port.
    cg.run_bash(&format!(
        "/bin/true; exec 3<>/dev/tcp/127.0.0.1/{allowed_port}; exec 3>&-"
    ));
    std::thread::sleep(Duration::from_millis(600));
    let marker = dir.join("marker");
    let unknown = dir.join("unknown.sh");
    marker_program(&unknown, &marker);

    // Dry run: nothing is blocked, and the alert says what enforcement would block.
    set_mode(&store, &cg.rel, "dry-run");
    std::thread::sleep(Duration::from_millis(1200));
    let status = cg.command(&unknown).status().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(marker.exists(), "a dry run blocked the program");
    std::fs::remove_file(&marker).unwrap();
    let would = wait_alert(&alerts, "unknown.sh");
    assert_eq!(would["enforcement"], "would-block", "{would:#}");
    assert!(
        would["summary"]
            .as_str()
            .unwrap()
            .starts_with("[would be blocked]"),
        "{would:#}"
    );

    set_mode(&store, &cg.rel, "enforce");
    wait_enforcing(&store, &cg.rel, true);

    // The canary proved blocking works when the agent started.
    let out = run_cli_ok(&store, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let canary = &status["agent"]["enforcement"]["canary"];
    assert_eq!(canary["ok"], true, "{canary:#}");
    assert_eq!(canary["exec_killed"], true, "{canary:#}");
    assert_eq!(canary["connect_refused"], true, "{canary:#}");

    // Allowed: the learned program and the learned destination.
    cg.run_bash("/bin/true");
    let ok = connect_in(&cg, allowed_port);
    assert!(ok.status.success(), "{ok:?}");

    // An unknown program is killed before its first instruction: no marker.
    let other = dir.join("other.sh");
    marker_program(&other, &marker);
    let status = cg.command(&other).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!marker.exists(), "the unknown program ran");
    let blocked = wait_alert(&alerts, "other.sh");
    assert_eq!(blocked["enforcement"], "blocked", "{blocked:#}");
    assert_eq!(
        blocked["event"]["blocked"], true,
        "the kernel says so: {blocked:#}"
    );

    // An unknown port: EPERM.
    let refused = connect_in(&cg, other_port);
    assert!(!refused.status.success(), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");

    // A miner-like program is stopped at once (well within a second).
    let miner = dir.join("xmrig");
    write_miner(&miner);
    let started = Instant::now();
    let status = cg.command(&miner).status().unwrap();
    let took = started.elapsed();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");

    // Outside the workload nothing is touched.
    let outside = std::process::Command::new(&unknown).status().unwrap();
    assert!(outside.success(), "{outside:?}");
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();
    std::net::TcpStream::connect(("127.0.0.1", other_port)).expect("connect outside");

    // The kernel counted what it did (the status catches up within a tick).
    let started = Instant::now();
    loop {
        let out = run_cli_ok(&store, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let kernel = &status["agent"]["enforcement"]["kernel"];
        // Two execs and one connect here, one of each by the canary at start.
        if kernel["exec_killed"].as_u64() >= Some(3) {
            assert_eq!(kernel["connect_denied"], 2, "{kernel}");
            assert_eq!(kernel["exec_killed"], 3, "{kernel}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{kernel}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A profile change (an imported profile that allows other.sh) is in force within a second.
    let text = String::from_utf8(run_cli_ok(&store, &["profile", "export", &cg.rel])).unwrap();
    let mut export = profiles::export::import(&text).unwrap();
    let seen = *export.profile.execs.values().next().unwrap();
    export.profile.execs.insert(
        profiles::model::ExecEntry {
            path: other.display().to_string(),
            args: None,
        },
        seen,
    );
    let changed = profiles::export::export(
        export.workload.clone(),
        export.revision.clone(),
        export.learning.clone(),
        &export.profile,
    )
    .with_rates(export.rates.clone());
    let file = dir.join("approved.json");
    std::fs::write(&file, profiles::export::to_json(&changed)).unwrap();
    run_cli_ok(&store, &["profile", "import", file.to_str().unwrap()]);
    let started = Instant::now();
    loop {
        let status = cg.command(&other).status().unwrap();
        if status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the change was not in force after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(marker.exists(), "the newly allowed program ran");
    std::fs::remove_file(&marker).unwrap();
    // Only what was added: the other unknown program still dies.
    let status = cg.command(&unknown).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    // Back to alert: the same program runs, the same port answers.
    set_mode(&store, &cg.rel, "alert");
    wait_enforcing(&store, &cg.rel, false);
    let status = cg.command(&unknown).status().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(marker.exists(), "the program ran after enforcement ended");
    let ok = connect_in(&cg, other_port);
    assert!(ok.status.success(), "{ok:?}");

    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocking_survives_an_agent_crash_and_the_next_agent_takes_over() {
    if !live_enabled("blocking_survives_an_agent_crash_and_the_next_agent_takes_over") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = baseliner_tests::temp_dir("enforce-restart");
    let store = dir.join("store");
    let cg = TestCgroup::new("enforce-restart").unwrap();
    let (allowed_port, other_port) = (loopback_listener(), loopback_listener());
    let args = ["--flush-interval", "0.2"];
    let agent = LearnAgent::start(&store, &[&cg.path], &args).unwrap();
    cg.run_bash(&format!(
        "/bin/true; exec 3<>/dev/tcp/127.0.0.1/{allowed_port}; exec 3>&-"
    ));
    std::thread::sleep(Duration::from_millis(600));
    set_mode(&store, &cg.rel, "enforce");
    wait_enforcing(&store, &cg.rel, true);
    let marker = dir.join("marker");
    let unknown = dir.join("unknown.sh");
    marker_program(&unknown, &marker);
    let pin = Path::new("/sys/fs/bpf/baseliner/sched_process_exec");
    let started = Instant::now();
    while !pin.exists() {
        assert!(started.elapsed() < Duration::from_secs(3), "never pinned");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The agent dies (SIGKILL): blocking stays in force.
    drop(agent);
    std::thread::sleep(Duration::from_millis(300));
    let status = cg.command(&unknown).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(
        !marker.exists(),
        "the unknown program ran while the agent was down"
    );
    let refused = connect_in(&cg, other_port);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(connect_in(&cg, allowed_port).status.success());

    // The next agent takes over: still blocked, and once it ends enforcement nothing of the
    // dead agent's programs blocks any more.
    let agent = LearnAgent::start(&store, &[&cg.path], &args).unwrap();
    wait_enforcing(&store, &cg.rel, true);
    let status = cg.command(&unknown).status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    set_mode(&store, &cg.rel, "alert");
    wait_enforcing(&store, &cg.rel, false);
    std::thread::sleep(Duration::from_millis(300));
    let status = cg.command(&unknown).status().unwrap();
    assert!(
        status.success(),
        "a previous agent's program still blocks: {status:?}"
    );
    assert!(marker.exists());
    assert!(connect_in(&cg, other_port).status.success());

    // A clean stop with nothing enforced leaves no pinned programs behind.
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    assert!(!pin.exists(), "pins left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
