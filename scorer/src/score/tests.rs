//! The scorer end to end over small learned profiles.

use profiles::{Access, EventDetail, model::Profile};

use super::*;
use crate::{
    alert::{Aggregator, Observed},
    test_support::{by, connect, event, exec, open},
};

const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";
const SYSTEMD: &str = "/usr/lib/systemd/systemd";

/// What nginx does while learning: starts, reads its config and content, connects to its
/// upstream, listens on 80.
fn nginx_events() -> Vec<Event> {
    let mut listen = event(EventDetail::Listen { local: None });
    if let EventDetail::Connect { dest } = connect("0.0.0.0", 80).detail {
        listen.detail = EventDetail::Listen { local: Some(dest) };
    }
    vec![
        exec(
            "/usr/sbin/nginx",
            &["nginx", "-g", "daemon off;"],
            Some(SYSTEMD),
        ),
        open("/etc/nginx/nginx.conf", Access::Read),
        open("/var/www/html/index.html", Access::Read),
        open("/var/log/nginx/access.log", Access::Write),
        connect("10.0.0.8", 8080),
        listen,
    ]
}

fn learned(events: &[Event]) -> Profile {
    let mut p = Profile::default();
    for e in events {
        p.record(e);
    }
    p
}

fn nginx() -> Profile {
    learned(&nginx_events())
}

fn score(e: &Event, p: &Profile) -> Option<Alert> {
    Scorer::default().score(e, p, &mut WorkloadState::default())
}

fn rules(a: &Alert) -> Vec<&str> {
    a.reasons.iter().map(|r| r.rule.as_str()).collect()
}

#[test]
fn learned_behaviour_raises_nothing() {
    let p = nginx();
    let mut state = WorkloadState::default();
    let scorer = Scorer::default();
    for _ in 0..3 {
        for e in nginx_events() {
            assert_eq!(scorer.score(&e, &p, &mut state), None, "{e:?}");
        }
    }
}

#[test]
fn xmrig_with_stratum_args_is_critical_and_names_the_miner() {
    let e = exec(
        "/tmp/xmrig",
        &[
            "xmrig",
            "-o",
            "stratum+tcp://pool.example:3333",
            "-u",
            WALLET,
            "--donate-level",
            "1",
        ],
        Some("/bin/bash"),
    );
    let a = score(&e, &nginx()).unwrap();
    assert_eq!(a.severity, Severity::Critical, "{a:#?}");
    assert_eq!(a.reasons[0].rule, "crypto-miner");
    assert!(
        a.summary.starts_with("crypto-miner signature: /tmp/xmrig"),
        "{}",
        a.summary
    );
    assert!(
        a.summary.contains("stratum+tcp://pool.example:3333"),
        "{}",
        a.summary
    );
    let rs = rules(&a);
    assert!(rs.contains(&"novelty"), "{rs:?}");
    assert!(rs.contains(&"writable-exec"), "{rs:?}");
    let novelty = a.reasons.iter().find(|r| r.rule == "novelty").unwrap();
    assert_eq!(
        novelty.text,
        "exec of /tmp/xmrig is not in the profile (learned: 1 exec)"
    );
    assert!(
        novelty
            .entry
            .as_deref()
            .unwrap()
            .starts_with("exec /tmp/xmrig -o ")
    );
    assert_eq!(a.workload, "/system.slice/nginx.service");
    assert_eq!((a.count, a.first_ns, a.last_ns), (1, e.ts_ns, e.ts_ns));
    assert_eq!(a.event, e);
}

#[test]
fn a_miner_learned_while_learning_is_still_a_miner() {
    let e = exec(
        "/opt/xmrig",
        &["xmrig", "-o", "stratum+ssl://pool.example:443"],
        None,
    );
    let p = learned(std::slice::from_ref(&e));
    let a = score(&e, &p).unwrap();
    assert_eq!(
        rules(&a),
        ["crypto-miner"],
        "only the miner rule counts on learned events"
    );
    assert_eq!(a.severity, Severity::Critical);
}

