//! The review queue over a real store: listing, approving (exactly or as a covering pattern),
//! rejecting, deciding in bulk, and the approvals in effect.

mod common;

use api::workload_segment;
use axum::{
    Router,
    http::{Method, StatusCode},
};
use common::*;
use profiles::review::{Approval, Proposal, State};
use serde_json::{Value, json};

fn review_uri(id: &str, action: &str) -> String {
    format!("/v1/reviews/{id}/{action}")
}

async fn reviews(app: &Router, query: &str) -> Vec<Proposal> {
    get(app, &format!("/v1/reviews{query}"))
        .await
        .ok(JSON)
        .decode()
}

fn ids(ps: &[Proposal]) -> Vec<&str> {
    ps.iter().map(|p| p.id.as_str()).collect()
}

/// Decides `id` (`approve` or `reject`) with `body`.
async fn decide(app: &Router, id: &str, action: &str, body: Value) -> Answer {
    post(app, &review_uri(id, action), body.to_string()).await
}

#[tokio::test]
async fn the_queue_is_listed_and_filtered() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let all = reviews(&app, "").await;
    // Pending, most recently seen first.
    assert_eq!(ids(&all), [&s.db.id, &s.net.id, &s.tool.id]);
    assert!(all.iter().all(|p| p.state == State::Pending));
    assert_eq!(all[2], s.tool);
    assert_eq!(all[2].alerts, ["alert-key"]);
    assert_eq!(all[2].examples.len(), 1);

    let nginx = format!("?workload={}", workload_segment(NGINX));
    assert_eq!(ids(&reviews(&app, &nginx).await), [&s.net.id, &s.tool.id]);
    assert_eq!(ids(&reviews(&app, "?state=pending").await).len(), 3);
    assert!(reviews(&app, "?state=approved").await.is_empty());

    decide(&app, &s.net.id, "approve", json!({})).await.ok(JSON);
    decide(&app, &s.db.id, "reject", json!({})).await.ok(JSON);
    // Pending first, then approved, then rejected.
    assert_eq!(
        ids(&reviews(&app, "").await),
        [&s.tool.id, &s.net.id, &s.db.id]
    );
    assert_eq!(ids(&reviews(&app, "?state=approved").await), [&s.net.id]);
    assert_eq!(ids(&reviews(&app, "?state=rejected").await), [&s.db.id]);
    let q = format!("{nginx}&state=rejected");
    assert!(reviews(&app, &q).await.is_empty());
    let q = format!("{nginx}&state=pending");
    assert_eq!(ids(&reviews(&app, &q).await), [&s.tool.id]);
    assert!(reviews(&app, "?workload=%2Fnope").await.is_empty());

    for bad in ["bogus", "Pending", ""] {
        let detail = get(&app, &format!("/v1/reviews?state={bad}"))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert_eq!(
            detail,
            format!("invalid state: {bad:?} is not pending, approved or rejected")
        );
    }
    get(&app, "/v1/reviews?status=pending")
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_proposal_is_shown() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let p: Proposal = get(&app, &format!("/v1/reviews/{}", s.net.id))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(p, s.net);
    assert_eq!(p.entry.to_string(), "connect tcp 10.1.2.3:443");
    let detail = get(&app, "/v1/reviews/0123456789abcdef")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(detail, "no review proposal \"0123456789abcdef\"");
}

