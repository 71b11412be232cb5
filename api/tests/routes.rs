//! Behaviour of the API routes over a fake in-memory agent, driven in process.

mod common;

use std::sync::Arc;

use api::{
    Imported, MAX_BODY_BYTES, ModeEntry, ProfileView,
    client::{Client, ClientError},
    summary::{ModeChange, ModeSource, ProfileListing, StatusReport, WorkloadSummary},
    workload_segment,
};
use axum::{
    Router,
    body::Body,
    http::{Method, StatusCode, header},
};
use common::*;
use profiles::{learning::Status, mode::Mode, store::StoredProfile};
use serde_json::{Value, json};

// ---------------------------------------------------------------- status and workloads

#[tokio::test]
async fn status_lists_every_workload_with_mode_and_progress() {
    let (_fake, app) = setup();
    let a = get(&app, "/v1/status").await.ok(JSON);
    let v = a.json();
    assert_eq!(v["agent"], Value::Null, "no runtime: agent is null");
    assert_eq!(
        v["settings"],
        json!({"default_mode": "learn", "stable_after_secs": 60,
               "auto_alert_after_secs": 3600, "max_entries": 4096})
    );
    let ids: Vec<&str> = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    // Sorted; the cgroup-only workload (no profile, no mode) is not listed.
    assert_eq!(ids, [ORPHAN, DB, NGINX]);

    let report: StatusReport = a.decode();
    let [orphan, db, nginx] = &report.workloads[..] else {
        panic!("{report:?}")
    };
    assert_eq!(
        (orphan.mode, orphan.mode_source, orphan.revisions.len()),
        (Mode::Alert, ModeSource::Set, 0)
    );
    assert_eq!((db.mode, db.mode_source), (Mode::Enforce, ModeSource::Set));
    assert_eq!(
        (nginx.mode, nginx.mode_source),
        (Mode::Learn, ModeSource::Default)
    );
    assert_eq!(v["workloads"][2]["mode_source"], "default");
    assert_eq!(v["workloads"][1]["mode_source"], "set");

    let [a] = &db.revisions[..] else { panic!() };
    assert_eq!(a.revision, "a");
    assert_eq!(a.status, Status::Incomplete);
    assert_eq!(a.stable_for_secs, 1000);
    assert_eq!(a.progress, 1.0);
    assert_eq!(a.incomplete, ["size bound forced widening of files"]);
    assert_eq!((a.started_ns, a.last_change_ns), (8_000 * S, 9_000 * S));

    let [r1, r2] = &nginx.revisions[..] else {
        panic!()
    };
    assert_eq!(r1.revision, "r1");
    assert_eq!(r1.status, Status::Learning);
    assert_eq!(r1.stable_for_secs, 20, "20.5 s, whole seconds");
    assert_eq!(r1.progress, 0.342, "20.5 / 60, three decimals");
    assert_eq!(r1.last_change_ns, NOW - 20 * S - S / 2);
    assert_eq!(r1.started_ns, 9_000 * S);
    assert!(r1.incomplete.is_empty());
    let e = &r1.entries;
    assert_eq!(
        (e.execs, e.lineage, e.files, e.connects, e.listens, e.total),
        (1, 1, 2, 1, 1, 6)
    );
    assert_eq!(r2.revision, "r2");
    assert_eq!(r2.status, Status::Stable);
    assert_eq!(r2.stable_for_secs, 70);
    assert_eq!(r2.progress, 1.0);
    assert_eq!(v["workloads"][2]["revisions"][0]["status"], "learning");
    assert_eq!(v["workloads"][2]["revisions"][1]["status"], "stable");
    assert_eq!(v["workloads"][1]["revisions"][0]["status"], "incomplete");
}

#[tokio::test]
async fn status_progress_follows_the_settings() {
    let mut fake = Fake::new();
    fake.settings.stable_after = std::time::Duration::from_secs(10);
    fake.settings.default_mode = Mode::Alert;
    let app = api::app(Arc::new(fake));
    let report: StatusReport = get(&app, "/v1/status").await.ok(JSON).decode();
    let nginx = &report.workloads[2];
    assert_eq!(
        (nginx.mode, nginx.mode_source),
        (Mode::Alert, ModeSource::Default)
    );
    assert_eq!(nginx.revisions[0].status, Status::Stable);
    assert_eq!(nginx.revisions[0].progress, 1.0);

    let mut fake = Fake::new();
    fake.settings.stable_after = std::time::Duration::ZERO;
    let app = api::app(Arc::new(fake));
    let report: StatusReport = get(&app, "/v1/status").await.ok(JSON).decode();
    let r1 = &report.workloads[2].revisions[0];
    assert_eq!((r1.status, r1.progress), (Status::Stable, 1.0));
}

