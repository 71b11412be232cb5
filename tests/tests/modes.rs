//! Modes and status through the running agent's API (root; runs in CI): `baseliner mode set`
//! reaches the running agent over its unix socket and applies at once; bad input changes
//! nothing; with the agent stopped the CLI reads the same state from the store.

use std::{os::unix::fs::PermissionsExt, path::Path};

use baseliner_tests::{LearnAgent, TestCgroup, entry_fields, live_enabled, run_cli, show_profile};

/// Runs `baseliner ARGS --store STORE`; returns (success, stdout, stderr).
fn cli(store: &Path, args: &[&str]) -> (bool, String, String) {
    let out = run_cli(store, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path as the profile keeps it.
fn as_learned(p: &Path) -> String {
    profiles::generalize::path(p.to_str().unwrap())
}

#[test]
fn modes_apply_to_the_running_agent_at_once() {
    if !live_enabled("modes_apply_to_the_running_agent_at_once") {
        return;
    }
    let dir = baseliner_tests::temp_dir("modes");
    let store = dir.join("store");
    let (learned, unseen) = (dir.join("learned.txt"), dir.join("unseen.txt"));
    std::fs::write(&learned, "x").unwrap();
    std::fs::write(&unseen, "y").unwrap();
    let cg = TestCgroup::new("modes").unwrap();
    // A process that starts before the agent is learned from /proc at start-up.
    let mut early = cg.command("/bin/sleep").arg("30").spawn().unwrap();

    let agent = LearnAgent::start(&store, &[&cg.path], &["--flush-interval", "0.2"]).unwrap();
    let socket = store.join("api.sock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600, "the API socket is root-only");
    assert_eq!(mode(&store), 0o700, "the store is root-only");

    cg.run_bash(&format!("/bin/cat {} >/dev/null", learned.display()));
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (ok, out, err) = cli(&store, &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("agent: running"), "{out}");
    assert!(out.contains(&cg.rel), "{out}");
    assert!(out.contains("learn*"), "default mode is marked: {out}");
    assert!(out.contains("learning: no new entry for"), "{out}");

    // Bad input: clear errors, nothing changes.
    let (ok, _, err) = cli(&store, &["mode", "set", &cg.rel, "block"]);
    assert!(!ok);
    assert!(
        err.contains("expected learn, alert, dry-run or enforce"),
        "{err}"
    );
    let (ok, _, err) = cli(&store, &["mode", "set", "/no-such-workload", "alert"]);
    assert!(!ok);
    assert!(
        err.contains("unknown workload \"/no-such-workload\""),
        "{err}"
    );
    let (_, out, _) = cli(&store, &["mode", "list", "--json"]);
    let modes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        modes,
        serde_json::json!([{"workload": cg.rel, "mode": "learn", "source": "default"}])
    );

    // Switch to alert through the running agent: the next events are not learned.
    let (ok, out, err) = cli(&store, &["mode", "set", &cg.rel, "alert"]);
    assert!(ok, "{err}");
    assert!(out.contains("applied by the running agent"), "{out}");
    cg.run_bash(&format!("/bin/cat {} >/dev/null", unseen.display()));
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    let _ = early.kill();
    let _ = early.wait();

    // The agent is gone: the CLI reads the store itself and sees the same state.
    let (ok, out, err) = cli(&store, &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("agent: not running"), "{out}");
    let (_, out, _) = cli(&store, &["mode", "list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&cg.rel) && l.contains("alert") && l.contains("set")),
        "{out}"
    );
    let shown = show_profile(&store, &cg.rel);
    let learned_files = entry_fields(&shown, "files", "path");
    assert!(
        learned_files.contains(&as_learned(&learned)),
        "{learned_files:?}"
    );
    assert!(
        !learned_files.contains(&as_learned(&unseen)),
        "learned after the switch to alert: {learned_files:?}"
    );
    let execs = entry_fields(&shown, "execs", "path");
    assert!(
        execs.iter().any(|e| e.ends_with("/sleep")),
        "a process running before the agent started is in the profile: {execs:?}"
    );
}
