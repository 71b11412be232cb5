//! Alertmanager and Falco outputs end to end (root): a real `prometheus-alertmanager` runs on
//! loopback; a miner-like program in an alerting workload reaches it as a critical alert within
//! 10 seconds, and a Falco JSON line with priority Critical is written.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use baseliner_tests::{
    LearnAgent, TestCgroup, free_port, http_get, learn_then_alert, live_enabled, normal_workload,
    run_miner, write_miner,
};

/// A running Alertmanager, killed when dropped.
struct Alertmanager {
    child: Child,
    port: u16,
}

impl Alertmanager {
    fn start(dir: &Path) -> Alertmanager {
        let bin = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let bin = match bin {
            Some(b) => b,
            None => {
                let st = Command::new("apt-get")
                    .args(["install", "-y", "prometheus-alertmanager"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .expect("running apt-get");
                assert!(st.success(), "installing prometheus-alertmanager failed");
                "/usr/bin/prometheus-alertmanager"
            }
        };
        let config = dir.join("am.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: default\nreceivers:\n  - name: default\n",
        )
        .unwrap();
        let storage = dir.join("am-data");
        std::fs::create_dir_all(&storage).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("am.log")).unwrap(),
            ))
            .spawn()
            .expect("starting prometheus-alertmanager");
        let am = Alertmanager { child, port };
        let started = Instant::now();
        while http_get(port, "/api/v2/status").is_none_or(|(code, _)| code != 200) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Alertmanager did not answer within 20 s: {}",
                std::fs::read_to_string(dir.join("am.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn alerts(&self) -> Vec<serde_json::Value> {
        http_get(self.port, "/api/v2/alerts")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_miner_alert_reaches_alertmanager_and_the_falco_output() {
    if !live_enabled("a_miner_alert_reaches_alertmanager_and_the_falco_output") {
        return;
    }
    let dir = baseliner_tests::temp_dir("alertmanager");
    let am = Alertmanager::start(&dir);
    let store = dir.join("store");
    let falco = dir.join("falco.jsonl");
    let cg = TestCgroup::new("alertmanager").unwrap();
    let normal = normal_workload(&dir);
    let url = format!("http://127.0.0.1:{}", am.port);
    let agent = LearnAgent::start(
        &store,
        &[&cg.path],
        &[
            "--flush-interval",
            "0.2",
            "--alertmanager-url",
            &url,
            "--falco-jsonl",
            falco.to_str().unwrap(),
        ],
    )
    .unwrap();
    learn_then_alert(&cg, &store, &normal);

    let miner = dir.join("xmrig");
    write_miner(&miner);
    let started = Instant::now();
    run_miner(&cg, &miner);
    let alert = loop {
        let alerts = am.alerts();
        if let Some(a) = alerts.iter().find(|a| {
            a["labels"]["severity"] == "critical" && a["labels"]["workload"] == cg.rel.as_str()
        }) {
            break a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no critical alert in Alertmanager within 10 s: {alerts:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    drop(am);

    let labels = &alert["labels"];
    assert!(
        labels["alertname"]
            .as_str()
            .is_some_and(|n| n.starts_with("Baseliner")),
        "{alert:#}"
    );
    assert!(
        labels["key"].as_str().is_some_and(|k| k.len() == 32),
        "{alert:#}"
    );
    assert!(labels["node"].is_string(), "{alert:#}");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("stratum")),
        "{alert:#}"
    );

    let text = std::fs::read_to_string(&falco).unwrap_or_default();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["output_fields"]["baseliner.key"] == labels["key"])
        .unwrap_or_else(|| panic!("no Falco line for the alert: {text}"));
    assert_eq!(line["priority"], "Critical", "{line:#}");
    assert_eq!(line["source"], "syscall");
    assert_eq!(line["output_fields"]["baseliner.workload"], cg.rel.as_str());
    assert!(line["tags"].to_string().contains("baseliner"), "{line:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
