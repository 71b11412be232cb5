//! Automated responses end to end (root; runs in CI): with a `kill` response configured for
//! miner alerts, a long-running miner-like program in an alerting workload is killed with its
//! process tree, the alert reports the action and the audit log records it; the same program in
//! a protected workload is left running, and the alert says why.

use std::{
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use baseliner_tests::{
    LearnAgent, TestCgroup, live_enabled, miner_command, normal_workload, run_cli_ok, set_mode,
    wait_alert,
};

/// A miner-like script that connects to its pool, then keeps running (a child `sleep`).
fn write_long_miner(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/$POOL_PORT\n/bin/sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn start_miner(cg: &TestCgroup, miner: &Path) -> Child {
    miner_command(cg, miner).spawn().unwrap()
}

#[test]
fn a_miner_is_killed_with_its_tree_except_in_a_protected_workload() {
    if !live_enabled("a_miner_is_killed_with_its_tree_except_in_a_protected_workload") {
        return;
    }
    let dir = baseliner_tests::temp_dir("respond");
    let store = dir.join("store");
    let alerts = dir.join("alerts.jsonl");
    let cg = TestCgroup::new("respond").unwrap();
    let safe = TestCgroup::new("respond-protected").unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[respond]\nprotected_cgroups = [\"{}\"]\n\n[[respond.rules]]\naction = \"kill\"\n\
             min_severity = \"critical\"\nrules = [\"crypto-miner\"]\n",
            safe.rel
        ),
    )
    .unwrap();
    let agent = LearnAgent::start(
        &store,
        &[&cg.path, &safe.path],
        &[
            "--flush-interval",
            "0.2",
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .unwrap();
    let normal = normal_workload(&dir);
    cg.run_bash(&normal);
    safe.run_bash(&normal);
    std::thread::sleep(Duration::from_millis(600));
    set_mode(&store, &cg.rel, "alert");
    set_mode(&store, &safe.rel, "alert");

    // Killed, with its tree: nothing of it is left in the workload.
    let miner = dir.join("a").join("xmrig");
    write_long_miner(&miner);
    let mut child = start_miner(&cg, &miner);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the miner is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cg.pids(), Vec::<i32>::new(), "the miner's tree survived");
    let alert = wait_alert(&alerts, "a/xmrig");
    let action = &alert["actions"][0];
    assert_eq!(action["action"], "kill", "{alert:#}");
    assert!(
        action["outcome"].as_str().unwrap().starts_with("done"),
        "{alert:#}"
    );

    // Audited, with the alert that caused it.
    let out = run_cli_ok(&store, &["audit", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rec = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alert_key"] == alert["key"])
        .unwrap_or_else(|| panic!("no audit record: {audit:#}"));
    assert_eq!(rec["workload"], cg.rel.as_str());
    assert_eq!(rec["actor"], "agent");
    assert_eq!(rec["action"]["action"], "kill");

    // Protected: left running, and the alert says why.
    let other = dir.join("b").join("xmrig");
    write_long_miner(&other);
    let mut spared = start_miner(&safe, &other);
    let alert = wait_alert(&alerts, "b/xmrig");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        spared.try_wait().unwrap().is_none(),
        "a protected process was touched"
    );
    let outcome = alert["actions"][0]["outcome"].as_str().unwrap().to_string();
    assert!(outcome.contains("is protected"), "{alert:#}");
    spared.kill().unwrap();
    let _ = spared.wait();

    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
