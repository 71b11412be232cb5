use std::collections::{BTreeMap, HashMap, VecDeque};

use profiles::{
    Access, Endpoint, EventDetail, Family, Protocol, SCHEMA_VERSION, Workload,
    evidence::RetentionConfig,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const PREFIX: &str = "baseliner-events";
const SEC: u64 = 1_000_000_000;
/// 2024-03-09T23:59:40Z: the events cross midnight (UTC), so two daily indices.
const T0: u64 = 1_710_028_780 * SEC;

// ---------------------------------------------------------------------------------------------
// A loopback Elasticsearch stand-in.

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// This HTTP status, with an error body, for the whole request.
    Status(u16),
}

type ItemRule = Box<dyn Fn(&Value) -> Option<(u16, &'static str, &'static str)> + Send>;

#[derive(Default)]
struct State {
    requests: Vec<Req>,
    /// Documents by index and id (as Elasticsearch keeps them).
    docs: BTreeMap<(String, String), Value>,
    /// Ids in the order their documents were created.
    created: Vec<String>,
    /// Item statuses answered, by status.
    item_statuses: BTreeMap<u16, usize>,
    /// Answers for the next bulk requests (then as Elasticsearch would).
    bulk_script: VecDeque<Answer>,
    /// Answers for the next template requests (then as Elasticsearch would).
    template_script: VecDeque<Answer>,
    /// Item-level failures: a status, error type and reason for a document, if any.
    item_rule: Option<ItemRule>,
    /// Item-level 429s still to answer (on the first item of a bulk request).
    item_429s: usize,
    /// Everything that did not match the bulk API's documentation.
    violations: Vec<String>,
}

struct Receiver {
    url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = connection(sock, st).await;
                });
            }
        });
        Receiver { url, state, task }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn requests(&self) -> Vec<Req> {
        self.state().requests.clone()
    }

    fn bulk_requests(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/_bulk")
            .collect()
    }

    /// Ids of the created documents, in creation order.
    fn created(&self) -> Vec<String> {
        self.state().created.clone()
    }

    fn assert_valid(&self) {
        let v = self.state().violations.clone();
        assert!(
            v.is_empty(),
            "requests not as the bulk API documents:\n{v:#?}"
        );
    }
}

/// Serves one connection: requests until the client closes it.
async fn connection(mut sock: tokio::net::TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            let mut chunk = [0u8; 65536];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let req = Req {
            method,
            path,
            headers,
            body,
        };
        let (status, answer) = handle(&st, req);
        let reason = match status {
            200 => "OK",
            409 => "Conflict",
            413 => "Payload Too Large",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Other",
        };
        let text = answer.to_string();
        let resp = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{text}",
            text.len()
        );
        sock.write_all(resp.as_bytes()).await?;
    }
}

fn es_error(status: u16, kind: &str, reason: &str) -> Value {
    json!({ "error": { "type": kind, "reason": reason }, "status": status })
}

