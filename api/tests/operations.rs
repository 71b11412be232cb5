//! Operations: health probes and Prometheus metrics.

mod common;

use std::{collections::BTreeMap, sync::Arc};

use axum::http::StatusCode;
use common::*;
use scorer::alert::Severity;

#[tokio::test]
async fn probes_answer() {
    let (_fake, app) = setup();
    assert_eq!(
        get(&app, "/healthz")
            .await
            .ok("text/plain; charset=utf-8")
            .text(),
        "ok\n"
    );
    assert_eq!(
        get(&app, "/readyz")
            .await
            .ok("text/plain; charset=utf-8")
            .text(),
        "ready\n"
    );
}

#[tokio::test]
async fn a_broken_store_is_not_ready_but_alive() {
    let mut fake = Fake::new();
    fake.broken = true;
    let app = app(&Arc::new(fake));
    let detail = get(&app, "/readyz")
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(detail, "not ready: store: disk on fire");
    get(&app, "/healthz").await.ok("text/plain; charset=utf-8");
    get(&app, "/metrics")
        .await
        .problem(StatusCode::INTERNAL_SERVER_ERROR);
}

/// The samples of a Prometheus text exposition by `name{labels}`, checking every line: comments
/// are `# HELP name text` or `# TYPE name kind` (once per family, before its samples), samples
/// are `name{labels} value`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    fn is_name(s: &str) -> bool {
        let mut cs = s.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut out = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    assert!(text.ends_with('\n'), "{text}");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (what, name, rest) = (words.next().unwrap(), words.next().unwrap(), words.next());
            assert!(is_name(name), "{line}");
            match what {
                "HELP" => assert!(rest.is_some_and(|h| !h.is_empty()), "{line}"),
                "TYPE" => {
                    let kind = rest.unwrap();
                    assert!(["counter", "gauge"].contains(&kind), "{line}");
                    let before = typed.insert(name.to_string(), kind.to_string());
                    assert!(before.is_none(), "{name} is typed twice");
                }
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(value.is_finite(), "{line}");
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{line:?}"));
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                    assert!(is_name(k), "{line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
                name
            }
        };
        assert!(is_name(name), "{line}");
        assert!(
            typed.contains_key(name),
            "{name} has no TYPE before its samples"
        );
        if typed[name] == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    out
}

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

#[tokio::test]
async fn metrics_describe_workloads_reviews_and_alerts() {
    let (fake, s) = seeded();
    {
        let mut alerts = fake.alerts.lock().unwrap();
        let mut low = alert(DB, "/tmp/minerd", 200);
        (low.key, low.severity) = ("low".into(), Severity::Low);
        alerts.push(low.clone());
        low.key = "low2".into();
        low.ack = Some(acked_by("bob", 1));
        alerts.push(low);
    }
    let app = app(&fake);
    let a = get(&app, "/metrics").await.ok(PROMETHEUS);
    assert!(
        a.text()
            .contains("baseliner_workloads{mode=\"enforce\"} 1\n"),
        "{}",
        a.text()
    );
    let m = samples(a.text());
    for (mode, n) in [
        ("learn", 1.0),
        ("alert", 1.0),
        ("dry-run", 0.0),
        ("enforce", 1.0),
    ] {
        assert_eq!(
            m[&format!("baseliner_workloads{{mode=\"{mode}\"}}")],
            n,
            "{mode}"
        );
    }
    let seeded_severity = fake.alerts.lock().unwrap()[0].severity;
    for sev in Severity::ALL {
        let want = match sev {
            Severity::Low => 2.0,
            s if s == seeded_severity => 1.0,
            _ => 0.0,
        };
        assert_eq!(
            m[&format!("baseliner_alerts{{severity=\"{sev}\"}}")],
            want,
            "{sev}"
        );
    }
    assert_eq!(m["baseliner_alerts_unacknowledged"], 2.0);
    assert_eq!(m["baseliner_reviews_pending"], 3.0);
    // Without a running agent there are no runtime metrics.
    assert!(
        !m.keys().any(|k| k.starts_with("baseliner_outbox")),
        "{m:?}"
    );
    assert!(!m.contains_key("baseliner_process_resident_memory_bytes"));

    // A decision leaves fewer pending.
    post(&app, &format!("/v1/reviews/{}/reject", s.db.id), "")
        .await
        .ok(JSON);
    let m = samples(get(&app, "/metrics").await.ok(PROMETHEUS).text());
    assert_eq!(m["baseliner_reviews_pending"], 2.0);
}

#[tokio::test]
async fn metrics_of_a_running_agent() {
    let mut fake = Fake::new().with_runtime();
    let rt = fake.runtime.as_mut().unwrap();
    rt.kernel = serde_json::json!({
        "exec": {"seen": 10, "emitted": 8, "deduplicated": 2, "dropped": 0},
        "connect": {"seen": 5, "emitted": 5, "deduplicated": 0, "dropped": 1},
        "total": {"seen": 15, "emitted": 13, "deduplicated": 2, "dropped": 1},
    });
    rt.enforcement.kernel.exec_killed = 3;
    rt.ring.pending_bytes = 4096;
    let app = app(&Arc::new(fake));
    let m = samples(get(&app, "/metrics").await.ok(PROMETHEUS).text());
    for (series, want) in [
        ("baseliner_outbox_depth", 1.0),
        ("baseliner_delivery_failures_total", 4.0),
        ("baseliner_deliveries_total", 2.0),
        ("baseliner_alerts_raised_total", 3.0),
        ("baseliner_events_recorded_total", 100.0),
        ("baseliner_exec_killed_total", 3.0),
        ("baseliner_ring_pending_bytes", 4096.0),
        ("baseliner_start_time_seconds", 9_500.0),
        ("baseliner_kernel_events_seen_total{kind=\"exec\"}", 10.0),
        (
            "baseliner_kernel_events_dropped_total{kind=\"connect\"}",
            1.0,
        ),
    ] {
        assert_eq!(m.get(series), Some(&want), "{series}");
    }
    // The total is not a kind.
    assert!(!m.keys().any(|k| k.contains("kind=\"total\"")), "{m:?}");
    assert!(m["baseliner_process_resident_memory_bytes"] > 0.0);
    assert!(m["baseliner_process_cpu_seconds_total"] >= 0.0);
}

#[test]
fn the_exposition_check_can_fail() {
    for bad in [
        "baseliner_x 1\n",                                      // no TYPE
        "# TYPE baseliner_x gauge\nbaseliner_x one\n",          // not a number
        "# TYPE baseliner_x gauge\nbaseliner_x{a=b} 1\n",       // unquoted label
        "# TYPE baseliner_x counter\nbaseliner_x 1\n",          // counter without _total
        "# TYPE baseliner_x gauge\n# TYPE baseliner_x gauge\n", // typed twice
    ] {
        assert!(std::panic::catch_unwind(|| samples(bad)).is_err(), "{bad}");
    }
}
