//! Alert mode end to end (root; runs in CI): a workload learns, is switched to alert through the
//! running agent, then a miner-like program starts in it. The alert names the miner signs, is in
//! the store, and reaches the alert output within 2 seconds; the learned behaviour raises nothing.

use std::time::{Duration, Instant};

use baseliner_tests::{
    LearnAgent, TestCgroup, learn_then_alert, live_enabled, normal_workload, run_miner, write_miner,
};

#[test]
fn a_miner_in_an_alerting_workload_raises_a_critical_alert() {
    if !live_enabled("a_miner_in_an_alerting_workload_raises_a_critical_alert") {
        return;
    }
    let dir = baseliner_tests::temp_dir("alerts");
    let store = dir.join("store");
    let alerts = dir.join("alerts.jsonl");
    let cg = TestCgroup::new("alerts").unwrap();
    let normal = normal_workload(&dir);
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
    learn_then_alert(&cg, &store, &normal);

    // What was learned raises nothing.
    cg.run_bash(&normal);
    std::thread::sleep(Duration::from_millis(600));
    let lines = || std::fs::read_to_string(&alerts).unwrap_or_default();
    assert_eq!(
        lines(),
        "",
        "learned behaviour raised an alert; profile: {:#}",
        baseliner_tests::show_profile(&store, &cg.rel)
    );

    // A miner-like program: its name, a stratum pool URL and a connect to the pool.
    let miner = dir.join("xmrig");
    write_miner(&miner);
    let started = Instant::now();
    run_miner(&cg, &miner);
    let alert: serde_json::Value = loop {
        let text = lines();
        if let Some(line) = text.lines().find(|l| l.contains("xmrig")) {
            break serde_json::from_str(line).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no alert within 2 s; alerts so far: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");

    assert_eq!(alert["workload"], cg.rel.as_str());
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    let reasons = alert["reasons"].to_string();
    assert!(reasons.contains("miner"), "{alert:#}");
    assert!(reasons.contains("stratum"), "{alert:#}");
    // The alert was stored before it was delivered.
    let store = profiles::store::Store::open_waiting(&store, Duration::from_secs(10)).unwrap();
    let stored: Vec<serde_json::Value> = store.all_json("alerts").unwrap();
    assert!(
        stored.iter().any(|a| a["key"] == alert["key"]),
        "{stored:#?}"
    );
    drop(store);

    // `baseliner alerts` lists it, filtered by severity and workload.
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&baseliner_tests::run_cli_ok(
        &dir.join("store"),
        &[
            "alerts",
            "--json",
            "--severity",
            "high",
            "--workload",
            &cg.rel,
        ],
    ))
    .unwrap();
    assert!(
        listed.iter().any(|a| a["key"] == alert["key"]),
        "{listed:#?}"
    );
    assert!(listed.iter().all(|a| a["workload"] == cg.rel.as_str()));
    let text =
        String::from_utf8(baseliner_tests::run_cli_ok(&dir.join("store"), &["alerts"])).unwrap();
    assert!(
        text.contains("critical") && text.contains("[crypto-miner]"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