fn handle(st: &Mutex<State>, req: Req) -> (u16, Value) {
    let mut st = st.lock().unwrap();
    st.requests.push(req.clone());
    let template_path = format!("/_index_template/{PREFIX}");
    if req.path == template_path {
        if let Some(Answer::Status(s)) = st.template_script.pop_front() {
            return (s, es_error(s, "unavailable", "not ready"));
        }
        if req.method != "PUT" {
            st.violations
                .push(format!("template: method {}", req.method));
        }
        if req.headers.get("content-type").map(String::as_str) != Some("application/json") {
            st.violations.push("template: content type".into());
        }
        if serde_json::from_slice::<Value>(&req.body).is_err() {
            st.violations.push("template: body is not JSON".into());
        }
        return (200, json!({ "acknowledged": true }));
    }
    if req.path != "/_bulk" {
        st.violations.push(format!("unexpected path {}", req.path));
        return (404, es_error(404, "not_found", "no such path"));
    }
    if let Some(Answer::Status(s)) = st.bulk_script.pop_front() {
        return (s, es_error(s, "cluster_block_exception", "not ready"));
    }
    let bad = |st: &mut State, what: String| st.violations.push(format!("bulk: {what}"));
    if req.method != "POST" {
        bad(&mut st, format!("method {}", req.method));
    }
    if req.headers.get("content-type").map(String::as_str) != Some("application/x-ndjson") {
        bad(
            &mut st,
            format!("content type {:?}", req.headers.get("content-type")),
        );
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        bad(&mut st, "body is not UTF-8".into());
        return (400, es_error(400, "parse_exception", "not UTF-8"));
    };
    if !text.ends_with('\n') {
        bad(&mut st, "the body does not end with a newline".into());
    }
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    if !lines.len().is_multiple_of(2) || lines.is_empty() {
        bad(
            &mut st,
            format!("{} lines: not action/document pairs", lines.len()),
        );
        return (400, es_error(400, "parse_exception", "bad NDJSON"));
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let (Ok(action), Ok(doc)) = (
            serde_json::from_str::<Value>(pair[0]),
            serde_json::from_str::<Value>(pair[1]),
        ) else {
            bad(&mut st, format!("lines not JSON: {pair:?}"));
            return (400, es_error(400, "parse_exception", "bad JSON"));
        };
        let obj = action.as_object();
        let meta = obj
            .and_then(|o| o.get("create"))
            .filter(|_| obj.unwrap().len() == 1);
        let index = meta.and_then(|m| m["_index"].as_str()).unwrap_or("");
        let id = meta.and_then(|m| m["_id"].as_str()).unwrap_or("");
        if meta.is_none() || index.is_empty() || id.is_empty() {
            bad(&mut st, format!("action {action}"));
        }
        let ts = doc["@timestamp"].as_str().unwrap_or("");
        match humantime::parse_rfc3339(ts) {
            Ok(t) => {
                let ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
                let day = humantime::format_rfc3339_seconds(t).to_string()[..10].replace('-', ".");
                if index != format!("{PREFIX}-{day}") {
                    bad(&mut st, format!("index {index} for @timestamp {ts}"));
                }
                if doc["ts_ns"].as_u64() != Some(ns) {
                    bad(
                        &mut st,
                        format!("@timestamp {ts} is not ts_ns {}", doc["ts_ns"]),
                    );
                }
            }
            Err(e) => bad(&mut st, format!("@timestamp {ts:?}: {e}")),
        }
        let key = (index.to_string(), id.to_string());
        let rule = st.item_rule.as_ref().and_then(|r| r(&doc));
        let exists = st.docs.contains_key(&key);
        let (status, error) = if st.item_429s > 0 && items.is_empty() {
            st.item_429s -= 1;
            (
                429,
                Some(json!({ "type": "es_rejected_execution_exception", "reason": "queue full" })),
            )
        } else if exists {
            let reason = format!("[{id}]: version conflict, document already exists");
            (
                409,
                Some(json!({ "type": "version_conflict_engine_exception", "reason": reason })),
            )
        } else if let Some((status, kind, reason)) = rule {
            (status, Some(json!({ "type": kind, "reason": reason })))
        } else {
            st.docs.insert(key, doc);
            st.created.push(id.to_string());
            (201, None)
        };
        *st.item_statuses.entry(status).or_default() += 1;
        errors |= status >= 300;
        let mut item = json!({ "_index": index, "_id": id, "status": status });
        match error {
            Some(e) => item["error"] = e,
            None => {
                item["result"] = json!("created");
                item["_version"] = json!(1);
            }
        }
        items.push(json!({ "create": item }));
    }
    (200, json!({ "took": 3, "errors": errors, "items": items }))
}

// ---------------------------------------------------------------------------------------------
// Evidence.

fn workload(id: &str) -> Workload {
    Workload {
        id: id.into(),
        cgroup_id: 4242,
        cgroup: id.into(),
        runtime: Some("containerd".into()),
        container_id: Some("0123abcd".into()),
        pod_uid: None,
        unit: None,
        k8s: None,
    }
}