#[test]
fn a_shell_from_nginx_is_high() {
    let e = exec("/bin/sh", &["sh", "-c", "id"], Some("/usr/sbin/nginx"));
    let a = score(&e, &nginx()).unwrap();
    assert_eq!(a.severity, Severity::High, "{a:#?}");
    assert_eq!(a.reasons[0].rule, "shell-from-server");
    assert_eq!(
        a.summary,
        "shell /bin/sh (sh) started by the server process /usr/sbin/nginx (+2 more reasons)"
    );
    let lineage = a
        .reasons
        .iter()
        .find(|r| r.text.contains("starting"))
        .unwrap();
    assert_eq!(
        lineage.text,
        "/usr/sbin/nginx starting /bin/sh is not in the profile (learned: 1 parent-child start)"
    );
    // The same shell-out, learned: nothing.
    let p = learned(&[nginx_events(), vec![e.clone()]].concat());
    assert_eq!(score(&e, &p), None);
}

#[test]
fn a_dropped_binary_run_is_drift() {
    let p = nginx();
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    let write = open("/usr/local/bin/helper", Access::Create);
    let a = scorer.score(&write, &p, &mut state).unwrap();
    assert_eq!(rules(&a), ["novelty"]);
    assert_eq!(a.severity, Severity::Low);
    let run = exec(
        "/usr/local/bin/helper",
        &["helper"],
        Some("/usr/sbin/nginx"),
    );
    let a = scorer.score(&run, &p, &mut state).unwrap();
    let drift = a.reasons.iter().find(|r| r.rule == "drift").expect("drift");
    assert!(
        drift.text.contains("/usr/local/bin/helper was written"),
        "{}",
        drift.text
    );
    assert_eq!(a.severity, Severity::High, "{a:#?}");
    // In /tmp it is worse.
    scorer.score(&open("/tmp/payload", Access::Create), &p, &mut state);
    let a = scorer
        .score(
            &exec("/tmp/payload", &["payload"], Some(SYSTEMD)),
            &p,
            &mut state,
        )
        .unwrap();
    assert!(rules(&a).contains(&"drift"));
    assert_eq!(a.severity, Severity::Critical, "{a:#?}");
    // Another workload's state knows nothing of it.
    let a = score(&exec("/usr/local/bin/helper", &["helper"], None), &p).unwrap();
    assert!(!rules(&a).contains(&"drift"));
}

#[test]
fn sensitive_reads_count_outside_the_profile_only() {
    let shadow = open("/etc/shadow", Access::Read);
    let a = score(&shadow, &nginx()).unwrap();
    assert_eq!(a.severity, Severity::High, "{a:#?}");
    assert_eq!(
        a.summary,
        "/usr/sbin/nginx reads password hashes: /etc/shadow (+1 more reason)"
    );
    // sshd learned reading /etc/shadow.
    let sshd = |e: Event| by(e, "/usr/sbin/sshd", 0);
    let p = learned(&[sshd(shadow.clone())]);
    assert_eq!(score(&sshd(shadow), &p), None);
}

#[test]
fn novelty_alone_is_low_or_medium() {
    let p = nginx();
    let a = score(&open("/etc/hosts", Access::Read), &p).unwrap();
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(
        a.summary,
        "read of /etc/hosts is not in the profile (learned: 3 file entries)"
    );
    let a = score(&connect("10.0.0.9", 5432), &p).unwrap();
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(
        a.summary,
        "connection to 10.0.0.9:5432 (tcp) is not in the profile (learned: 1 destination)"
    );
    // A new program with a new lineage.
    let a = score(
        &exec("/usr/bin/curl", &["curl", "-s", "http://x"], Some(SYSTEMD)),
        &p,
    )
    .unwrap();
    assert_eq!(a.severity, Severity::Medium);
    assert_eq!(rules(&a), ["novelty", "novelty"]);
    // A known program with new arguments.
    let e = exec("/usr/sbin/nginx", &["nginx", "-s", "reload"], Some(SYSTEMD));
    let a = score(&e, &p).unwrap();
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(
        a.summary,
        "/usr/sbin/nginx runs with arguments not in the profile (learned: 1 exec)"
    );
    assert_eq!(a.reasons[0].weight, NoveltyWeights::default().exec_args);
}