#[tokio::test]
async fn status_shows_the_running_agent() {
    let fake = Arc::new(Fake::new().with_runtime());
    let app = app(&fake);
    let report: StatusReport = get(&app, "/v1/status").await.ok(JSON).decode();
    assert_eq!(report.agent, fake.runtime);
    let v = get(&app, "/v1/status").await.json();
    assert_eq!(v["agent"]["pid"], 4242);
    assert_eq!(v["agent"]["kernel"]["total"]["seen"], 120);
    assert_eq!(
        v["agent"]["alerts"],
        json!({"scored": 50, "raised": 3, "repeats": 7, "delivered": 2, "failed": 4, "pending": 1})
    );
}

#[tokio::test]
async fn an_empty_agent_has_no_workloads() {
    let app = api::app(Arc::new(Fake::empty()));
    let v = get(&app, "/v1/status").await.ok(JSON).json();
    assert_eq!(v["workloads"], json!([]));
    assert_eq!(get(&app, "/v1/workloads").await.ok(JSON).json(), json!([]));
    assert_eq!(get(&app, "/v1/modes").await.ok(JSON).json(), json!([]));
    assert_eq!(get(&app, "/v1/profiles").await.ok(JSON).json(), json!([]));
}

#[tokio::test]
async fn workloads_list_and_show_match_the_status() {
    let (_fake, app) = setup();
    let report: StatusReport = get(&app, "/v1/status").await.decode();
    let list: Vec<WorkloadSummary> = get(&app, "/v1/workloads").await.ok(JSON).decode();
    assert_eq!(list, report.workloads);
    for w in &report.workloads {
        let uri = format!("/v1/workloads/{}", workload_segment(&w.workload));
        let one: WorkloadSummary = get(&app, &uri).await.ok(JSON).decode();
        assert_eq!(&one, w);
    }
}

#[tokio::test]
async fn an_unknown_workload_is_404() {
    let (_fake, app) = setup();
    let uri = format!("/v1/workloads/{}", workload_segment("/nope.service"));
    let detail = get(&app, &uri).await.problem(StatusCode::NOT_FOUND);
    assert!(
        detail.contains("unknown workload \"/nope.service\""),
        "{detail}"
    );
}

#[tokio::test]
async fn a_workload_with_only_a_cgroup_shows_the_default_mode() {
    let (_fake, app) = setup();
    let uri = format!("/v1/workloads/{}", workload_segment(CRON));
    let w: WorkloadSummary = get(&app, &uri).await.ok(JSON).decode();
    assert_eq!(w.workload, CRON);
    assert_eq!((w.mode, w.mode_source), (Mode::Learn, ModeSource::Default));
    assert!(w.revisions.is_empty());
}

#[tokio::test]
async fn modes_lists_set_and_default_modes() {
    let (_fake, app) = setup();
    let modes: Vec<ModeEntry> = get(&app, "/v1/modes").await.ok(JSON).decode();
    let got: Vec<_> = modes
        .iter()
        .map(|m| (m.workload.as_str(), m.mode, m.source))
        .collect();
    assert_eq!(
        got,
        [
            (ORPHAN, Mode::Alert, ModeSource::Set),
            (DB, Mode::Enforce, ModeSource::Set),
            (NGINX, Mode::Learn, ModeSource::Default),
        ]
    );
    let v = get(&app, "/v1/modes").await.json();
    assert_eq!(
        v[0],
        json!({"workload": ORPHAN, "mode": "alert", "source": "set"})
    );
}

// ---------------------------------------------------------------- setting modes