/// Event `i` (distinct for each `i`): kinds in turn, three workloads, one second apart from
/// `start`.
fn event(i: u64, start: u64) -> Event {
    let detail = match i % 5 {
        0 => EventDetail::Exec {
            filename: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), format!("echo {i}")],
            argv_truncated: false,
            argv_unknown: false,
        },
        1 => EventDetail::Open {
            path: format!("/etc/file-{i}"),
            flags: 0,
            access: Access::Read,
            path_truncated: false,
        },
        2 => EventDetail::Connect {
            dest: Endpoint {
                family: Family::Inet,
                protocol: Protocol::Tcp,
                addr: "10.0.0.1".into(),
                port: 443,
            },
        },
        3 => EventDetail::Ptrace {
            request: 16,
            request_name: "PTRACE_ATTACH".into(),
            target_pid: 7,
        },
        _ => EventDetail::Setuid {
            call: "setresuid".into(),
            ids: vec![Some(0), None, Some(0)],
        },
    };
    Event {
        schema: SCHEMA_VERSION,
        ts_ns: start + i * SEC,
        workload: workload(&format!("/kubepods/w{}", i % 3)),
        pid: 100 + i as u32,
        tid: 100 + i as u32,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: "sh".into(),
        exe: Some("/bin/sh".into()),
        parent_exe: None,
        existing: false,
        blocked: false,
        detail,
    }
}

/// A store in `dir` with evidence of `events` (blocks of 4 events), written.
fn evidence_with(store: &Store, events: impl IntoIterator<Item = Event>) -> EvidenceStore {
    let config = RetentionConfig {
        block_events: 4,
        max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        ..RetentionConfig::default()
    };
    let mut ev = EvidenceStore::open(store, config).unwrap();
    for e in events {
        ev.append(&e).unwrap();
    }
    ev.flush_all().unwrap();
    ev
}

/// Every written event, in write order.
fn all_written(ev: &EvidenceStore) -> Vec<Event> {
    ev.read_after(None, usize::MAX).unwrap().0
}

fn config(url: &str, batch_events: usize) -> ElasticConfig {
    ElasticConfig {
        url: url.into(),
        batch_events,
        ..ElasticConfig::default()
    }
}

const HOST: &str = "node-1";

fn ids_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| document(HOST, e).unwrap().0)
        .collect()
}

