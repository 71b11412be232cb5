//! Alerts: the query and its filters, acknowledgements, and the live stream.

mod common;

use std::{sync::Arc, time::Duration};

use api::workload_segment;
use axum::{
    Router,
    body::Body,
    http::{Method, StatusCode, header},
};
use common::*;
use http_body_util::BodyExt as _;
use scorer::alert::{Alert, Severity};
use serde_json::json;
use tower::ServiceExt as _;

/// An alert with the given key, workload, severity, single rule and first / last seen times.
fn made(
    key: &str,
    workload: &str,
    severity: Severity,
    rule: &str,
    first_s: u64,
    last_s: u64,
) -> Alert {
    let mut a = alert(workload, "/tmp/xmrig", last_s);
    a.key = key.into();
    a.severity = severity;
    a.reasons.truncate(1);
    a.reasons[0].rule = rule.into();
    (a.first_ns, a.last_ns) = (first_s * S, last_s * S);
    a
}

/// k1 nginx low novelty 100–150 s; k2 nginx high sensitive-file 200–250 s; k3 db critical
/// crypto-miner 300–350 s; k4 db medium novelty 50–400 s, acknowledged.
fn with_alerts() -> (Arc<Fake>, Router) {
    let (fake, app) = setup();
    let mut k4 = made("k4", DB, Severity::Medium, "novelty", 50, 400);
    k4.ack = Some(acked_by("bob", 500 * S));
    fake.alerts.lock().unwrap().extend([
        made("k1", NGINX, Severity::Low, "novelty", 100, 150),
        made("k2", NGINX, Severity::High, "sensitive-file", 200, 250),
        made("k3", DB, Severity::Critical, "crypto-miner", 300, 350),
        k4,
    ]);
    (fake, app)
}

async fn keys(app: &Router, query: &str) -> Vec<String> {
    let all: Vec<Alert> = get(app, &format!("/v1/alerts{query}"))
        .await
        .ok(JSON)
        .decode();
    all.into_iter().map(|a| a.key).collect()
}

#[tokio::test]
async fn alerts_are_listed_most_recent_first_and_filtered() {
    let (fake, app) = with_alerts();
    let all: Vec<Alert> = get(&app, "/v1/alerts").await.ok(JSON).decode();
    assert_eq!(all, {
        let mut want = fake.alerts.lock().unwrap().clone();
        want.reverse();
        want
    });
    let nginx = workload_segment(NGINX);
    let db = workload_segment(DB);
    for (query, want) in [
        ("".to_string(), &["k4", "k3", "k2", "k1"][..]),
        (format!("?workload={nginx}"), &["k2", "k1"]),
        ("?severity=medium".into(), &["k4", "k3", "k2"]),
        ("?severity=high".into(), &["k3", "k2"]),
        ("?severity=critical".into(), &["k3"]),
        ("?severity=HIGH".into(), &["k3", "k2"]),
        ("?severity=info".into(), &["k4", "k3", "k2", "k1"]),
        ("?rule=novelty".into(), &["k4", "k1"]),
        ("?rule=ptrace".into(), &[]),
        (format!("?since={}", 200 * S), &["k4", "k3", "k2"]),
        (format!("?until={}", 100 * S), &["k4", "k1"]),
        (
            format!("?since={}&until={}", 200 * S, 300 * S),
            &["k4", "k3", "k2"],
        ),
        (format!("?since={0}&until={0}", 250 * S), &["k4", "k2"]),
        ("?acknowledged=true".into(), &["k4"]),
        ("?acknowledged=false".into(), &["k3", "k2", "k1"]),
        ("?limit=2".into(), &["k4", "k3"]),
        ("?limit=0".into(), &[]),
        ("?limit=10000".into(), &["k4", "k3", "k2", "k1"]),
        (
            format!("?workload={db}&severity=high&acknowledged=false"),
            &["k3"],
        ),
        (format!("?workload={nginx}&rule=novelty&limit=5"), &["k1"]),
        ("?workload=%2Fnope".into(), &[]),
    ] {
        assert_eq!(keys(&app, &query).await, want, "{query}");
    }
}