#[tokio::test]
async fn approving_exactly_adds_the_entry_to_the_profile() {
    let (fake, s) = seeded();
    let app = app(&fake);
    assert!(
        !fake
            .latest_profile(NGINX)
            .unwrap()
            .covers_entry(&s.tool.entry)
    );
    let a: Approval = decide(&app, &s.tool.id, "approve", json!({"comment": "our tool"}))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(
        (a.entry.clone(), a.exact.clone()),
        (s.tool.entry.clone(), s.tool.entry.clone())
    );
    assert_eq!(
        (
            a.proposal_id.as_str(),
            a.workload.as_str(),
            a.reviewer.as_str()
        ),
        (s.tool.id.as_str(), NGINX, "root")
    );
    assert_eq!((a.comment.as_str(), a.at_ns), ("our tool", NOW));
    assert!(
        fake.latest_profile(NGINX)
            .unwrap()
            .covers_entry(&s.tool.entry)
    );
    let p: Proposal = get(&app, &format!("/v1/reviews/{}", s.tool.id))
        .await
        .decode();
    assert_eq!(p.state, State::Approved);
    let d = p.decision.unwrap();
    assert_eq!(
        (d.reviewer.as_str(), d.comment.as_str()),
        ("root", "our tool")
    );
    assert_eq!(d.approved_as, Some(s.tool.entry.clone()));
    assert_eq!(
        fake.audit.lock().unwrap().last().unwrap().action.target,
        format!("{}: our tool", s.tool.entry)
    );

    // Deciding again is a conflict that changes nothing.
    let before = fake.snapshot();
    for action in ["approve", "reject"] {
        let detail = decide(&app, &s.tool.id, action, json!({}))
            .await
            .problem(StatusCode::CONFLICT);
        assert_eq!(
            detail,
            format!("review proposal {} was already approved", s.tool.id)
        );
    }
    assert_eq!(fake.snapshot(), before);
    // An unknown proposal is 404.
    let detail = decide(&app, "0123456789abcdef", "approve", json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("no review proposal"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn approving_as_a_covering_pattern_covers_more() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let a: Approval = decide(
        &app,
        &s.tool.id,
        "approve",
        json!({"comment": "app tools", "pattern": "/opt/app/bin/*"}),
    )
    .await
    .ok(JSON)
    .decode();
    assert_eq!(a.entry.to_string(), "exec /opt/app/bin/* <any>");
    assert_eq!(a.exact, s.tool.entry);
    let profile = fake.latest_profile(NGINX).unwrap();
    assert!(profile.covers_entry(&s.tool.entry));
    let sibling = event_entry(&exec(NGINX, 1, &["/opt/app/bin/other", "-y"]));
    assert!(profile.covers_entry(&sibling));
    let elsewhere = event_entry(&exec(NGINX, 1, &["/opt/other/tool"]));
    assert!(!profile.covers_entry(&elsewhere));
    assert_eq!(
        fake.audit.lock().unwrap().last().unwrap().action.target,
        format!(
            "exec /opt/app/bin/* <any> (proposed: {}): app tools",
            s.tool.entry
        )
    );

    // A CIDR with the port.
    let a: Approval = decide(
        &app,
        &s.net.id,
        "approve",
        json!({"pattern": "10.0.0.0/8:443"}),
    )
    .await
    .ok(JSON)
    .decode();
    assert_eq!(a.entry.to_string(), "connect tcp 10.0.0.0/8:443");
    let profile = fake.latest_profile(NGINX).unwrap();
    assert!(profile.covers_entry(&s.net.entry));
    assert!(profile.covers_entry(&event_entry(&connect(NGINX, 1, "10.9.9.9", 443))));
    assert!(!profile.covers_entry(&event_entry(&connect(NGINX, 1, "10.9.9.9", 80))));
    assert!(!profile.covers_entry(&event_entry(&connect(NGINX, 1, "11.0.0.1", 443))));
}

#[tokio::test]
async fn a_pattern_that_does_not_cover_the_entry_is_400_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (p, pattern, needle) in [
        (&s.tool, "/usr/bin/*", "does not cover the proposed entry"),
        (
            &s.tool,
            "connect 10.0.0.0/8",
            "cannot approve the exec entry",
        ),
        (&s.tool, "opt/app/*", "is relative"),
        (&s.tool, "   ", "the pattern is empty"),
        (&s.net, "10.0.0.0/8:80", "does not cover the proposed entry"),
        (
            &s.net,
            "192.168.0.0/16",
            "does not cover the proposed entry",
        ),
        (&s.net, "10.0.0.0/99", "out of range"),
        (
            &s.net,
            "[fd00::/8]",
            "is an IPv6 address but the entry's is IPv4",
        ),
    ] {
        let detail = decide(&app, &p.id, "approve", json!({"pattern": pattern}))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.starts_with(&format!("invalid pattern {pattern:?}: "))
                && detail.contains(needle),
            "{pattern}: {detail}"
        );
    }
    assert_eq!(fake.snapshot(), before);
    assert!(
        !fake
            .latest_profile(NGINX)
            .unwrap()
            .covers_entry(&s.tool.entry)
    );
}

#[tokio::test]
async fn rejecting_keeps_the_entry_out() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    // A rejection takes no pattern.
    let detail = decide(
        &app,
        &s.tool.id,
        "reject",
        json!({"pattern": "/opt/app/bin/*"}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    assert_eq!(detail, "a rejection takes no pattern");
    assert_eq!(fake.snapshot(), before);

    let p: Proposal = decide(&app, &s.tool.id, "reject", json!({"comment": "not ours"}))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(p.state, State::Rejected);
    let d = p.decision.unwrap();
    assert_eq!(
        (d.reviewer.as_str(), d.comment.as_str(), d.at_ns),
        ("root", "not ours", NOW)
    );
    assert_eq!(d.approved_as, None);
    assert!(
        !fake
            .latest_profile(NGINX)
            .unwrap()
            .covers_entry(&s.tool.entry)
    );
    assert_eq!(fake.snapshot().profiles, before.profiles);
    let rec = fake.audit.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (rec.action.action.as_str(), rec.action.target),
        ("reject", format!("{}: not ours", s.tool.entry))
    );
    let detail = decide(&app, &s.tool.id, "reject", json!({}))
        .await
        .problem(StatusCode::CONFLICT);
    assert!(detail.ends_with("was already rejected"), "{detail}");
    let detail = decide(&app, "0123456789abcdef", "reject", json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("no review proposal"), "{detail}");
    // A rejected proposal is still counted, and stays rejected.
    fake.propose(&exec(NGINX, 500, &[TOOL, "-x"]));
    let p = profiles::review::get(fake.store(), &s.tool.id).unwrap();
    assert_eq!((p.state, p.count), (State::Rejected, 2));
}