/// Steps until idle (or `max` steps); returns the steps' outcomes.
async fn drain<E: EvidenceSource + ?Sized>(
    x: &mut ElasticExporter,
    ev: &E,
    store: &Store,
    max: usize,
) -> Vec<Step> {
    let mut out = Vec::new();
    for _ in 0..max {
        let s = x.step(ev, store).await;
        let idle = s == Step::Idle;
        out.push(s);
        if idle {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn config_defaults_and_durations_and_sizes() {
    let c: ElasticConfig = toml::from_str("url = \"http://127.0.0.1:9200\"").unwrap();
    assert_eq!(c.index_prefix, "baseliner-events");
    assert_eq!(c.batch_events, 1000);
    assert_eq!(c.max_batch_bytes, 5 << 20);
    assert_eq!(c.flush_interval, Duration::from_secs(2));
    assert_eq!(c.timeout, Duration::from_secs(30));
    c.validate().unwrap();

    let c: ElasticConfig = toml::from_str(
        "url = \"https://es.example:9200/\"\nindex_prefix = \"edr.events\"\nusername = \"u\"\n\
         password = \"p\"\nbatch_events = 50\nmax_batch_bytes = \"512KiB\"\n\
         flush_interval = \"500ms\"\ntimeout = \"1m\"\nca_file = \"/etc/ca.pem\"",
    )
    .unwrap();
    assert_eq!(c.max_batch_bytes, 512 << 10);
    assert_eq!(c.flush_interval, Duration::from_millis(500));
    assert_eq!(c.timeout, Duration::from_secs(60));
    c.validate().unwrap();
    let c: ElasticConfig =
        toml::from_str("url = \"http://localhost:9200\"\nmax_batch_bytes = 1000000").unwrap();
    assert_eq!(c.max_batch_bytes, 1_000_000);
    assert_eq!(crate::config::parse_size("2 MB"), Ok(2_000_000));
    assert!(crate::config::parse_size("2 parsecs").is_err());
}

#[test]
fn bad_configs_are_rejected_with_a_clear_message() {
    let parse = |t: &str| -> Result<ElasticConfig, String> {
        let c: ElasticConfig = toml::from_str(t).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    };
    for (text, expect) in [
        ("", "url is required"),
        ("url = \"ftp://es:21\"", "must be an http or https URL"),
        ("url = \"127.0.0.1:9200\"", "http or https"),
        ("url = \"not a url\"", "is not a valid URL"),
        ("url = \"http://u:p@es:9200\"", "holds credentials"),
        ("url = \"http://es:9200/?x=1\"", "query"),
        (
            "url = \"http://es:9200\"\nindex_prefix = \"Events\"",
            "lower-case",
        ),
        (
            "url = \"http://es:9200\"\nindex_prefix = \"_x\"",
            "must not start",
        ),
        (
            "url = \"http://es:9200\"\nindex_prefix = \"a b\"",
            "holds ' '",
        ),
        ("url = \"http://es:9200\"\nindex_prefix = \"\"", "is empty"),
        (
            "url = \"https://es:9200\"\nusername = \"u\"",
            "password is not",
        ),
        (
            "url = \"https://es:9200\"\npassword = \"p\"",
            "username is not",
        ),
        (
            "url = \"https://es:9200\"\nusername = \"u\"\npassword = \"p\"\napi_key = \"k\"",
            "not both",
        ),
        (
            "url = \"http://es.example:9200\"\napi_key = \"k\"",
            "use https",
        ),
        ("url = \"http://es:9200\"\nbatch_events = 0", "batch_events"),
        (
            "url = \"http://es:9200\"\nmax_batch_bytes = 0",
            "max_batch_bytes",
        ),
        (
            "url = \"http://es:9200\"\nmax_batch_bytes = \"5 lightyears\"",
            "unknown unit",
        ),
        (
            "url = \"http://es:9200\"\nflush_interval = \"0s\"",
            "flush_interval",
        ),
        (
            "url = \"http://es:9200\"\nflush_interval = \"soon\"",
            "invalid duration",
        ),
        ("url = \"http://es:9200\"\nindex = \"x\"", "unknown field"),
    ] {
        let err = parse(text).expect_err(text);
        assert!(err.contains(expect), "{text:?}: {err}");
    }
    // Credentials over plain http to a loopback host are fine.
    parse("url = \"http://127.0.0.1:9200\"\napi_key = \"k\"").unwrap();
    parse("url = \"http://[::1]:9200\"\nusername = \"u\"\npassword = \"p\"").unwrap();
    // The exporter refuses what validate refuses, and a missing CA file.
    let dir = tempfile::TempDir::with_prefix("baseliner-es-config-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = ElasticExporter::new(config("ftp://x", 1), &store).unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
    let mut c = config("https://127.0.0.1:9200", 1);
    c.ca_file = Some(dir.path().join("missing.pem"));
    let err = ElasticExporter::new(c, &store).unwrap_err().to_string();
    assert!(err.contains("cannot use ca_file"), "{err}");
}

#[test]
fn debug_hides_the_password_and_the_api_key() {
    let mut c = config("https://es:9200", 10);
    c.username = Some("elastic".into());
    c.password = Some("hunter2-secret".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(
        shown.contains("elastic") && shown.contains("<redacted>"),
        "{shown}"
    );
    let mut c = config("https://es:9200", 10);
    c.api_key = Some("VnVhQ2ZHY0JDZGJrU=secret".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("VnVhQ2ZHY0JDZGJrU"), "{shown}");
    let dir = tempfile::TempDir::with_prefix("baseliner-es-debug-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let x = ElasticExporter::new(c, &store).unwrap();
    assert!(!format!("{x:?}").contains("VnVhQ2ZHY0JDZGJrU"));
}

#[test]
fn documents_indices_and_ids() {
    let e = event(0, T0); // 2024-03-09T23:59:40Z
    assert_eq!(index_name(PREFIX, e.ts_ns), "baseliner-events-2024.03.09");
    assert_eq!(
        index_name(PREFIX, T0 + 20 * SEC),
        "baseliner-events-2024.03.10"
    );
    let (id, doc) = document(HOST, &e).unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(document(HOST, &e).unwrap().0, id, "ids are deterministic");
    assert_ne!(document(HOST, &event(1, T0)).unwrap().0, id);
    assert_ne!(
        document("node-2", &e).unwrap().0,
        id,
        "the host is part of the id"
    );
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["@timestamp"], "2024-03-09T23:59:40.000000000Z");
    assert_eq!(doc["host"]["name"], HOST);
    assert_eq!(doc["kind"], "exec");
    assert_eq!(doc["workload"]["id"], "/kubepods/w0");
    assert_eq!(doc["argv"], json!(["sh", "-c", "echo 0"]));
    // The document is the event plus the two fields.
    let mut back = doc.as_object().unwrap().clone();
    back.remove("@timestamp");
    back.remove("host");
    assert_eq!(Value::Object(back), serde_json::to_value(&e).unwrap());
    assert_eq!(
        base64_lite::encode(b"elastic:changeme"),
        "ZWxhc3RpYzpjaGFuZ2VtZQ=="
    );
    assert_eq!(base64_lite::encode(b"ab"), "YWI=");
}

#[tokio::test]
async fn template_first_then_every_event_once_in_order_across_batches() {
    let es = Receiver::start().await;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-all-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..37).map(|i| event(i, T0)));
    let written = all_written(&ev);
    assert_eq!(written.len(), 37);
    let mut x = ElasticExporter::new(config(&es.url, 10), &store)
        .unwrap()
        .with_host(HOST);
    assert_eq!(x.cursor(), None);
    let steps = drain(&mut x, &ev, &store, 20).await;
    assert_eq!(steps.len(), 5, "{steps:?}"); // 10 + 10 + 10 + 7, then idle
    assert!(matches!(
        steps[0],
        Step::Sent {
            events: 10,
            created: 10,
            more: true,
            ..
        }
    ));
    assert!(matches!(
        steps[3],
        Step::Sent {
            events: 7,
            more: false,
            ..
        }
    ));
    assert_eq!(steps[4], Step::Idle);
    es.assert_valid();

    let reqs = es.requests();
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].path, "/_index_template/baseliner-events");
    let t: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(t["index_patterns"], json!(["baseliner-events-*"]));
    let m = &t["template"]["mappings"];
    assert_eq!(m["dynamic"], true);
    let p = &m["properties"];
    assert_eq!(p["@timestamp"]["type"], "date");
    for k in ["kind", "comm", "exe", "filename", "path", "access"] {
        assert_eq!(p[k]["type"], "keyword", "{k}");
    }
    for k in ["id", "cgroup", "container_id", "pod_uid", "runtime", "unit"] {
        assert_eq!(
            p["workload"]["properties"][k]["type"], "keyword",
            "workload.{k}"
        );
    }
    for k in ["pid", "tid", "ppid", "uid", "gid"] {
        assert_eq!(p[k]["type"], "long", "{k}");
    }
    assert_eq!(p["argv"]["type"], "text");
    assert_eq!(p["argv"]["fields"]["keyword"]["type"], "keyword");
    assert_eq!(reqs.iter().filter(|r| r.method == "PUT").count(), 1);

    // Exactly once, in write order, in two daily indices.
    assert_eq!(es.bulk_requests().len(), 4);
    assert_eq!(es.created(), ids_of(&written));
    let st = es.state();
    assert_eq!(st.docs.len(), 37);
    let indices: std::collections::BTreeSet<&str> = st.docs.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(
        indices.into_iter().collect::<Vec<_>>(),
        ["baseliner-events-2024.03.09", "baseliner-events-2024.03.10"]
    );
    assert_eq!(st.item_statuses, BTreeMap::from([(201, 37)]));
    drop(st);

    // The cursor is durable and at the end; stats say so.
    let end = ev.read_after(None, usize::MAX).unwrap().1;
    assert_eq!(x.cursor(), end);
    assert_eq!(load_cursor(&store).unwrap(), end);
    let s = x.stats();
    assert_eq!(
        (s.sent, s.duplicates, s.rejected, s.failed_attempts),
        (37, 0, 0, 0)
    );
    assert!(s.template_installed);
    assert_eq!(s.cursor, end.map(|c| c.to_string()));
    assert!(s.last_success_ns.is_some());
}

#[tokio::test]
async fn max_batch_bytes_cuts_batches_and_the_cursor_follows() {
    let es = Receiver::start().await;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-bytes-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..23).map(|i| event(i, T0)));
    let mut c = config(&es.url, 1000);
    c.max_batch_bytes = 2000; // a few documents per request
    let mut x = ElasticExporter::new(c, &store).unwrap().with_host(HOST);
    let steps = drain(&mut x, &ev, &store, 50).await;
    assert_eq!(steps.last(), Some(&Step::Idle));
    es.assert_valid();
    let bulks = es.bulk_requests();
    assert!(bulks.len() >= 5, "{} requests", bulks.len());
    for b in &bulks {
        let docs = b.body.iter().filter(|&&c| c == b'\n').count() / 2;
        assert!(b.body.len() <= 2000 || docs == 1, "{} bytes", b.body.len());
    }
    assert_eq!(es.created(), ids_of(&all_written(&ev)));
    assert_eq!(es.state().item_statuses, BTreeMap::from([(201, 23)]));
    assert_eq!(
        load_cursor(&store).unwrap(),
        ev.read_after(None, usize::MAX).unwrap().1
    );
}