#[tokio::test]
async fn a_bad_alert_filter_is_400() {
    let (_fake, app) = with_alerts();
    for (query, needle) in [
        ("limit=10001", "limit 10001 is above the maximum 10000"),
        ("limit=-1", "limit"),
        ("since=5&until=4", "since (5) is after until (4)"),
        ("severity=urgent", "urgent"),
        ("severity=", "\"\""),
        ("acknowledged=maybe", "acknowledged"),
        ("since=yesterday", "since"),
        ("sevrity=high", "unknown field `sevrity`"),
        ("page=2", "unknown field `page`"),
    ] {
        let detail = get(&app, &format!("/v1/alerts?{query}"))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}

fn ack_uri(key: &str) -> String {
    format!("/v1/alerts/{key}/ack")
}

#[tokio::test]
async fn an_alert_is_acknowledged_once() {
    let (fake, app) = with_alerts();
    let a: Alert = post(
        &app,
        &ack_uri("k2"),
        json!({"comment": "known scanner"}).to_string(),
    )
    .await
    .ok(JSON)
    .decode();
    let ack = a.ack.clone().unwrap();
    assert_eq!(
        (ack.by.as_str(), ack.at_ns, ack.comment.as_str()),
        ("root", NOW, "known scanner")
    );
    // The query shows it acknowledged.
    assert_eq!(keys(&app, "?acknowledged=true").await, ["k4", "k2"]);
    let listed: Vec<Alert> = get(&app, "/v1/alerts?acknowledged=true").await.decode();
    assert_eq!(listed[1], a);
    let v = get(&app, "/v1/alerts?rule=sensitive-file").await.json();
    assert_eq!(v[0]["ack"]["by"], "root");
    let rec = fake.audit.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (rec.action.action.as_str(), rec.action.target.as_str()),
        ("acknowledge", "alert k2")
    );
    assert_eq!(
        (rec.alert_key.as_str(), rec.workload.as_str()),
        ("k2", NGINX)
    );
    assert_eq!(rec.alert_summary, a.summary);

    let before = fake.snapshot();
    post(&app, &ack_uri("k2"), "")
        .await
        .problem(StatusCode::CONFLICT);
    post(&app, &ack_uri("k4"), "")
        .await
        .problem(StatusCode::CONFLICT);
    let detail = post(&app, &ack_uri("k9"), "")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("\"k9\""), "{detail}");
    assert_eq!(fake.snapshot(), before);

    // The comment is optional.
    let a: Alert = post(&app, &ack_uri("k1"), "").await.ok(JSON).decode();
    assert_eq!(a.ack.unwrap().comment, "");
}

// ---------------------------------------------------------------- the live stream

#[tokio::test]
async fn the_stream_needs_a_running_agent() {
    let (_fake, app) = with_alerts();
    let detail = get(&app, "/v1/alerts/stream")
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("baseliner run"), "{detail}");
    // Its filters are checked all the same.
    let running = api::app(Arc::new(Fake::new().with_runtime()));
    for query in ["severity=urgent", "since=5&until=4", "nope=1"] {
        get(&running, &format!("/v1/alerts/stream?{query}"))
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
}

/// An open event stream.
struct Events(Body);

impl Events {
    async fn open(app: &Router, query: &str) -> Events {
        let uri = format!("/v1/alerts/stream{query}");
        let resp = app
            .clone()
            .oneshot(request(Method::GET, &uri, None, Body::empty()))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/event-stream"
        );
        Events(resp.into_body())
    }

    /// The next event's fields (`event`, `id`, `data`), or `None` when none comes within
    /// `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Vec<(String, String)>> {
        let mut text = String::new();
        while !text.contains("\n\n") {
            let frame = tokio::time::timeout(wait, self.0.frame()).await.ok()?;
            let data = frame
                .expect("the stream ended")
                .unwrap()
                .into_data()
                .unwrap();
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        let (event, rest) = text.split_once("\n\n").unwrap();
        assert_eq!(rest, "", "one event per frame");
        Some(
            event
                .lines()
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap();
                    (k.to_string(), v.trim_start().to_string())
                })
                .collect(),
        )
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn new_alerts_are_streamed_as_they_are_raised() {
    let fake = Arc::new(Fake::new().with_runtime());
    let app = app(&fake);
    let query = format!("?workload={}&severity=medium", workload_segment(NGINX));
    let mut events = Events::open(&app, &query).await;
    // Filtered out: another workload, a lower severity.
    fake.stream
        .send(made("d", DB, Severity::Critical, "crypto-miner", 1, 2))
        .unwrap();
    fake.stream
        .send(made("l", NGINX, Severity::Low, "novelty", 1, 2))
        .unwrap();
    let wanted = made("n", NGINX, Severity::High, "sensitive-file", 3, 4);
    fake.stream.send(wanted.clone()).unwrap();
    let fields = events.next(WAIT).await.expect("an event");
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .unwrap_or_else(|| panic!("no {k}: {fields:?}"))
            .1
            .clone()
    };
    assert_eq!(get("event"), "alert");
    assert_eq!(get("id"), "n");
    let data: Alert = serde_json::from_str(&get("data")).unwrap();
    assert_eq!(data, wanted);
    // Nothing more comes for filtered-out alerts.
    fake.stream
        .send(made("d2", DB, Severity::High, "novelty", 5, 6))
        .unwrap();
    assert!(events.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_how_many_it_missed() {
    let fake = Arc::new(Fake::new().with_runtime());
    let app = app(&fake);
    let mut events = Events::open(&app, "").await;
    // The fake's channel holds 16.
    for i in 0..20 {
        let a = made(&format!("a{i}"), NGINX, Severity::High, "novelty", i, i);
        fake.stream.send(a).unwrap();
    }
    let first = events.next(WAIT).await.unwrap();
    assert_eq!(
        first,
        [
            ("event".into(), "lagged".into()),
            ("data".into(), "4".into())
        ]
    );
    let next = events.next(WAIT).await.unwrap();
    assert!(next.contains(&("id".into(), "a4".into())), "{next:?}");
}