async fn bulk(app: &Router, body: Value) -> Answer {
    post(app, "/v1/reviews/bulk", body.to_string()).await
}

#[tokio::test]
async fn bulk_decisions_say_how_each_went() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let out = bulk(
        &app,
        json!({"action": "approve", "ids": [s.tool.id, "nope", s.net.id], "comment": "ok"}),
    )
    .await
    .ok(JSON)
    .json();
    assert_eq!(
        out,
        json!([
            {"id": s.tool.id, "outcome": "approved", "ok": true},
            {"id": "nope", "outcome": "no review proposal \"nope\"", "ok": false},
            {"id": s.net.id, "outcome": "approved", "ok": true},
        ])
    );
    let profile = fake.latest_profile(NGINX).unwrap();
    assert!(profile.covers_entry(&s.tool.entry) && profile.covers_entry(&s.net.entry));
    let out = bulk(
        &app,
        json!({"action": "reject", "ids": [s.db.id, s.tool.id]}),
    )
    .await
    .ok(JSON)
    .json();
    assert_eq!(
        out[0],
        json!({"id": s.db.id, "outcome": "rejected", "ok": true})
    );
    assert_eq!(out[1]["ok"], false);
    assert!(
        out[1]["outcome"]
            .as_str()
            .unwrap()
            .ends_with("already approved"),
        "{out}"
    );
    let actions: Vec<String> = fake
        .audit
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.action.action, r.workload))
        .collect();
    assert_eq!(
        actions,
        [
            format!("approve {NGINX}"),
            format!("approve {NGINX}"),
            format!("reject {DB}")
        ]
    );
}

#[tokio::test]
async fn a_bad_bulk_request_is_400_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    let too_many: Vec<String> = (0..1001).map(|i| format!("id{i}")).collect();
    for (body, needle) in [
        (
            json!({"action": "accept", "ids": [s.tool.id]}),
            "unknown action \"accept\": expected approve or reject",
        ),
        (
            json!({"action": "approve", "ids": []}),
            "ids must name 1 to 1000 proposals, not 0",
        ),
        (
            json!({"action": "reject", "ids": too_many}),
            "ids must name 1 to 1000 proposals, not 1001",
        ),
        (json!({"ids": [s.tool.id]}), "missing field `action`"),
        (json!({"action": "approve"}), "missing field `ids`"),
        (
            json!({"action": "approve", "ids": [s.tool.id], "pattern": "/opt/**"}),
            "unknown field `pattern`",
        ),
    ] {
        let detail = bulk(&app, body).await.problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{needle}: {detail}");
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn approvals_in_effect_are_listed() {
    let (fake, s) = seeded();
    let app = app(&fake);
    assert_eq!(get(&app, "/v1/approvals").await.ok(JSON).json(), json!([]));
    let tool: Approval = decide(&app, &s.tool.id, "approve", json!({}))
        .await
        .decode();
    let db: Approval = decide(&app, &s.db.id, "approve", json!({"comment": "psql"}))
        .await
        .decode();
    decide(&app, &s.net.id, "reject", json!({})).await.ok(JSON);
    let all: Vec<Approval> = get(&app, "/v1/approvals").await.ok(JSON).decode();
    // By workload, then in time order.
    assert_eq!(all, [db.clone(), tool.clone()]);
    let uri = format!("/v1/approvals?workload={}", workload_segment(NGINX));
    let nginx: Vec<Approval> = get(&app, &uri).await.ok(JSON).decode();
    assert_eq!(nginx, [tool]);
    get(&app, "/v1/approvals?state=approved")
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deciding_needs_a_reviewer_and_names_them() {
    let (fake, s) = seeded();
    let app = secured(&fake);
    let body = json!({"comment": "checked"}).to_string();
    let uri = review_uri(&s.tool.id, "approve");
    let viewer = token(api::auth::Role::Viewer);
    send_as(&app, &viewer, Method::POST, &uri, body.clone())
        .await
        .problem(StatusCode::FORBIDDEN);
    let reviewer = token(api::auth::Role::Reviewer);
    let a: Approval = send_as(&app, &reviewer, Method::POST, &uri, body)
        .await
        .ok(JSON)
        .decode();
    assert_eq!(a.reviewer, "rita");
    let approvals: Vec<Approval> = send_as(&app, &viewer, Method::GET, "/v1/approvals", "")
        .await
        .ok(JSON)
        .decode();
    assert_eq!(approvals, [a]);
}
