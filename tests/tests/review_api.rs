//! The review API end to end over HTTP with bearer tokens (root; runs in CI): a workload learns,
//! an admin switches it to alert, a new program runs in it; the program appears in the review
//! queue and raises an alert; a reviewer approves it and it no longer alerts. In enforce mode a
//! second new program is first killed by the kernel and, once approved, runs within a second.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use api::auth::token_sha256;
use baseliner_tests::{
    LearnAgent, TestCgroup, free_port, http_call, live_enabled, marker_program, wait_alert,
    wait_enforcing,
};
use serde_json::Value;

const ADMIN: &str = "admin-token-e2e";
const REVIEWER: &str = "reviewer-token-e2e";
const VIEWER: &str = "viewer-token-e2e";

/// The agent's configuration: the API on `port` with one token per role.
fn config(port: u16) -> String {
    let mut c = format!("[api]\nlisten = \"127.0.0.1:{port}\"\n");
    for (name, role, token) in [
        ("ops", "admin", ADMIN),
        ("alice", "reviewer", REVIEWER),
        ("dashboard", "viewer", VIEWER),
    ] {
        c += &format!(
            "[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            token_sha256(token)
        );
    }
    c
}

/// A call that must answer `want`; its JSON body.
fn call(port: u16, method: &str, path: &str, token: &str, body: Option<&str>, want: u16) -> Value {
    let (code, text) = http_call(port, method, path, Some(token), body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    assert_eq!(code, want, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The workload's pending proposals.
fn pending(port: u16, workload: &str) -> Vec<Value> {
    let path = format!(
        "/v1/reviews?state=pending&workload={}",
        api::workload_segment(workload)
    );
    call(port, "GET", &path, VIEWER, None, 200)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// True when proposal `p` is the exec of `program` (its path generalised: `<num>` for the
/// test directory's number).
fn is_exec_of(p: &Value, program: &Path) -> bool {
    let name = program.file_name().unwrap().to_str().unwrap();
    p["entry"]["kind"] == "exec"
        && p["entry"]["path"]
            .as_str()
            .is_some_and(|path| path.ends_with(&format!("/{name}")))
}

/// Waits (at most 3 s) until a pending proposal of `workload` is the exec of `program`; returns
/// it.
fn wait_proposal(port: u16, workload: &str, program: &Path) -> Value {
    let started = Instant::now();
    loop {
        let list = pending(port, workload);
        if let Some(p) = list.iter().find(|p| is_exec_of(p, program)) {
            return p.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no proposal for the exec of {}: {list:#?}",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Approves every pending proposal of `workload` as the reviewer, in one bulk call.
fn approve_all(port: u16, workload: &str) {
    let ids: Vec<Value> = pending(port, workload)
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert!(!ids.is_empty());
    let body = serde_json::json!({"action": "approve", "ids": ids, "comment": "part of release 2"});
    let out = call(
        port,
        "POST",
        "/v1/reviews/bulk",
        REVIEWER,
        Some(&body.to_string()),
        200,
    );
    for o in out.as_array().unwrap() {
        assert_eq!(o["ok"], true, "{out:#}");
    }
}

/// Total occurrences of the workload's alerts (new ones and repeats).
fn alert_count(port: u16, workload: &str) -> u64 {
    let path = format!("/v1/alerts?workload={}", api::workload_segment(workload));
    call(port, "GET", &path, VIEWER, None, 200)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["count"].as_u64().unwrap())
        .sum()
}

fn set_mode(port: u16, workload: &str, mode: &str, token: &str, want: u16) {
    let path = format!("/v1/workloads/{}/mode", api::workload_segment(workload));
    call(
        port,
        "PUT",
        &path,
        token,
        Some(&format!("{{\"mode\": \"{mode}\"}}")),
        want,
    );
}

#[test]
fn a_reviewer_approves_a_new_program_over_http_and_it_stops_alerting_and_runs_in_enforce_mode() {
    if !live_enabled("a_reviewer_approves_a_new_program_over_http") {
        return;
    }
    let dir = baseliner_tests::temp_dir("review-api");
    let store = dir.join("store");
    let port = free_port();
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config(port)).unwrap();
    let alerts = dir.join("alerts.jsonl");
    let cg = TestCgroup::new("review-api").unwrap();
    let agent = LearnAgent::start(
        &store,
        &[&cg.path],
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--flush-interval",
            "0.2",
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
        ],
    )
    .unwrap();
    let w = cg.rel.clone();

    // The programs live where no path segment holds a number: a generalised `<num>` segment
    // would make the kernel allow-list widen to the whole parent tree.
    let letters: String = std::process::id()
        .to_string()
        .bytes()
        .map(|d| char::from(b'a' + (d - b'0')))
        .collect();
    let bin = Path::new("/tmp").join(format!("baseliner-review-api-{letters}"));
    std::fs::create_dir_all(&bin).unwrap();

    // Learn.
    cg.run_bash("/bin/true");
    std::thread::sleep(Duration::from_millis(600));

    // Only an admin switches modes; the change is audited under the token's name.
    let (code, _) = http_call(port, "GET", "/v1/workloads", None, None).unwrap();
    assert_eq!(code, 401, "no token");
    set_mode(port, &w, "alert", REVIEWER, 403);
    set_mode(port, &w, "alert", ADMIN, 200);
    let history = call(
        port,
        "GET",
        &format!("/v1/workloads/{}/modes", api::workload_segment(&w)),
        VIEWER,
        None,
        200,
    );
    assert_eq!(history[0]["by"], "ops", "{history:#}");

    // A new program: an alert, and a proposal that names the alert.
    let marker = dir.join("marker");
    let tool = bin.join("tool.sh");
    marker_program(&tool, &marker);
    assert!(cg.command(&tool).status().unwrap().success());
    let alert = wait_alert(&alerts, "tool.sh");
    let exec = wait_proposal(port, &w, &tool);
    assert!(
        exec["alerts"].as_array().unwrap().contains(&alert["key"]),
        "the proposal names the alert: {exec:#}"
    );
    assert!(exec["count"].as_u64().unwrap() >= 1);

    // A viewer cannot decide; the reviewer approves everything the program did.
    let id = exec["id"].as_str().unwrap();
    call(
        port,
        "POST",
        &format!("/v1/reviews/{id}/approve"),
        VIEWER,
        Some("{}"),
        403,
    );
    approve_all(port, &w);
    let approvals = call(port, "GET", "/v1/approvals", VIEWER, None, 200);
    assert!(
        approvals
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["reviewer"] == "alice" && a["comment"] == "part of release 2"),
        "{approvals:#}"
    );
    // It no longer alerts: running it again adds no alert and no repeat.
    let before = alert_count(port, &w);
    std::fs::remove_file(&marker).unwrap();
    assert!(cg.command(&tool).status().unwrap().success());
    assert!(marker.exists());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        alert_count(port, &w),
        before,
        "the approved program still alerts"
    );

    // Enforce: a second new program is killed before it runs.
    set_mode(port, &w, "enforce", ADMIN, 200);
    wait_enforcing(&store, &w, true);
    let marker2 = dir.join("marker2");
    let tool2 = bin.join("tool2.sh");
    marker_program(&tool2, &marker2);
    let status = cg.command(&tool2).status().unwrap();
    assert!(!status.success() && !marker2.exists(), "{status:?}");
    wait_proposal(port, &w, &tool2);
    approve_all(port, &w);
    let approved = Instant::now();
    // Once approved the kernel lets it run, within a second (checked with some slack for this
    // shared machine; the time measured is printed).
    loop {
        if cg.command(&tool2).status().unwrap().success() && marker2.exists() {
            break;
        }
        assert!(
            approved.elapsed() < Duration::from_millis(1500),
            "the approved program is still blocked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "approved program ran {} ms after the approval",
        approved.elapsed().as_millis()
    );

    // Every decision is in the audit log under the reviewer's name.
    let audit = call(port, "GET", "/v1/audit", VIEWER, None, 200);
    let by = |action: &str, actor: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == actor && r["action"]["action"] == action)
    };
    assert!(by("approve", "alice") && by("set-mode", "ops"), "{audit:#}");

    // The evidence store kept the runs, blocked one included; the audit report and the metrics
    // say what happened.
    let seg = api::workload_segment(&w);
    let events = call(
        port,
        "GET",
        &format!("/v1/events?workload={seg}&kind=exec"),
        VIEWER,
        None,
        200,
    );
    let runs = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with("/tool2.sh"))
        })
        .count();
    assert!(runs >= 2, "the killed run and the allowed one: {events:#}");
    let report = call(
        port,
        "GET",
        &format!("/v1/reports/audit?workload={seg}"),
        VIEWER,
        None,
        200,
    );
    assert!(
        report["approvals"].as_array().unwrap().len() >= 2
            && report["mode_changes"].as_array().unwrap().len() == 2,
        "{report:#}"
    );
    let (code, page) = http_call(
        port,
        "GET",
        &format!("/v1/reports/audit?workload={seg}&format=html"),
        Some(VIEWER),
        None,
    )
    .unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("<h2>Approved entries</h2>") && page.contains("alice"),
        "{page}"
    );
    let (code, metrics) = http_call(port, "GET", "/metrics", Some(VIEWER), None).unwrap();
    assert_eq!(code, 200);
    for needle in [
        "baseliner_workloads{mode=\"enforce\"} 1",
        "baseliner_reviews_pending",
        "baseliner_kernel_events_seen_total{kind=\"exec\"}",
        "baseliner_process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(needle), "{needle} missing: {metrics}");
    }
    let ring: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("baseliner_ring_capacity_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(ring >= 4096.0, "ring capacity {ring}: {metrics}");
    // Back to alert mode before stopping: an agent that stops with nothing enforced leaves no
    // enforcement programs pinned behind it.
    set_mode(port, &w, "alert", ADMIN, 200);
    wait_enforcing(&store, &w, false);
    let (status, _log) = agent.stop().unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&bin).unwrap();
    assert!(
        !Path::new("/sys/fs/bpf/baseliner/sched_process_exec").exists(),
        "the agent left enforcement pinned"
    );
}
