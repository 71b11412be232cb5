//! Learn mode end to end (root; runs in CI): `baseliner run` records a workload in its own cgroup
//! into the store; the profile lists exactly its programs, files and destinations; it survives
//! an agent restart and a `kill -9`; running the same workload again adds no entries.

use std::{
    collections::BTreeSet,
    io::BufRead,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use baseliner_tests::{
    TestCgroup, baseliner_bin, entry_fields, live_enabled, run_cli, run_cli_ok, show_profile,
};

fn start_agent(store: &Path, cg: &TestCgroup, extra: &[&str]) -> Child {
    let mut agent = Command::new(baseliner_bin())
        .args(["run", "--flush-interval", "0.2", "--store"])
        .arg(store)
        .arg("--cgroup")
        .arg(&cg.path)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = baseliner_tests::wait_until_capturing(agent.stderr.take().unwrap());
    // Keep draining stderr so the agent never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    agent
}

/// Every entry key of a profile, as text, for set comparisons.
fn entry_keys(p: &serde_json::Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for kind in ["execs", "lineage", "files", "connects", "listens"] {
        for pair in p["profile"][kind].as_array().unwrap() {
            keys.insert(format!("{kind} {}", pair[0]));
        }
    }
    keys
}

#[test]
fn a_learned_profile_is_exact_durable_and_stable() {
    if !live_enabled("a_learned_profile_is_exact_durable_and_stable") {
        return;
    }
    let dir = baseliner_tests::temp_dir("learn");
    let store: PathBuf = dir.join("store");
    let data = dir.join("data.txt");
    std::fs::write(&data, "x\n").unwrap();
    let port = baseliner_tests::loopback_listener();
    let cg = TestCgroup::new("learn").unwrap();
    let script = format!(
        "for i in 1 2 3; do /bin/cat {d} >/dev/null; /bin/ls /etc >/dev/null; /bin/echo --password=hunter2 >/dev/null; done; \
         exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-",
        d = data.display()
    );
    let workload = || cg.run_bash(&script);

    // 1. Learn, stop the agent normally.
    let mut agent = start_agent(&store, &cg, &["--duration", "3"]);
    workload();
    assert!(agent.wait().unwrap().success());
    let first = show_profile(&store, &cg.rel);
    assert_eq!(
        entry_fields(&first, "execs", "path"),
        ["/bin/bash", "/bin/cat", "/bin/echo", "/bin/ls"]
            .into_iter()
            .map(String::from)
            .collect(),
        "exactly the workload's programs"
    );
    assert!(
        entry_fields(&first, "files", "path")
            .contains(&profiles::generalize::path(data.to_str().unwrap())),
        "{first:#}"
    );
    let connects: Vec<_> = first["profile"]["connects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].clone())
        .collect();
    assert_eq!(
        connects,
        vec![
            serde_json::json!({"family": "inet", "protocol": "tcp", "addr": "127.0.0.1", "port": port})
        ]
    );
    let lineage: BTreeSet<(String, String)> = first["profile"]["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0]["parent"].as_str().unwrap().into(),
                p[0]["child"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        lineage.contains(&("/bin/bash".into(), "/bin/cat".into())),
        "{lineage:?}"
    );
    let raw = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap_or_default());
    for bytes in raw {
        assert!(
            !bytes.windows(7).any(|w| w == b"hunter2"),
            "a secret reached the store"
        );
    }
    assert!(first.to_string().contains("--password=<redacted>"));

    // 2. Restart the agent and run the same workload again: no new entries.
    let mut agent = start_agent(&store, &cg, &["--duration", "3"]);
    workload();
    assert!(agent.wait().unwrap().success());
    let second = show_profile(&store, &cg.rel);
    assert_eq!(
        entry_keys(&second),
        entry_keys(&first),
        "a second run adds no entries"
    );

    // 3. kill -9 mid-learning: the store is intact up to the last flush.
    let mut agent = start_agent(&store, &cg, &[]);
    workload();
    std::thread::sleep(Duration::from_millis(1500)); // several flush intervals
    agent.kill().unwrap();
    agent.wait().unwrap();
    let third = show_profile(&store, &cg.rel);
    assert_eq!(entry_keys(&third), entry_keys(&first));
    let count = |p: &serde_json::Value| {
        p["profile"]["execs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[0]["path"] == "/bin/cat")
            .unwrap()[1]["count"]
            .as_u64()
            .unwrap()
    };
    assert!(
        count(&third) > count(&second),
        "the killed agent's flushed observations are there"
    );

    // 4. Export for audit: stable bytes, verified on import; a tampered file changes nothing.
    let export = |yaml: bool| {
        let mut args = vec!["profile", "export", cg.rel.as_str()];
        if yaml {
            args.push("--yaml");
        }
        run_cli_ok(&store, &args)
    };
    let json = export(false);
    assert_eq!(json, export(false), "export is stable byte for byte");
    let exported = dir.join("profile.json");
    std::fs::write(&exported, &json).unwrap();
    let yaml_file = dir.join("profile.yaml");
    std::fs::write(&yaml_file, export(true)).unwrap();
    let diff = Command::new(baseliner_bin())
        .args(["profile", "diff"])
        .arg(&exported)
        .arg(&yaml_file)
        .output()
        .unwrap();
    assert!(diff.status.success());
    assert!(
        diff.stdout.is_empty(),
        "JSON and YAML exports hold the same profile"
    );
    let tampered = dir.join("tampered.json");
    let text = String::from_utf8(json)
        .unwrap()
        .replacen("/bin/cat", "/bin/evil", 1);
    std::fs::write(&tampered, text).unwrap();
    let before = show_profile(&store, &cg.rel);
    let out = run_cli(&store, &["profile", "import", tampered.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("content hash mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The stored state, not the progress figures computed from the clock.
    let after = show_profile(&store, &cg.rel);
    for field in ["profile", "learning", "revision"] {
        assert_eq!(
            after[field], before[field],
            "a rejected import changes nothing"
        );
    }
    let out = Command::new(baseliner_bin())
        .args(["profile", "diff"])
        .arg(&exported)
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(!out.status.success(), "diff verifies its inputs too");
    let _ = std::fs::remove_dir_all(&dir);
}
