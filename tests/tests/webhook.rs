//! Webhook delivery end to end (root): an alert reaches a webhook receiver within 2 seconds,
//! signed with the configured secret; an alert raised while the receiver is down survives a
//! SIGKILL of the agent in the store's outbox and is delivered once the restarted agent finds
//! the receiver back.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use baseliner_tests::{
    LearnAgent, TestCgroup, learn_then_alert, live_enabled, normal_workload, run_miner, write_miner,
};
use learner::delivery::webhook::signature;

const SECRET: &str = "webhook-test-secret";

/// One request the receiver took: lower-cased headers and the body.
#[derive(Debug, Clone)]
struct Request {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A minimal HTTP receiver on 127.0.0.1 answering every request with 200.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the receiver");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Some(r) = serve(s) {
                            sink.lock().unwrap().push(r);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to `within` for a request whose body contains `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> Request {
        let started = Instant::now();
        loop {
            if let Some(r) = self
                .requests()
                .into_iter()
                .find(|r| String::from_utf8_lossy(&r.body).contains(needle))
            {
                return r;
            }
            assert!(
                started.elapsed() < within,
                "no request with {needle:?} within {within:?}; got {:#?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops listening (the port then refuses connections).
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn serve(s: std::net::TcpStream) -> Option<Request> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if !line.starts_with("POST ") {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let mut s = s;
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some(Request { headers, body })
}

/// The request's body as JSON, after checking its signature and key header.
fn verified(r: &Request) -> serde_json::Value {
    let sig = r.headers.get("x-baseliner-signature").expect("signed");
    assert_eq!(*sig, signature(SECRET.as_bytes(), &r.body));
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let alert: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        r.headers.get("x-baseliner-alert-key").map(String::as_str),
        alert["key"].as_str()
    );
    alert
}

#[test]
fn alerts_reach_the_webhook_also_after_an_outage_and_a_crash() {
    if !live_enabled("alerts_reach_the_webhook_also_after_an_outage_and_a_crash") {
        return;
    }
    let dir = baseliner_tests::temp_dir("webhook");
    let store = dir.join("store");
    let alerts = dir.join("alerts.jsonl");
    let normal = normal_workload(&dir);
    let receiver = Receiver::start(0);
    let port = receiver.port;
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let cg = TestCgroup::new("webhook").unwrap();
    let extra = [
        "--flush-interval",
        "0.2",
        "--alerts-jsonl",
        alerts.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let agent = LearnAgent::start(&store, &[&cg.path], &extra).unwrap();
    learn_then_alert(&cg, &store, &normal);
    std::thread::sleep(Duration::from_millis(300));

    // Delivered within 2 s, signed.
    let miner = dir.join("xmrig");
    write_miner(&miner);
    run_miner(&cg, &miner);
    let first = verified(&receiver.wait_for("xmrig", Duration::from_secs(2)));
    assert_eq!(first["workload"], cg.rel.as_str());
    assert_eq!(first["severity"], "critical", "{first:#}");
    assert!(first["reasons"].to_string().contains("miner"), "{first:#}");
    // The agent's status counts the delivery.
    let started = Instant::now();
    loop {
        let out = baseliner_tests::run_cli_ok(&store, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let counts = &status["agent"]["alerts"];
        if counts["delivered"].as_u64() >= Some(1) {
            assert!(counts["raised"].as_u64() >= Some(1), "{counts}");
            assert_eq!(counts["pending"], 0, "{counts}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "status never showed the delivery: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The receiver goes away; another alert is raised and the agent is killed.
    receiver.stop();
    let lines = || std::fs::read_to_string(&alerts).unwrap_or_default();
    let before = lines().lines().count();
    let other = dir.join("other").join("xmrig");
    write_miner(&other);
    run_miner(&cg, &other);
    let started = Instant::now();
    let second: serde_json::Value = loop {
        let text = lines();
        if let Some(a) = text
            .lines()
            .skip(before)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|a| a["key"] != first["key"] && a.to_string().contains("other/xmrig"))
        {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no second alert; alerts: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(agent); // SIGKILL

    // Restarted, with the receiver back on the same port: the pending alert arrives.
    let agent = LearnAgent::start(&store, &[&cg.path], &extra).unwrap();
    let receiver = Receiver::start(port);
    let key = second["key"].as_str().unwrap();
    let got = verified(&receiver.wait_for(key, Duration::from_secs(10)));
    assert_eq!(got["key"], second["key"]);
    assert_eq!(got["severity"], "critical", "{got:#}");
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{log:#?}");
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