#[tokio::test]
async fn unavailable_twice_then_every_event_once_and_the_cursor_only_after_success() {
    let es = Receiver::start().await;
    es.state().template_script.push_back(Answer::Status(503));
    es.state()
        .bulk_script
        .extend([Answer::Status(503), Answer::Status(429)]);
    let dir = tempfile::TempDir::with_prefix("baseliner-es-retry-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..9).map(|i| event(i, T0)));
    let mut x = ElasticExporter::new(config(&es.url, 100), &store)
        .unwrap()
        .with_host(HOST);

    // The template first: nothing is sent before it is in.
    let Step::Failed { error, retry_in } = x.step(&ev, &store).await else {
        panic!("the template should have failed");
    };
    assert!(
        error.contains("index template") && error.contains("503"),
        "{error}"
    );
    assert!(retry_in >= Duration::from_millis(500));
    assert!(!x.due(Instant::now()));
    assert!(es.bulk_requests().is_empty());

    for expect in ["503", "429"] {
        let Step::Failed { error, .. } = x.step(&ev, &store).await else {
            panic!("the bulk request should have failed");
        };
        assert!(error.contains(expect), "{error}");
        assert_eq!(
            load_cursor(&store).unwrap(),
            None,
            "cursor moved after a failure"
        );
        assert_eq!(x.cursor(), None);
    }
    let s = x.stats();
    assert_eq!(s.failed_attempts, 3);
    assert!(s.last_error.as_deref().unwrap().contains("429"));
    assert_eq!(s.sent, 0);

    assert!(matches!(
        x.step(&ev, &store).await,
        Step::Sent {
            events: 9,
            created: 9,
            ..
        }
    ));
    assert_eq!(x.step(&ev, &store).await, Step::Idle);
    es.assert_valid();
    assert_eq!(es.bulk_requests().len(), 3);
    assert_eq!(es.created(), ids_of(&all_written(&ev)));
    assert_eq!(
        load_cursor(&store).unwrap(),
        ev.read_after(None, 100).unwrap().1
    );
    assert_eq!(x.stats().sent, 9);
    assert!(
        !x.due(Instant::now()),
        "idle: next look after flush_interval"
    );
}

#[tokio::test]
async fn an_item_answered_429_retries_the_batch_and_409s_count_as_delivered() {
    let es = Receiver::start().await;
    es.state().item_429s = 1;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-item429-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..6).map(|i| event(i, T0)));
    let mut x = ElasticExporter::new(config(&es.url, 100), &store)
        .unwrap()
        .with_host(HOST);
    let Step::Failed { error, .. } = x.step(&ev, &store).await else {
        panic!("an item answered 429: the batch must be retried");
    };
    assert!(
        error.contains("1 of 6 bulk items must be retried"),
        "{error}"
    );
    assert_eq!(load_cursor(&store).unwrap(), None);
    // The retry: 5 were created by the first request (409 now), 1 is created.
    assert_eq!(
        x.step(&ev, &store).await,
        Step::Sent {
            events: 6,
            created: 1,
            duplicates: 5,
            rejected: 0,
            more: false
        }
    );
    es.assert_valid();
    assert_eq!(es.state().docs.len(), 6);
    let s = x.stats();
    assert_eq!((s.sent, s.duplicates, s.rejected), (6, 5, 0));
}