#[test]
fn widened_entries_cover_events() {
    let mut p = nginx();
    let mut files = Profile::default();
    for i in 0..50 {
        files.record(&open(&format!("/var/cache/nginx/entry{i}a"), Access::Read));
    }
    p.merge(&files);
    let widenings = p.widen_to(&profiles::bound::Limits {
        max_entries: 10,
        max_dir_children: usize::MAX,
    });
    assert!(!widenings.is_empty());
    assert!(
        p.files.keys().any(|f| f.path.ends_with("/*")),
        "{:?}",
        p.files
    );
    assert_eq!(
        score(&open("/var/cache/nginx/entry999z", Access::Read), &p),
        None
    );
}

#[test]
fn a_pool_port_alone_is_medium_and_a_port_number_in_argv_is_nothing() {
    let p = nginx();
    let a = score(&connect("203.0.113.9", 3333), &p).unwrap();
    assert_eq!(a.severity, Severity::Medium, "{a:#?}");
    assert_eq!(rules(&a), ["crypto-miner", "novelty"]);
    let server = exec(
        "/usr/bin/python3",
        &["python3", "-m", "http.server", "3333"],
        Some(SYSTEMD),
    );
    let a = score(&server, &p).unwrap();
    assert!(!rules(&a).contains(&"crypto-miner"), "{a:#?}");
    let p = learned(&[server.clone(), connect("203.0.113.9", 3333)]);
    assert_eq!(score(&server, &p), None);
    assert_eq!(
        score(&connect("203.0.113.9", 3333), &p),
        None,
        "learned pool-port connect"
    );
}

#[test]
fn ptrace_and_privilege_changes_count_though_profiles_cannot_learn_them() {
    let p = nginx();
    let trace = event(EventDetail::Ptrace {
        request: 16,
        request_name: "PTRACE_ATTACH".into(),
        target_pid: 1,
    });
    let a = score(&trace, &p).unwrap();
    assert_eq!(a.severity, Severity::Medium);
    assert_eq!(
        a.summary,
        "/usr/sbin/nginx attaches to process 1 with ptrace (PTRACE_ATTACH)"
    );
    let up = event(EventDetail::Setuid {
        call: "setuid".into(),
        ids: vec![Some(0)],
    });
    assert_eq!(score(&up, &p).unwrap().severity, Severity::Medium);
    let down = by(up, "/usr/sbin/nginx", 0);
    assert_eq!(score(&down, &p), None, "root changing ids");
}

#[test]
fn an_empty_profile_gives_no_novelty_but_heuristics_still_count() {
    let empty = Profile::default();
    assert_eq!(score(&open("/etc/hosts", Access::Read), &empty), None);
    let a = score(&exec("/tmp/x", &["x"], None), &empty).unwrap();
    assert_eq!(rules(&a), ["writable-exec"]);
}

