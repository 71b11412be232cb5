//! The recorder against a real store in a temporary directory.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

const S: u64 = 1_000_000_000;

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "baseliner-recorder-{label}-{}-{}",
            std::process::id(),
            now_ns()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn recorder(dir: &Path, settings: Settings) -> Recorder {
    let store = Store::open_waiting(&dir.join("store"), Duration::from_secs(10)).unwrap();
    Recorder::with_settings(store, Redactor::default(), settings)
}

fn event(workload: &str, ts_ns: u64, exe: &str, detail: serde_json::Value) -> Event {
    let mut v = json!({
        "schema": 1, "ts_ns": ts_ns,
        "workload": {"id": workload, "cgroup_id": 7, "cgroup": workload},
        "pid": 100, "tid": 100, "ppid": 1, "uid": 0, "gid": 0, "comm": "app", "exe": exe,
    });
    v.as_object_mut()
        .unwrap()
        .extend(detail.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn exec(workload: &str, ts_ns: u64, path: &str) -> Event {
    event(
        workload,
        ts_ns,
        path,
        json!({"kind": "exec", "filename": path, "argv": [path], "argv_truncated": false}),
    )
}

fn open(workload: &str, ts_ns: u64, exe: &str, path: &str) -> Event {
    event(
        workload,
        ts_ns,
        exe,
        json!({"kind": "open", "path": path, "flags": 0, "access": "read", "path_truncated": false}),
    )
}

fn settings() -> Settings {
    Settings {
        stable_after: Duration::from_secs(60),
        ..default_settings(Mode::Learn)
    }
}

#[test]
fn a_mode_change_applies_to_the_next_event_and_is_durable() {
    let dir = Dir::new("mode");
    let mut r = recorder(&dir.0, settings());
    assert!(r.record(open("/w", S, "/bin/true", "/etc/a")).unwrap());
    assert_eq!(r.set_mode("/w", Mode::Alert).unwrap(), None);
    assert!(!r.record(open("/w", 2 * S, "/bin/true", "/etc/b")).unwrap());
    assert_eq!(r.set_mode("/w", Mode::Learn).unwrap(), Some(Mode::Alert));
    assert!(r.record(open("/w", 3 * S, "/bin/true", "/etc/c")).unwrap());
    r.flush().unwrap();
    let keys = r.profile_keys().unwrap();
    let p = r.profile(&keys[0]).unwrap().unwrap();
    let files: Vec<_> = p.profile.files.keys().map(|f| f.path.clone()).collect();
    assert_eq!(
        files,
        ["/etc/a", "/etc/c"],
        "nothing learned while alerting"
    );
    drop(r);
    let r = recorder(&dir.0, settings());
    assert_eq!(r.modes().unwrap(), [("/w".to_string(), Mode::Learn)]);
}

#[test]
fn an_upgraded_program_starts_a_new_revision() {
    let dir = Dir::new("revision");
    let prog = dir.0.join("server");
    std::fs::write(&prog, b"version 1").unwrap();
    let helper = dir.0.join("helper");
    std::fs::write(&helper, b"helper").unwrap();
    let (prog, helper) = (prog.to_str().unwrap(), helper.to_str().unwrap());
    let mut r = recorder(&dir.0, settings());
    r.record(exec("/w", S, prog)).unwrap();
    r.record(open("/w", S, prog, "/etc/v1.conf")).unwrap();
    r.record(exec("/w", 2 * S, helper)).unwrap();
    let first = r.revisions("/w").unwrap().unwrap();
    assert_eq!(
        first.executables.len(),
        2,
        "a new program joins the revision"
    );
    assert_eq!(r.profile_keys().unwrap().len(), 1);
    r.flush().unwrap();
    drop(r);

    // After a restart the same programs map to the same revision.
    let mut r = recorder(&dir.0, settings());
    r.record(exec("/w", 3 * S, prog)).unwrap();
    assert_eq!(r.revisions("/w").unwrap().unwrap().current, first.current);
    // The program is upgraded: its next exec starts a new revision with a fresh profile.
    std::fs::write(prog, b"version 2, longer").unwrap();
    r.record(exec("/w", 4 * S, prog)).unwrap();
    r.record(open("/w", 4 * S, prog, "/etc/v2.conf")).unwrap();
    let now = r.revisions("/w").unwrap().unwrap();
    assert_ne!(now.current, first.current);
    assert_eq!(now.history.len(), 2);
    let keys = r.profile_keys().unwrap();
    assert_eq!(keys.len(), 2);
    let new = r
        .profile(&ProfileKey::new("/w", &now.current).unwrap())
        .unwrap()
        .unwrap();
    let files: Vec<_> = new.profile.files.keys().map(|f| f.path.clone()).collect();
    assert_eq!(files, ["/etc/v2.conf"]);
}

#[test]
fn downtime_marks_learning_profiles_incomplete() {
    let dir = Dir::new("downtime");
    let mut r = recorder(&dir.0, settings());
    let now = now_ns();
    // One profile changed just now (learning), one long ago (stable).
    r.record(open("/learning", now, "/bin/true", "/etc/a"))
        .unwrap();
    r.record(open("/stable", now - 3600 * S, "/bin/true", "/etc/a"))
        .unwrap();
    r.flush().unwrap();
    assert_eq!(
        r.note_downtime(now + 10 * S, Duration::from_secs(30))
            .unwrap(),
        0,
        "a short gap is not downtime"
    );
    assert_eq!(
        r.note_downtime(now + 600 * S, Duration::from_secs(30))
            .unwrap(),
        1
    );
    drop(r);
    let r = recorder(&dir.0, settings());
    for key in r.profile_keys().unwrap() {
        let p = r.profile(&key).unwrap().unwrap();
        if key.workload == "/learning" {
            assert_eq!(p.learning.incomplete.len(), 1);
            assert!(
                p.learning.incomplete[0]
                    .starts_with("the agent was down for 9m 59s while learning")
                    || p.learning.incomplete[0]
                        .starts_with("the agent was down for 10m while learning"),
                "{:?}",
                p.learning.incomplete
            );
        } else {
            assert!(p.learning.incomplete.is_empty());
        }
    }
}

#[test]
fn stable_complete_profiles_switch_to_alert_when_asked() {
    let dir = Dir::new("auto");
    let mut r = recorder(
        &dir.0,
        Settings {
            auto_alert_after: Some(Duration::from_secs(120)),
            ..settings()
        },
    );
    let t = 1000 * S;
    r.record(open("/quiet", t, "/bin/true", "/etc/a")).unwrap();
    r.record(open("/busy", t + 100 * S, "/bin/true", "/etc/a"))
        .unwrap();
    r.record(open("/broken", t, "/bin/true", "/etc/a")).unwrap();
    let key = r
        .profile_keys()
        .unwrap()
        .into_iter()
        .find(|k| k.workload == "/broken")
        .unwrap();
    let mut p = r.profile(&key).unwrap().unwrap();
    p.learning.mark_incomplete("test");
    r.import(&key, p, None).unwrap();
    assert!(r.auto_alert(t + 60 * S).unwrap().is_empty());
    assert_eq!(r.auto_alert(t + 150 * S).unwrap(), ["/quiet"]);
    assert_eq!(r.mode("/quiet").unwrap(), Mode::Alert);
    assert_eq!(r.mode("/busy").unwrap(), Mode::Learn);
    assert_eq!(
        r.mode("/broken").unwrap(),
        Mode::Learn,
        "incomplete never switches"
    );
    assert_eq!(r.auto_alert(t + 250 * S).unwrap(), ["/busy"]);
}

#[test]
fn the_size_bound_widens_and_marks_the_profile_incomplete() {
    let dir = Dir::new("bound");
    let mut r = recorder(
        &dir.0,
        Settings {
            max_entries: 20,
            ..settings()
        },
    );
    for i in 0..100 {
        let path = format!("/var/cache/app/item{}", (b'a' + (i % 26) as u8) as char)
            + &"x".repeat(i / 26 + 1);
        r.record(open("/w", S + i as u64, "/bin/app", &path))
            .unwrap();
    }
    r.flush().unwrap();
    let key = r.profile_keys().unwrap().pop().unwrap();
    let p = r.profile(&key).unwrap().unwrap();
    assert!(p.profile.len() <= 20, "{} entries", p.profile.len());
    let files: Vec<_> = p.profile.files.keys().map(|f| f.path.as_str()).collect();
    assert!(files.contains(&"/var/cache/app/*"), "{files:?}");
    let total: u64 = p.profile.files.values().map(|s| s.count).sum();
    assert_eq!(total, 100, "no behaviour dropped");
    assert_eq!(
        p.learning.status(10 * S, Duration::from_secs(1)),
        Status::Incomplete
    );
    assert!(
        p.learning.incomplete[0].contains("size bound (20 entries)"),
        "{:?}",
        p.learning.incomplete
    );
}

#[test]
fn idle_profiles_leave_memory_but_not_the_store() {
    let dir = Dir::new("evict");
    let mut r = recorder(&dir.0, settings());
    let n = MAX_RESIDENT + 50;
    for i in 0..n {
        r.record(open(&format!("/w{i}"), S, "/bin/true", "/etc/a"))
            .unwrap();
    }
    assert_eq!(r.resident_profiles(), n);
    r.flush().unwrap();
    assert!(
        r.resident_profiles() <= MAX_RESIDENT,
        "{}",
        r.resident_profiles()
    );
    assert_eq!(
        r.profile_keys().unwrap().len(),
        n,
        "evicted profiles stay listed"
    );
    // The first workloads were used least recently: evicted, then read back on the next event.
    let key = r
        .profile_keys()
        .unwrap()
        .into_iter()
        .find(|k| k.workload == "/w0")
        .unwrap();
    assert_eq!(r.profile(&key).unwrap().unwrap().profile.len(), 1);
    r.record(open("/w0", 2 * S, "/bin/true", "/etc/a")).unwrap();
    r.record(open("/w0", 2 * S, "/bin/true", "/etc/b")).unwrap();
    r.flush().unwrap();
    let p = r.profile(&key).unwrap().unwrap();
    let seen: Vec<_> = p.profile.files.values().map(|s| s.count).collect();
    assert_eq!(seen, [2, 1], "learning went on from the stored profile");
}

fn connect(workload: &str, ts_ns: u64, port: u16) -> Event {
    event(
        workload,
        ts_ns,
        "/usr/bin/app",
        json!({"kind": "connect", "family": "inet", "protocol": "tcp", "addr": "127.0.0.1",
            "port": port}),
    )
}

#[test]
fn learned_windows_survive_a_restart_and_flag_a_connect_burst_in_alert_mode() {
    let dir = Dir::new("rates");
    let mut r = recorder(&dir.0, settings());
    // 30 windows of steady work: three file reads and one connection to the database.
    for w in 0..30u64 {
        let t = (w * 10 + 1) * S;
        for (i, path) in ["/etc/a", "/etc/b", "/etc/c"].into_iter().enumerate() {
            r.record(open("/w", t + i as u64 * S, "/usr/bin/app", path))
                .unwrap();
        }
        r.record(connect("/w", t + 4 * S, 5432)).unwrap();
    }
    r.flush().unwrap();
    drop(r);

    let mut r = recorder(&dir.0, settings());
    let (key, _) = r.latest_profile("/w").unwrap().expect("learned");
    let samples = r
        .rate_samples(&key)
        .unwrap()
        .expect("stored beside the profile");
    // The 30th window was still open when the agent stopped.
    assert_eq!(samples.seen, 29);
    assert!(
        samples.samples.iter().all(|c| c[0..3] == [0, 3, 1]),
        "{samples:?}"
    );

    r.set_mode("/w", Mode::Alert).unwrap();
    let mut alerter = crate::alerting::Alerter::new(None);
    let start = 1000 * S;
    for port in 1..=100u16 {
        alerter
            .handle(
                connect("/w", start + u64::from(port) * 1_000_000, port),
                &mut r,
                Mode::Alert,
                None,
            )
            .unwrap();
    }
    assert!(
        alerter.tick(start + 5 * S, &mut r).unwrap().is_empty(),
        "window still open"
    );
    let raised = alerter.tick(start + 11 * S, &mut r).unwrap();
    assert_eq!(raised.len(), 1, "{raised:?}");
    let alert = &raised[0];
    assert_eq!(alert.workload, "/w");
    let texts: Vec<&str> = alert.reasons.iter().map(|r| r.text.as_str()).collect();
    assert!(
        texts.iter().all(|t| !t.is_empty()) && alert.reasons.iter().all(|r| r.rule == "rate"),
        "{texts:?}"
    );
    assert!(
        texts.contains(
            &"100 distinct connection destinations in 10 s; at most 1 in any of the 29 windows learned"
        ),
        "{texts:?}"
    );
    let stored: Option<scorer::Alert> = r
        .store()
        .get_json(crate::alerting::ALERTS_TREE, alert.key.as_bytes())
        .unwrap();
    assert_eq!(
        stored.map(|a| a.key),
        Some(alert.key.clone()),
        "stored before delivery"
    );
}

#[test]
fn other_nodes_parts_join_the_baseline_but_not_the_local_profile() {
    let dir = Dir::new("shared");
    let mut r = recorder(&dir.0, settings());
    let w = "k8s:shop/Deployment/web/app";
    r.learn(exec(w, S, "/usr/bin/local-tool")).unwrap();
    // What another node learned: one program this node never ran.
    let mut other = Recorder::with_settings(
        Store::open_waiting(&dir.0.join("other"), Duration::from_secs(10)).unwrap(),
        Redactor::default(),
        settings(),
    );
    other.learn(exec(w, S, "/usr/bin/remote-tool")).unwrap();
    let remote = other.latest_profile(w).unwrap().unwrap().1.profile;
    let changes = r.changes;
    r.set_shared(w, Some(remote.clone()));
    assert_eq!(r.changes, changes + 1, "scorers read the baseline again");
    r.set_shared(w, Some(remote.clone()));
    assert_eq!(
        r.changes,
        changes + 1,
        "the same parts again change nothing"
    );
    let baseline = r.baseline_profile(w).unwrap().unwrap();
    let programs: Vec<String> = baseline.execs.keys().map(|e| e.path.clone()).collect();
    assert!(
        programs.contains(&"/usr/bin/local-tool".to_string()),
        "{programs:?}"
    );
    assert!(
        programs.contains(&"/usr/bin/remote-tool".to_string()),
        "{programs:?}"
    );
    // The local profile (what this node publishes) holds only what this node saw.
    let local = r.latest_profile(w).unwrap().unwrap().1.profile;
    assert_eq!(local.execs.len(), 1);
    // A workload only other nodes learned still has a baseline.
    r.set_shared("k8s:shop/Deployment/api/app", Some(remote));
    assert!(
        r.baseline_profile("k8s:shop/Deployment/api/app")
            .unwrap()
            .is_some()
    );
    r.set_shared(w, None);
    assert_eq!(r.baseline_profile(w).unwrap().unwrap().execs.len(), 1);
}