#[tokio::test]
async fn a_batch_sent_again_after_a_lost_cursor_creates_no_duplicates() {
    let es = Receiver::start().await;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-resend-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..12).map(|i| event(i, T0)));
    let mut x = ElasticExporter::new(config(&es.url, 5), &store)
        .unwrap()
        .with_host(HOST);
    drain(&mut x, &ev, &store, 10).await;
    assert_eq!(es.state().docs.len(), 12);
    // A crash after the send, before the cursor was saved: the cursor is lost.
    store.remove_json(CURSOR_TREE, CURSOR_KEY).unwrap();
    // And a different batch size after the restart: ids do not depend on batches.
    let mut x = ElasticExporter::new(config(&es.url, 7), &store)
        .unwrap()
        .with_host(HOST);
    let steps = drain(&mut x, &ev, &store, 10).await;
    assert!(matches!(
        steps[0],
        Step::Sent {
            events: 7,
            created: 0,
            duplicates: 7,
            ..
        }
    ));
    es.assert_valid();
    let st = es.state();
    assert_eq!(st.docs.len(), 12, "no duplicates");
    assert_eq!(st.item_statuses, BTreeMap::from([(201, 12), (409, 12)]));
    drop(st);
    let s = x.stats();
    assert_eq!((s.sent, s.duplicates, s.rejected), (12, 12, 0));
    assert_eq!(
        load_cursor(&store).unwrap(),
        ev.read_after(None, 100).unwrap().1
    );
}

