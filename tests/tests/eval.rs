//! The recorded dataset (no root): every attack scenario is detected, and the held-back normal
//! traffic raises no alert (the targets, checked on every run).

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
    for n in &normals {
        assert!(
            n["false_alarms_per_hour"].as_f64().unwrap() <= 1.0,
            "false alarms on held-back traffic: {n:#}"
        );
    }
    assert!(out.status.success(), "eval exits 0 when nothing is missed");
}
