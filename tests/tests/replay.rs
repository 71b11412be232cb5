//! `baseliner replay` (no root): a trace scored offline against an exported profile raises
//! alerts only for what the profile does not cover, and rejects bad input clearly.

use std::{path::Path, process::Command};

use baseliner_tests::baseliner_bin;
use profiles::{Event, model::Profile};

fn event(kind: serde_json::Value) -> Event {
    let mut v = serde_json::json!({
        "schema": 1, "ts_ns": 1_000_000_000u64,
        "workload": {"id": "/web", "cgroup_id": 7, "cgroup": "/web"},
        "pid": 10, "tid": 10, "ppid": 1, "uid": 33, "gid": 33, "comm": "nginx",
        "exe": "/usr/sbin/nginx", "parent_exe": "/usr/sbin/nginx",
    });
    v.as_object_mut()
        .unwrap()
        .extend(kind.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

/// `baseliner replay --json --profile PROFILE TRACE`, which must succeed: its alerts and stderr.
fn replay_json(profile: &Path, trace: &Path) -> (Vec<serde_json::Value>, String) {
    let out = Command::new(baseliner_bin())
        .args(["replay", "--json", "--profile"])
        .arg(profile)
        .arg(trace)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let alerts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (alerts, stderr)
}

#[test]
fn replay_scores_a_trace_against_an_exported_profile() {
    let dir = baseliner_tests::temp_dir("replay");
    let normal = event(serde_json::json!({
        "kind": "open", "path": "/var/www/index.html", "flags": 0, "access": "read",
        "path_truncated": false
    }));
    let mut profile = Profile::default();
    profile.record(&normal);
    let export = profiles::export::export("/web", "r1", serde_json::Value::Null, &profile);
    let profile_file = dir.join("web.json");
    std::fs::write(&profile_file, profiles::export::to_json(&export)).unwrap();

    let shell = event(serde_json::json!({
        "kind": "exec", "filename": "/bin/sh", "argv": ["/bin/sh", "-c", "id"],
        "argv_truncated": false
    }));
    let trace = [&normal, &shell, &normal, &shell]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let trace_file = dir.join("trace.jsonl");
    std::fs::write(&trace_file, trace).unwrap();

    let (alerts, stderr) = replay_json(&profile_file, &trace_file);
    assert_eq!(alerts.len(), 1, "the repeat aggregates: {alerts:#?}");
    assert_eq!(alerts[0]["severity"], "high", "{:#}", alerts[0]);
    assert!(
        alerts[0]["reasons"]
            .to_string()
            .contains("shell-from-server")
    );
    assert!(stderr.contains("scored 4 events"), "{stderr}");

    // Bad input: a clear error naming the line.
    std::fs::write(&trace_file, "{\"schema\": 1}\n").unwrap();
    let out = Command::new(baseliner_bin())
        .args(["replay", "--profile"])
        .arg(&profile_file)
        .arg(&trace_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1: not an event"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_uses_the_rate_model_the_export_carries() {
    let dir = baseliner_tests::temp_dir("replay-rates");
    let connect = |ts_ns: u64, port: u16| {
        let mut e = event(serde_json::json!({
            "kind": "connect", "family": "inet", "protocol": "tcp", "addr": "127.0.0.1",
            "port": port
        }));
        e.ts_ns = ts_ns;
        e
    };
    // Learned: one connection to the database every window, for 30 windows.
    let mut profile = Profile::default();
    profile.record(&connect(1, 5432));
    let mut rates = profiles::rates::RateSamples::new(profiles::rates::DEFAULT_WINDOW_NS);
    for _ in 0..30 {
        rates.add([0, 0, 1, 0, 0, 0, 1]);
    }
    let export = profiles::export::export("/web", "r1", serde_json::Value::Null, &profile)
        .with_rates(Some(rates));
    let profile_file = dir.join("web.json");
    std::fs::write(&profile_file, profiles::export::to_json(&export)).unwrap();
    // Scored: 60 destinations in one second.
    let trace: Vec<String> = (1..=60u16)
        .map(|p| serde_json::to_string(&connect(100_000_000_000 + u64::from(p), 8000 + p)).unwrap())
        .collect();
    let trace_file = dir.join("scan.jsonl");
    std::fs::write(&trace_file, trace.join("\n")).unwrap();
    let (alerts, _) = replay_json(&profile_file, &trace_file);
    let rate = alerts
        .iter()
        .find(|a| a["reasons"][0]["rule"] == "rate")
        .unwrap_or_else(|| panic!("no rate alert: {alerts:#?}"));
    assert!(
        rate["reasons"]
            .to_string()
            .contains("60 distinct connection destinations in 10 s; at most 1 in any of the 30 windows learned"),
        "{rate:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
