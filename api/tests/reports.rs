//! Reports and evidence: the audit report of a workload over a period (JSON and HTML), the
//! PCI-DSS access report from the evidence store, and the evidence query.

mod common;

use std::sync::Arc;

use api::{auth::Role, workload_segment};
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// An open of `path` by `exe` as `uid` at `ts_s`.
fn open(
    workload: &str,
    ts_s: u64,
    exe: &str,
    uid: u32,
    path: &str,
    access: &str,
) -> profiles::Event {
    let mut e = event(
        workload,
        ts_s,
        json!({"kind": "open", "exe": exe, "path": path, "flags": 0, "access": access}),
    );
    e.uid = uid;
    e
}

/// A fake whose evidence store holds opens of cardholder data, and of other files.
fn with_evidence() -> Arc<Fake> {
    let mut fake = Fake::new();
    fake.pci = vec!["/srv/pan/**".into()];
    fake.events = Some(vec![
        open(NGINX, 100, "/usr/bin/app", 33, "/srv/pan/cards.db", "read"),
        open(NGINX, 110, "/usr/bin/app", 33, "/srv/pan/cards.db", "read"),
        open(NGINX, 120, "/usr/bin/app", 33, "/srv/pan/cards.db", "read"),
        open(
            DB,
            130,
            "/usr/bin/backup",
            0,
            "/srv/pan/2026/cards.db",
            "write",
        ),
        open(NGINX, 140, "/usr/bin/app", 33, "/etc/passwd", "read"),
        connect(NGINX, 150, "10.0.0.1", 443),
        // Outside the period asked for below.
        open(NGINX, 5000, "/usr/bin/app", 33, "/srv/pan/cards.db", "read"),
    ]);
    Arc::new(fake)
}

