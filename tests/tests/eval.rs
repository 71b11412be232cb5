//! The recorded dataset (no root): every attack scenario is detected, the held-back normal
//! traffic (over a workload-hour) stays within one false alarm per workload-hour, and the rate
//! model learned from each workload flags the port scan's fan-out (the targets, checked
//! on every run).

use std::process::Command;

use baseliner_tests::baseliner_bin;

#[test]
fn every_recorded_attack_is_detected_without_false_alarms() {
    let datasets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets");
    let out = Command::new(baseliner_bin())
        .args(["eval", "--json"])
        .arg(&datasets)
        .output()
        .unwrap();
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let attacks: Vec<&serde_json::Value> =
        results.iter().filter(|r| r["kind"] == "attack").collect();
    let normals: Vec<&serde_json::Value> =
        results.iter().filter(|r| r["kind"] == "normal").collect();
    assert!(attacks.len() >= 6 && normals.len() >= 5, "{results:#?}");
    for a in &attacks {
        assert_eq!(a["detected"], true, "missed: {a:#}");
        assert_eq!(
            a["alerts_before_attack"], 0,
            "false alarm before the attack: {a:#}"
        );
    }
    // The target is at most one false alarm per workload-hour of held-back traffic, over all
    // normal traces together (each holds back about a quarter of an hour).
    let held_hours: f64 = normals
        .iter()
        .map(|n| n["seconds"].as_f64().unwrap() / 3600.0)
        .sum();
    let false_alarms: u64 = normals.iter().map(|n| n["alerts"].as_u64().unwrap()).sum();
    assert!(held_hours >= 1.0, "too little held back: {held_hours:.2} h");
    assert!(
        false_alarms as f64 / held_hours <= 1.0,
        "{false_alarms} false alarms in {held_hours:.2} workload-hours: {normals:#?}"
    );
    for n in &normals {
        assert!(
            n["rate_model"]
                .as_str()
                .unwrap()
                .contains("activity shapes"),
            "no rate model learned: {n:#}"
        );
    }
    // The rate model sees the port scan's fan-out.
    let scan = attacks.iter().find(|a| a["trace"] == "port_scan").unwrap();
    assert!(
        scan["summaries"]
            .to_string()
            .contains("distinct connection destinations in 10 s"),
        "{scan:#}"
    );
    assert!(out.status.success(), "eval exits 0 when nothing is missed");
}
