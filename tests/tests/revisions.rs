//! Host revisions end to end (root; runs in CI): when a workload's program changes on disk, the
//! agent learns a new revision beside the old one, and `profile diff --workload` compares them.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use baseliner_tests::{LearnAgent, TestCgroup, live_enabled, run_cli_ok, show_profile};

/// Runs `baseliner ARGS --store STORE`; panics unless it succeeds. Its stdout.
fn cli(store: &Path, args: &[&str]) -> String {
    String::from_utf8(run_cli_ok(store, args)).unwrap()
}

#[test]
fn an_upgraded_program_is_learned_as_a_new_revision() {
    if !live_enabled("an_upgraded_program_is_learned_as_a_new_revision") {
        return;
    }
    let dir = baseliner_tests::temp_dir("revisions");
    let store = dir.join("store");
    let app = dir.join("app");
    let (v1, v2) = (dir.join("v1.conf"), dir.join("v2.conf"));
    std::fs::write(&v1, "1").unwrap();
    std::fs::write(&v2, "2").unwrap();
    let install = |conf: &Path| {
        std::fs::write(
            &app,
            format!("#!/bin/sh\n/bin/cat {} >/dev/null\n", conf.display()),
        )
        .unwrap();
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let cg = TestCgroup::new("revisions").unwrap();
    let agent = LearnAgent::start(&store, &[&cg.path], &["--flush-interval", "0.2"]).unwrap();
    install(&v1);
    cg.run_bash(&format!("{} && {}", app.display(), app.display()));
    std::thread::sleep(Duration::from_millis(500));
    // The upgrade: same program path, new content.
    install(&v2);
    cg.run_bash(&app.display().to_string());
    std::thread::sleep(Duration::from_millis(500));
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");

    let report: serde_json::Value =
        serde_json::from_str(&cli(&store, &["status", "--json"])).unwrap();
    let workload = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == cg.rel.as_str())
        .unwrap_or_else(|| panic!("{report:#}"));
    let mut revisions: Vec<(u64, String)> = workload["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["started_ns"].as_u64().unwrap(),
                r["revision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions.len(), 2, "{workload:#}");
    let (old, new) = (&revisions[0].1, &revisions[1].1);

    let learned = |p: &Path| profiles::generalize::path(p.to_str().unwrap());
    let diff = cli(
        &store,
        &["profile", "diff", old, new, "--workload", &cg.rel],
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains(&learned(&v2))),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.contains(&learned(&v1))),
        "{diff}"
    );
    // The latest revision is what `show` picks by default.
    let shown = show_profile(&store, &cg.rel);
    assert_eq!(shown["revision"], new.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}