#[test]
fn rare_entries_are_info_and_suppressed_by_default() {
    let mut events = nginx_events();
    for i in 0..120 {
        let e = open(&format!("/srv/data/f{i}.txt"), Access::Read);
        events.push(e.clone());
        events.push(e);
    }
    let once = open("/etc/nginx/mime.types", Access::Read);
    events.push(once.clone());
    let p = learned(&events);
    assert!(p.len() >= 100);
    assert_eq!(score(&once, &p), None, "info is suppressed");
    let verbose = Scorer {
        min_severity: Severity::Info,
        ..Scorer::default()
    };
    let mut state = WorkloadState::default();
    for _ in 0..2 {
        // The second time from the coverage cache.
        let a = verbose.score(&once, &p, &mut state).unwrap();
        assert_eq!(a.severity, Severity::Info);
        assert_eq!(rules(&a), ["rarity"]);
        assert_eq!(
            a.summary,
            format!(
                "file /etc/nginx/mime.types (read) was seen only once while learning (profile of {} entries)",
                p.len()
            )
        );
    }
    let twice = open("/srv/data/f0.txt", Access::Read);
    assert_eq!(
        verbose.score(&twice, &p, &mut state),
        None,
        "seen twice: not rare"
    );
}

#[test]
fn the_cache_follows_profile_changes() {
    let mut p = nginx();
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    let hosts = open("/etc/hosts", Access::Read);
    assert!(scorer.score(&hosts, &p, &mut state).is_some());
    // Approved into the profile.
    p.record(&hosts);
    assert_eq!(scorer.score(&hosts, &p, &mut state), None);
    // Replaced by a profile of the same size without it.
    let mut other = nginx();
    other.record(&open("/etc/resolv.conf", Access::Read));
    assert_eq!(other.len(), p.len());
    state.forget_coverage();
    assert!(scorer.score(&hosts, &other, &mut state).is_some());
}

#[test]
fn keys_are_stable_across_runs_and_differ_by_entry() {
    let p = nginx();
    let shell = exec("/bin/sh", &["sh", "-c", "id"], Some("/usr/sbin/nginx"));
    let a = score(&shell, &p).unwrap();
    let mut later = shell.clone();
    later.ts_ns += 1_000_000_000;
    later.pid += 7;
    let b = score(&later, &p).unwrap();
    assert_eq!(a.key, b.key, "another state, another time, another pid");
    let other = exec("/bin/sh", &["sh", "-c", "uname"], Some("/usr/sbin/nginx"));
    assert_ne!(score(&other, &p).unwrap().key, a.key);
    let from_java = exec("/bin/sh", &["sh", "-c", "id"], Some("/usr/bin/java"));
    assert_ne!(score(&from_java, &p).unwrap().key, a.key);
    // Arguments that generalise alike are the same deviation.
    let n1 = exec("/usr/bin/sleep", &["sleep", "5"], Some(SYSTEMD));
    let n2 = exec("/usr/bin/sleep", &["sleep", "60"], Some(SYSTEMD));
    assert_eq!(score(&n1, &p).unwrap().key, score(&n2, &p).unwrap().key);
}

#[test]
fn repeats_of_a_deviation_aggregate() {
    let p = nginx();
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    let mut agg = Aggregator::default();
    let shadow = open("/etc/shadow", Access::Read);
    let first = scorer.score(&shadow, &p, &mut state).unwrap();
    assert_eq!(agg.observe(first.clone()), Observed::New);
    let mut again = shadow.clone();
    again.ts_ns += 5;
    let second = scorer.score(&again, &p, &mut state).unwrap();
    assert_eq!(
        agg.observe(second),
        Observed::Repeat {
            count: 2,
            announce: false
        }
    );
    let held = agg.get(&first.key).unwrap();
    assert_eq!((held.count, held.last_ns), (2, again.ts_ns));
    let other = scorer
        .score(&open("/etc/gshadow", Access::Read), &p, &mut state)
        .unwrap();
    assert_eq!(agg.observe(other), Observed::New);
}

#[test]
fn the_config_reads_from_partial_json() {
    let s: Scorer =
        serde_json::from_str(r#"{"min_severity":"medium","novelty":{"exec":0.5}}"#).unwrap();
    assert_eq!(s.min_severity, Severity::Medium);
    assert_eq!(s.novelty.exec, 0.5);
    assert_eq!(s.novelty.file, NoveltyWeights::default().file);
    assert_eq!(s.rarity, Rarity::default());
}