#[tokio::test]
async fn a_mapping_error_is_rejected_counted_and_the_pipeline_goes_on() {
    let es = Receiver::start().await;
    es.state().item_rule = Some(Box::new(|doc: &Value| {
        (doc["kind"] == "ptrace").then_some((
            400,
            "document_parsing_exception",
            "failed to parse field [request] of type [long]",
        ))
    }));
    let dir = tempfile::TempDir::with_prefix("baseliner-es-reject-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, (0..20).map(|i| event(i, T0)));
    let written = all_written(&ev);
    let ptraces = written
        .iter()
        .filter(|e| matches!(e.detail, EventDetail::Ptrace { .. }))
        .count();
    assert_eq!(ptraces, 4);
    let mut x = ElasticExporter::new(config(&es.url, 8), &store)
        .unwrap()
        .with_host(HOST);
    let steps = drain(&mut x, &ev, &store, 10).await;
    assert!(
        steps.iter().all(|s| !matches!(s, Step::Failed { .. })),
        "{steps:?}"
    );
    assert_eq!(steps.last(), Some(&Step::Idle));
    es.assert_valid();
    let s = x.stats();
    assert_eq!((s.sent, s.rejected, s.failed_attempts), (16, 4, 0));
    let last = s.last_rejection.unwrap();
    assert!(
        last.starts_with("400") && last.contains("document_parsing_exception"),
        "{last}"
    );
    assert!(last.contains("failed to parse field [request]"), "{last}");
    // Everything else arrived once, in order; the cursor is past the rejected events.
    let expected: Vec<Event> = written
        .into_iter()
        .filter(|e| !matches!(e.detail, EventDetail::Ptrace { .. }))
        .collect();
    assert_eq!(es.created(), ids_of(&expected));
    assert_eq!(
        load_cursor(&store).unwrap(),
        ev.read_after(None, 100).unwrap().1
    );
    // Not sent again.
    assert_eq!(x.step(&ev, &store).await, Step::Idle);
    assert_eq!(es.state().item_statuses[&400], 4);
}

#[tokio::test]
async fn the_cursor_survives_a_reopen_and_nothing_is_sent_twice() {
    let es = Receiver::start().await;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-reopen-").unwrap();
    let first_end;
    {
        let store = Store::open(dir.path()).unwrap();
        let ev = evidence_with(&store, (0..10).map(|i| event(i, T0)));
        let mut x = ElasticExporter::new(config(&es.url, 4), &store)
            .unwrap()
            .with_host(HOST);
        drain(&mut x, &ev, &store, 10).await;
        first_end = x.cursor();
        assert!(first_end.is_some());
    }
    assert_eq!(es.state().docs.len(), 10);
    let store = Store::open_waiting(dir.path(), Duration::from_secs(10)).unwrap();
    assert_eq!(load_cursor(&store).unwrap(), first_end);
    let ev = evidence_with(&store, (10..17).map(|i| event(i, T0)));
    let mut x = ElasticExporter::new(config(&es.url, 4), &store)
        .unwrap()
        .with_host(HOST);
    assert_eq!(x.cursor(), first_end);
    assert_eq!(x.stats().cursor, first_end.map(|c| c.to_string()));
    drain(&mut x, &ev, &store, 10).await;
    es.assert_valid();
    let st = es.state();
    assert_eq!(st.docs.len(), 17);
    assert_eq!(
        st.item_statuses,
        BTreeMap::from([(201, 17)]),
        "nothing sent twice"
    );
    drop(st);
    assert_eq!(es.created(), ids_of(&all_written(&ev)));
    assert_eq!(x.stats().sent, 7);
}

#[tokio::test]
async fn credentials_are_sent_as_configured() {
    let es = Receiver::start().await;
    let dir = tempfile::TempDir::with_prefix("baseliner-es-auth-").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ev = evidence_with(&store, [event(0, T0)]);
    let mut c = config(&es.url, 10);
    c.username = Some("elastic".into());
    c.password = Some("changeme".into());
    let mut x = ElasticExporter::new(c, &store).unwrap();
    drain(&mut x, &ev, &store, 5).await;
    for r in es.requests() {
        assert_eq!(r.headers["authorization"], "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
    }
    store.remove_json(CURSOR_TREE, CURSOR_KEY).unwrap();
    let mut c = config(&es.url, 10);
    c.api_key = Some("a2V5aWQ6c2VjcmV0".into());
    let mut x = ElasticExporter::new(c, &store).unwrap();
    drain(&mut x, &ev, &store, 5).await;
    let last = es.requests().pop().unwrap();
    assert_eq!(last.headers["authorization"], "ApiKey a2V5aWQ6c2VjcmV0");
    // Without `with_host`, this machine's name.
    let doc = es.state().docs.values().next().unwrap().clone();
    assert_eq!(doc["host"]["name"], super::super::hostname());
}

#[tokio::test]
async fn delivery_polls_like_the_agent_loop_with_backoff() {
    let es = Receiver::start().await;
    es.state().bulk_script.push_back(Answer::Status(503));
    let dir = tempfile::TempDir::with_prefix("baseliner-es-poll-").unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ev = Arc::new(Mutex::new(evidence_with(
        &store,
        (0..25).map(|i| event(i, T0)),
    )));
    let mut c = config(&es.url, 10);
    c.flush_interval = Duration::from_millis(50);
    let x = ElasticExporter::new(c, &store).unwrap().with_host(HOST);
    let mut d = ElasticDelivery::new(x, ev.clone(), store.clone());
    let started = Instant::now();
    while d.stats().sent < 25 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            d.stats()
        );
        d.poll();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The failed attempt waited its backoff (at least 0.5 s) before the retry.
    assert!(started.elapsed() >= Duration::from_millis(500));
    // New evidence is picked up by a later poll.
    {
        let mut ev = ev.lock().unwrap();
        for i in 25..28 {
            ev.append(&event(i, T0)).unwrap();
        }
        ev.flush_all().unwrap();
    }
    while d.stats().sent < 28 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            d.stats()
        );
        d.poll();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    es.assert_valid();
    let s = d.stats();
    assert_eq!((s.sent, s.failed_attempts), (28, 1));
    assert_eq!(es.state().docs.len(), 28);
    assert_eq!(es.created(), ids_of(&all_written(&ev.lock().unwrap())));
}