#[tokio::test]
async fn the_pci_report_lists_who_touched_cardholder_data_in_the_period() {
    let fake = with_evidence();
    let app = app(&fake);
    let r = get(
        &app,
        &format!("/v1/reports/pci?since={}&until={}", 50 * S, 1000 * S),
    )
    .await
    .ok(JSON)
    .json();
    assert_eq!(r["patterns"], json!(["/srv/pan/**"]));
    assert_eq!(r["events_examined"], 5, "opens only, in the period: {r:#}");
    let accesses = r["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 2, "{r:#}");
    let app_reads = &accesses[0];
    assert_eq!(app_reads["workload"], NGINX);
    assert_eq!(app_reads["program"], "/usr/bin/app");
    assert_eq!(app_reads["uid"], 33);
    assert_eq!(app_reads["access"], "read");
    assert_eq!(app_reads["count"], 3);
    assert_eq!(app_reads["first_ns"], 100 * S);
    assert_eq!(app_reads["last_ns"], 120 * S);
    assert_eq!(accesses[1]["program"], "/usr/bin/backup");
    assert_eq!(accesses[1]["access"], "write");
    assert_eq!(r["workloads"], json!([DB, NGINX]));

    let page = get(&app, "/v1/reports/pci?format=html").await;
    let page = page.ok("text/html; charset=utf-8");
    assert!(page.text().contains("/usr/bin/backup"), "{}", page.text());
}

#[tokio::test]
async fn the_pci_report_needs_paths_and_an_evidence_store() {
    let app = app(&Arc::new(Fake::new()));
    let detail = get(&app, "/v1/reports/pci")
        .await
        .problem(StatusCode::CONFLICT);
    assert!(detail.contains("pci_paths"), "{detail}");
    let mut fake = Fake::new();
    fake.pci = vec!["/srv/pan/**".into()];
    let app = common::app(&Arc::new(fake));
    get(&app, "/v1/reports/pci")
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn evidence_is_queried_by_workload_kind_and_time() {
    let app = app(&with_evidence());
    let w = workload_segment(NGINX);
    let all: Vec<Value> = get(&app, &format!("/v1/events?workload={w}"))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(all.len(), 6);
    let opens: Vec<Value> = get(
        &app,
        &format!(
            "/v1/events?workload={w}&kind=open&since={}&until={}&limit=2",
            105 * S,
            1000 * S
        ),
    )
    .await
    .ok(JSON)
    .decode();
    let times: Vec<u64> = opens.iter().map(|e| e["ts_ns"].as_u64().unwrap()).collect();
    assert_eq!(times, [110 * S, 120 * S]);
    for (query, needle) in [
        ("kind=opens", "unknown event kind \"opens\""),
        ("limit=100001", "above the maximum"),
        ("since=2&until=1", "after until"),
        ("pid=4", "unknown field"),
    ] {
        let detail = get(&app, &format!("/v1/events?{query}"))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}

#[tokio::test]
async fn the_audit_report_tells_a_workloads_story_in_the_period() {
    let (fake, seeds) = seeded();
    let app = secured(&fake);
    let admin = token(Role::Admin);
    let reviewer = token(Role::Reviewer);
    send_as(
        &app,
        &admin,
        Method::PUT,
        &profile_uri(NGINX, "mode"),
        r#"{"mode": "alert"}"#,
    )
    .await
    .ok(JSON);
    let approve = format!("/v1/reviews/{}/approve", seeds.tool.id);
    send_as(
        &app,
        &reviewer,
        Method::POST,
        &approve,
        r#"{"comment": "release <b>2</b>"}"#,
    )
    .await
    .ok(JSON);
    let reject = format!("/v1/reviews/{}/reject", seeds.net.id);
    send_as(
        &app,
        &reviewer,
        Method::POST,
        &reject,
        r#"{"comment": "unknown host"}"#,
    )
    .await
    .ok(JSON);

    let uri = format!("/v1/reports/audit?workload={}", workload_segment(NGINX));
    let r = send_as(&app, &token(Role::Viewer), Method::GET, &uri, "")
        .await
        .ok(JSON)
        .json();
    assert_eq!(r["mode"], "alert");
    assert_eq!(r["mode_changes"][0]["actor"], "alice", "{r:#}");
    assert_eq!(r["approvals"][0]["reviewer"], "rita");
    assert_eq!(r["approvals"][0]["comment"], "release <b>2</b>");
    assert_eq!(r["rejections"][0]["id"], seeds.net.id.as_str());
    assert_eq!(r["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(r["alerts_by_severity"]["critical"], 1, "{r:#}");
    // Each revision's hash is its export's.
    for rev in r["revisions"].as_array().unwrap() {
        let revision = rev["revision"].as_str().unwrap();
        let export: Value = serde_json::from_str(
            &export_text(&common::app(&fake), NGINX, &format!("?revision={revision}")).await,
        )
        .unwrap();
        assert_eq!(
            rev["content_sha256"], export["content_sha256"],
            "{revision}"
        );
    }

    // A period before all of it has none of the changes.
    let early = send_as(
        &app,
        &token(Role::Viewer),
        Method::GET,
        &format!("{uri}&until=1"),
        "",
    )
    .await
    .ok(JSON)
    .json();
    for part in ["mode_changes", "approvals", "rejections", "alerts"] {
        assert_eq!(early[part], json!([]), "{part}: {early:#}");
    }

    // The page shows the same, with the reviewer's words escaped.
    let page = send_as(
        &app,
        &token(Role::Viewer),
        Method::GET,
        &format!("{uri}&format=html"),
        "",
    )
    .await
    .ok("text/html; charset=utf-8");
    let html = page.text();
    assert!(
        html.contains("<h2>Approved entries</h2>") && html.contains("rita"),
        "{html}"
    );
    assert!(html.contains("release &lt;b&gt;2&lt;/b&gt;"), "{html}");
    assert!(!html.contains("release <b>2</b>"), "{html}");
}

#[tokio::test]
async fn a_bad_audit_report_request_is_a_clear_4xx() {
    let (fake, _) = seeded();
    let app = app(&fake);
    let w = workload_segment(NGINX);
    for (query, status, needle) in [
        (
            format!("workload={w}&format=pdf"),
            StatusCode::BAD_REQUEST,
            "unknown report format",
        ),
        (
            format!("workload={w}&since=5&until=4"),
            StatusCode::BAD_REQUEST,
            "after until",
        ),
        (
            "workload=%2Fnowhere".to_string(),
            StatusCode::NOT_FOUND,
            "unknown workload",
        ),
        (String::new(), StatusCode::BAD_REQUEST, "workload"),
    ] {
        let detail = get(&app, &format!("/v1/reports/audit?{query}"))
            .await
            .problem(status);
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}