#[tokio::test]
async fn setting_a_mode_is_reflected_everywhere() {
    let (fake, app) = setup();
    let a = put_mode(&app, NGINX, r#"{"mode":"alert"}"#).await.ok(JSON);
    assert_eq!(
        a.json(),
        json!({"workload": NGINX, "mode": "alert", "previous": null})
    );
    assert_eq!(fake.modes.lock().unwrap().get(NGINX), Some(&Mode::Alert));

    let modes: Vec<ModeEntry> = get(&app, "/v1/modes").await.decode();
    let nginx = modes.iter().find(|m| m.workload == NGINX).unwrap();
    assert_eq!((nginx.mode, nginx.source), (Mode::Alert, ModeSource::Set));

    let uri = format!("/v1/workloads/{}", workload_segment(NGINX));
    let w: WorkloadSummary = get(&app, &uri).await.ok(JSON).decode();
    assert_eq!((w.mode, w.mode_source), (Mode::Alert, ModeSource::Set));
    assert_eq!(w.revisions.len(), 2, "the profiles are still there");

    let change: ModeChange = put_mode(&app, NGINX, r#"{"mode": "enforce"}"#)
        .await
        .ok(JSON)
        .decode();
    assert_eq!(
        change,
        ModeChange {
            workload: NGINX.into(),
            mode: Mode::Enforce,
            previous: Some(Mode::Alert),
        }
    );
    let change: ModeChange = put_mode(&app, DB, r#"{"mode": "learn"}"#)
        .await
        .ok(JSON)
        .decode();
    assert_eq!(change.previous, Some(Mode::Enforce));
    let report: StatusReport = get(&app, "/v1/status").await.decode();
    let db = report.workloads.iter().find(|w| w.workload == DB).unwrap();
    assert_eq!(
        (db.mode, db.mode_source),
        (Mode::Learn, ModeSource::Set),
        "set to the default is still set"
    );
}

#[tokio::test]
async fn workload_ids_round_trip_through_one_path_segment() {
    let odd = "/kubepods/pod a?b#c%d+e&f=g/ü/..";
    let mut fake = Fake::new();
    fake.existing.insert(odd.into());
    let fake = Arc::new(fake);
    let app = app(&fake);
    for id in [NGINX, odd] {
        let seg = workload_segment(id);
        assert!(
            !seg.contains('/') && !seg.contains('?') && !seg.contains('#'),
            "{seg}"
        );
        let change: ModeChange = put_mode(&app, id, r#"{"mode":"alert"}"#)
            .await
            .ok(JSON)
            .decode();
        assert_eq!(change.workload, id);
        let w: WorkloadSummary = get(&app, &format!("/v1/workloads/{seg}"))
            .await
            .ok(JSON)
            .decode();
        assert_eq!((w.workload.as_str(), w.mode), (id, Mode::Alert));
    }
    assert_eq!(
        workload_segment(NGINX),
        "%2Fsystem%2Eslice%2Fnginx%2Eservice"
    );
    let modes = fake.modes.lock().unwrap();
    assert_eq!(modes.get(odd), Some(&Mode::Alert));
    assert_eq!(modes.get(NGINX), Some(&Mode::Alert));
}

#[tokio::test]
async fn an_invalid_mode_is_400_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    for bad in ["Enforce ", "block", "", "ALERT"] {
        let body = json!({ "mode": bad }).to_string();
        let detail = put_mode(&app, NGINX, &body)
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.contains("expected learn, alert, dry-run or enforce"),
            "{detail}"
        );
        assert!(detail.contains(&format!("{bad:?}")), "{detail}");
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_unknown_workload_cannot_get_a_mode() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    let detail = put_mode(&app, "/system.slice/typo.service", r#"{"mode":"alert"}"#)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(
        detail.contains("unknown workload \"/system.slice/typo.service\""),
        "{detail}"
    );
    assert!(detail.contains("baseliner status"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn a_workload_with_only_a_cgroup_can_get_a_mode() {
    let (fake, app) = setup();
    let change: ModeChange = put_mode(&app, CRON, r#"{"mode":"enforce"}"#)
        .await
        .ok(JSON)
        .decode();
    assert_eq!((change.mode, change.previous), (Mode::Enforce, None));
    assert_eq!(fake.modes.lock().unwrap().get(CRON), Some(&Mode::Enforce));
    let report: StatusReport = get(&app, "/v1/status").await.decode();
    let cron = report
        .workloads
        .iter()
        .find(|w| w.workload == CRON)
        .unwrap();
    assert_eq!(
        (cron.mode, cron.mode_source),
        (Mode::Enforce, ModeSource::Set)
    );
}

#[tokio::test]
async fn a_workload_with_only_a_mode_can_change_it() {
    let (_fake, app) = setup();
    let change: ModeChange = put_mode(&app, ORPHAN, r#"{"mode":"learn"}"#)
        .await
        .ok(JSON)
        .decode();
    assert_eq!(change.previous, Some(Mode::Alert));
}

#[tokio::test]
async fn a_malformed_mode_request_is_400_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    for body in [
        "",
        "alert",
        "{\"mode\": \"alert\"",
        "{}",
        r#"{"mode": 3}"#,
        r#"{"mode": null}"#,
        r#"{"mode": "alert", "force": true}"#,
    ] {
        let detail = put_mode(&app, NGINX, body)
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.starts_with("request body is not valid: "),
            "{body}: {detail}"
        );
    }
    let detail = put_mode(&app, NGINX, r#"{"mode": "alert", "force": true}"#)
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("unknown field `force`"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

// ---------------------------------------------------------------- profiles

#[tokio::test]
async fn profiles_lists_every_revision_with_progress() {
    let (_fake, app) = setup();
    let a = get(&app, "/v1/profiles").await.ok(JSON);
    let list: Vec<ProfileListing> = a.decode();
    let got: Vec<_> = list
        .iter()
        .map(|p| {
            (
                p.workload.as_str(),
                p.summary.revision.as_str(),
                p.summary.status,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (DB, "a", Status::Incomplete),
            (NGINX, "r1", Status::Learning),
            (NGINX, "r2", Status::Stable),
        ]
    );
    assert_eq!(list[1].summary.progress, 0.342);
    // The summary is flattened into each listing.
    let v = a.json();
    assert_eq!(v[1]["revision"], "r1");
    assert_eq!(v[1]["stable_for_secs"], 20);
    assert_eq!(v[1]["entries"]["total"], 6);
    assert!(v[1].get("summary").is_none());
}

#[tokio::test]
async fn a_profile_defaults_to_the_latest_revision() {
    let (fake, app) = setup();
    // r1 changed last although r2 sorts after it.
    let view: ProfileView = get(&app, &profile_uri(NGINX, "profile"))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(
        (view.workload.as_str(), view.revision.as_str()),
        (NGINX, "r1")
    );
    let want = fake.profiles.lock().unwrap()[&key(NGINX, "r1")].clone();
    assert_eq!(view.learning, want.learning);
    assert_eq!(view.profile, want.profile);
    assert_eq!(view.summary.status, Status::Learning);
    assert_eq!(view.summary.stable_for_secs, 20);

    // Once r2 changes later, it is the latest.
    fake.profiles
        .lock()
        .unwrap()
        .insert(key(NGINX, "r2"), stored(9_900, NOW - 5 * S));
    let view: ProfileView = get(&app, &profile_uri(NGINX, "profile")).await.decode();
    assert_eq!(view.revision, "r2");
    assert_eq!(view.summary.stable_for_secs, 5);
}

#[tokio::test]
async fn a_profile_revision_can_be_chosen() {
    let (fake, app) = setup();
    let view: ProfileView = get(&app, &profile_uri(NGINX, "profile?revision=r2"))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(view.revision, "r2");
    assert_eq!(view.summary.status, Status::Stable);
    let want = fake.profiles.lock().unwrap()[&key(NGINX, "r2")].clone();
    assert_eq!(view.learning, want.learning);

    let detail = get(&app, &profile_uri(NGINX, "profile?revision=r9"))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(
        detail.contains("\"r9\"") && detail.contains(NGINX),
        "{detail}"
    );
    let detail = get(&app, &profile_uri(NGINX, "profile?revision="))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("invalid revision"), "{detail}");
}

#[tokio::test]
async fn a_missing_profile_is_404() {
    let (_fake, app) = setup();
    for w in ["/nope.service", ORPHAN, CRON] {
        for rest in ["profile", "export"] {
            let detail = get(&app, &profile_uri(w, rest))
                .await
                .problem(StatusCode::NOT_FOUND);
            assert!(
                detail.contains(&format!("no profile for workload {w:?}")),
                "{detail}"
            );
        }
    }
}

// ---------------------------------------------------------------- export

#[tokio::test]
async fn export_is_json_with_a_hash_that_import_accepts() {
    let (fake, app) = setup();
    let a = get(&app, &profile_uri(NGINX, "export")).await.ok(JSON);
    let e = profiles::export::import(a.text()).expect("the export imports");
    assert_eq!((e.workload.as_str(), e.revision.as_str()), (NGINX, "r1"));
    let stored = fake.profiles.lock().unwrap()[&key(NGINX, "r1")].clone();
    assert_eq!(e.profile, stored.profile);
    assert_eq!(e.learning, serde_json::to_value(&stored.learning).unwrap());
    assert_eq!(e.content_sha256.len(), 64);
    assert_eq!(e.content_sha256, e.computed_sha256());
    let v = a.json();
    assert_eq!(v["content_sha256"], e.content_sha256.as_str());
    assert_eq!(v["schema"], profiles::export::EXPORT_SCHEMA);
    // The same bytes as the profiles crate writes.
    assert_eq!(a.text(), profiles::export::to_json(&e));

    let json2 = get(&app, &profile_uri(NGINX, "export?format=json"))
        .await
        .ok(JSON);
    assert_eq!(json2.body, a.body);
}

#[tokio::test]
async fn windows_of_activity_travel_with_the_export() {
    let (source, from) = setup();
    let mut rates = profiles::rates::RateSamples::new(10_000_000_000);
    for i in 0..15 {
        rates.add([0, 20 + i, 1, 0, 0, 0, 1]);
    }
    source
        .rates
        .lock()
        .unwrap()
        .insert(key(NGINX, "r1"), rates.clone());
    let text = export_text(&from, NGINX, "").await;
    let e = profiles::export::import(&text).unwrap();
    assert_eq!(e.rates.as_ref(), Some(&rates));
    let target = Arc::new(Fake::empty());
    import(&app(&target), text).await.ok(JSON);
    assert_eq!(target.rates.lock().unwrap()[&key(NGINX, "r1")], rates);
    // r2 has none: its export has none, and importing it leaves none.
    let text = export_text(&from, NGINX, "?revision=r2").await;
    assert_eq!(profiles::export::import(&text).unwrap().rates, None);
    import(&app(&target), text).await.ok(JSON);
    assert!(!target.rates.lock().unwrap().contains_key(&key(NGINX, "r2")));
}

#[tokio::test]
async fn export_as_yaml_has_the_same_hash() {
    let (_fake, app) = setup();
    let json = get(&app, &profile_uri(NGINX, "export?revision=r2"))
        .await
        .ok(JSON);
    let yaml = get(&app, &profile_uri(NGINX, "export?format=yaml&revision=r2"))
        .await
        .ok("application/yaml");
    assert!(
        !yaml.text().trim_start().starts_with('{'),
        "{}",
        yaml.text()
    );
    let from_json = profiles::export::import(json.text()).unwrap();
    let from_yaml = profiles::export::import(yaml.text()).unwrap();
    assert_eq!(from_yaml.revision, "r2");
    assert_eq!(from_yaml.content_sha256, from_json.content_sha256);
    assert_eq!(from_yaml, from_json);
}

#[tokio::test]
async fn export_in_an_unknown_format_is_400() {
    let (_fake, app) = setup();
    for w in [NGINX, "/nope.service"] {
        let detail = get(&app, &profile_uri(w, "export?format=xml"))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.contains("\"xml\"") && detail.contains("json or yaml"),
            "{detail}"
        );
    }
    let detail = get(&app, &profile_uri(NGINX, "export?format=YAML"))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("\"YAML\""), "{detail}");
}

// ---------------------------------------------------------------- import

#[tokio::test]
async fn an_export_round_trips_through_import() {
    let (source, from) = setup();
    for query in ["", "?format=yaml", "?revision=r2&format=yaml"] {
        let target = Arc::new(Fake::empty());
        let to = app(&target);
        let text = export_text(&from, NGINX, query).await;
        let imported: Imported = import(&to, text).await.ok(JSON).decode();
        let rev = if query.contains("r2") { "r2" } else { "r1" };
        assert_eq!(
            imported,
            Imported {
                workload: NGINX.into(),
                revision: rev.into(),
                entries: 6,
            }
        );
        let want = source.profiles.lock().unwrap()[&key(NGINX, rev)].clone();
        let got = target.profiles.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&key(NGINX, rev)], want, "{query}");
        // And it shows up in the API as the source had it.
        let a: ProfileView = get(&to, &profile_uri(NGINX, "profile")).await.decode();
        let b: ProfileView = get(
            &from,
            &profile_uri(NGINX, &format!("profile?revision={rev}")),
        )
        .await
        .decode();
        assert_eq!(a, b);
    }
}

#[tokio::test]
async fn an_import_replaces_a_profile_with_the_same_key() {
    let (fake, app) = setup();
    let learning = json!({"started_ns": 1, "last_change_ns": {}, "incomplete": []});
    let e = profiles::export::export(NGINX, "r2", learning, &profiles::model::Profile::default());
    let imported: Imported = import(&app, profiles::export::to_json(&e))
        .await
        .ok(JSON)
        .decode();
    assert_eq!(imported.entries, 0);
    let p = fake.profiles.lock().unwrap()[&key(NGINX, "r2")].clone();
    assert!(p.profile.is_empty());
    assert_eq!(p.learning, profiles::learning::Learning::new(1));
    assert_eq!(fake.profiles.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn an_import_without_learning_state_is_incomplete() {
    let target = Arc::new(Fake::empty());
    let app = app(&target);
    let e = profiles::export::export("web", "1", Value::Null, &profile());
    import(&app, profiles::export::to_json(&e)).await.ok(JSON);
    let p: StoredProfile = target.profiles.lock().unwrap()[&key("web", "1")].clone();
    assert_eq!(p.profile, profile());
    assert_eq!(p.learning.incomplete, ["imported without learning state"]);
    let view: ProfileView = get(&app, &profile_uri("web", "profile")).await.decode();
    assert_eq!(view.summary.status, Status::Incomplete);
}

#[tokio::test]
async fn a_tampered_export_is_400_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    let text = export_text(&app, NGINX, "").await;
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["profile"]["files"][0][0]["path"] = json!("/etc/shadow");
    let detail = import(&app, v.to_string())
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.starts_with("export rejected: "), "{detail}");
    assert!(detail.contains("content hash mismatch"), "{detail}");
    assert!(
        detail.contains(v["content_sha256"].as_str().unwrap()),
        "{detail}"
    );

    let yaml = export_text(&app, NGINX, "?format=yaml").await;
    let edited = yaml.replace("port: 5432", "port: 5433");
    assert_ne!(edited, yaml);
    let detail = import(&app, edited).await.problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("content hash mismatch"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn a_bad_export_is_400_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    let text = export_text(&app, NGINX, "").await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xff, 0xfe, b'{'], "not UTF-8"),
        (Vec::new(), "export rejected: malformed"),
        (
            b"{\"schema\": 1,".to_vec(),
            "export rejected: malformed JSON",
        ),
        (b"schema: [".to_vec(), "export rejected: malformed YAML"),
        (
            text.replace("\"schema\": 1", "\"schema\": 2").into_bytes(),
            "unsupported export schema 2",
        ),
        (
            text.as_bytes()[..text.len() / 2].to_vec(),
            "export rejected: malformed JSON",
        ),
    ];
    for (body, needle) in cases {
        let detail = import(&app, body).await.problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{needle}: {detail}");
    }
    // An empty revision passes the export checks but cannot be a key.
    let e = profiles::export::export("web", "", Value::Null, &profile());
    let detail = import(&app, profiles::export::to_json(&e))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("invalid revision"), "{detail}");
    // Invalid content with a matching hash.
    let mut bad = profile();
    bad.files.values_mut().next().unwrap().count = 0;
    let e = profiles::export::export("web", "1", Value::Null, &bad);
    let detail = import(&app, profiles::export::to_json(&e))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("seen count is 0"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    let text = export_text(&app, NGINX, "").await;
    // A valid export padded with whitespace just past the limit.
    let mut big = text.into_bytes();
    big.resize(MAX_BODY_BYTES + 1, b' ');
    let detail = import(&app, big)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("length limit"), "{detail}");
    let big = format!(r#"{{"mode": "alert"{}}}"#, " ".repeat(MAX_BODY_BYTES));
    put_mode(&app, NGINX, &big)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(fake.snapshot(), before);

    // Exactly at the limit is accepted.
    let mut text = export_text(&app, NGINX, "").await.into_bytes();
    text.resize(MAX_BODY_BYTES, b' ');
    import(&app, text).await.ok(JSON);
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn an_unknown_route_is_404_problem() {
    let (_fake, app) = setup();
    for uri in [
        "/",
        "/v1",
        "/v2/status",
        "/v1/status/extra",
        "/v1/workloads/a/b",
    ] {
        let detail = get(&app, uri).await.problem(StatusCode::NOT_FOUND);
        assert_eq!(detail, format!("no route {uri}"));
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_problem() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    for (method, uri, allowed) in [
        (Method::POST, "/v1/status".to_string(), "GET"),
        (Method::DELETE, profile_uri(NGINX, "mode"), "PUT"),
        (Method::GET, profile_uri(NGINX, "mode"), "PUT"),
        (Method::GET, "/v1/profiles/import".to_string(), "POST"),
    ] {
        let a = send(&app, method.clone(), &uri, Body::empty()).await;
        let detail = a.problem(StatusCode::METHOD_NOT_ALLOWED);
        assert!(detail.contains(method.as_str()), "{detail}");
        assert!(detail.contains(uri.as_str()), "{detail}");
        let allow = a.headers.get(header::ALLOW).unwrap().to_str().unwrap();
        assert!(allow.contains(allowed), "{allow}");
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400_problem() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    get(&app, "/v1/workloads/%FF")
        .await
        .problem(StatusCode::BAD_REQUEST);
    put_mode_raw(&app, "/v1/workloads/%FF/mode").await;
    assert_eq!(fake.snapshot(), before);
}

async fn put_mode_raw(app: &Router, uri: &str) {
    send(app, Method::PUT, uri, r#"{"mode":"alert"}"#)
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_agent_failure_is_500_problem() {
    let mut fake = Fake::new();
    fake.broken = true;
    let app = api::app(Arc::new(fake));
    for uri in [
        "/v1/status".to_string(),
        "/v1/workloads".to_string(),
        "/v1/modes".to_string(),
        "/v1/profiles".to_string(),
        profile_uri(NGINX, "profile"),
        profile_uri(NGINX, "export"),
    ] {
        let detail = get(&app, &uri)
            .await
            .problem(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(detail, "store: disk on fire");
    }
    put_mode(&app, NGINX, r#"{"mode":"alert"}"#)
        .await
        .problem(StatusCode::INTERNAL_SERVER_ERROR);
}

// ---------------------------------------------------------------- the in-process client

#[tokio::test]
async fn the_local_client_answers_like_the_router() {
    let (fake, app) = setup();
    let client = Client::Local(app.clone());
    assert!(!client.is_agent());
    let report: StatusReport = client.get("/v1/status").await.unwrap();
    assert_eq!(
        report,
        get(&app, "/v1/status").await.decode::<StatusReport>()
    );

    let path = format!("/v1/workloads/{}/mode", workload_segment(NGINX));
    let change: ModeChange = client
        .send(Method::PUT, &path, &json!({"mode": "alert"}))
        .await
        .unwrap();
    assert_eq!(change.mode, Mode::Alert);
    assert_eq!(fake.modes.lock().unwrap().get(NGINX), Some(&Mode::Alert));

    let text = export_text(&app, DB, "?format=yaml").await;
    let target = Arc::new(Fake::empty());
    let local = Client::Local(api::app(target.clone()));
    let body = local
        .call(Method::POST, "/v1/profiles/import", Some(text.into_bytes()))
        .await
        .unwrap();
    let imported: Imported = serde_json::from_slice(&body).unwrap();
    assert_eq!((imported.workload.as_str(), imported.entries), (DB, 6));
    assert_eq!(
        target.profiles.lock().unwrap()[&key(DB, "a")],
        fake.profiles.lock().unwrap()[&key(DB, "a")]
    );
}

#[tokio::test]
async fn the_local_client_reports_api_errors() {
    let (_fake, app) = setup();
    let client = Client::Local(app);
    let path = format!("/v1/workloads/{}/mode", workload_segment(NGINX));
    let err = client
        .send::<ModeChange>(Method::PUT, &path, &json!({"mode": "block"}))
        .await
        .unwrap_err();
    let ClientError::Api(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(
        e.detail
            .contains("expected learn, alert, dry-run or enforce")
    );
    assert_eq!(err.to_string(), e.detail);

    let err = client.get::<Value>("/v1/nope").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api(e) if e.status == StatusCode::NOT_FOUND && e.detail == "no route /v1/nope"),
        "{err:?}"
    );
    // An answer of the wrong shape is a decode error.
    let err = client.get::<Vec<u32>>("/v1/status").await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}
