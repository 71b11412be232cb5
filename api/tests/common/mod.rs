//! A fake in-memory agent shared by the API tests.

#![allow(dead_code)]

mod doc;
mod http;

#[allow(unused_imports)] // not every test file drives the router
pub use {doc::*, http::*};

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use api::{Agent, AgentRuntime, AlertCounters, ApiError, AuditRecord, Settings};
use profiles::{
    Event,
    diff::DiffEntry,
    learning::Learning,
    mode::Mode,
    model::{EntryKind, Profile},
    rates::RateSamples,
    review::{self, Approval, Proposal},
    store::{ProfileKey, Store, StoredProfile},
};
use scorer::alert::Alert;

/// One second in nanoseconds.
pub const S: u64 = 1_000_000_000;
/// The fake clock: 10 000 s after the epoch.
pub const NOW: u64 = 10_000 * S;

pub const NGINX: &str = "/system.slice/nginx.service";
pub const DB: &str = "/system.slice/db.service";
pub const ORPHAN: &str = "/kubepods/orphan";
pub const CRON: &str = "/system.slice/cron.service";

/// Six entries, one or two of each kind.
pub const PROFILE: &str = r#"{
    "execs": [[{"path": "/usr/sbin/nginx", "args": ["-g", "daemon off;"]},
               {"count": 2, "first_ns": 10, "last_ns": 20}]],
    "lineage": [[{"parent": "/bin/sh", "child": "/usr/sbin/nginx"},
                 {"count": 2, "first_ns": 10, "last_ns": 20}]],
    "files": [[{"path": "/etc/nginx/nginx.conf", "access": "read"},
               {"count": 1, "first_ns": 15, "last_ns": 15}],
              [{"path": "/var/log/nginx/*.log", "access": "write"},
               {"count": 3, "first_ns": 11, "last_ns": 30}]],
    "connects": [[{"family": "inet", "protocol": "tcp", "addr": "127.0.0.1", "port": 5432},
                  {"count": 4, "first_ns": 12, "last_ns": 40}]],
    "listens": [[{"family": "inet6", "protocol": "tcp", "addr": "::", "port": 443},
                 {"count": 1, "first_ns": 5, "last_ns": 5}]]
}"#;

pub fn profile() -> Profile {
    serde_json::from_str(PROFILE).unwrap()
}

/// A stored profile that started at `started_s` and last changed at `changed_ns`.
pub fn stored(started_s: u64, changed_ns: u64) -> StoredProfile {
    let mut learning = Learning::new(started_s * S);
    learning.changed(&[EntryKind::Exec, EntryKind::File], changed_ns);
    learning.changed(&[EntryKind::Connect], changed_ns - S);
    StoredProfile {
        profile: profile(),
        learning,
    }
}

pub fn key(workload: &str, revision: &str) -> ProfileKey {
    ProfileKey::new(workload, revision).unwrap()
}

/// An in-memory agent with a fixed clock.
pub struct Fake {
    pub settings: Settings,
    pub runtime: Option<AgentRuntime>,
    pub modes: Mutex<BTreeMap<String, Mode>>,
    pub profiles: Mutex<BTreeMap<ProfileKey, StoredProfile>>,
    /// Windows of activity by profile.
    pub rates: Mutex<BTreeMap<ProfileKey, RateSamples>>,
    /// Workloads whose cgroup exists.
    pub existing: BTreeSet<String>,
    /// When set, every store read fails with a 500.
    pub broken: bool,
    /// Calls of `set_mode` and `import`.
    pub writes: Mutex<usize>,
    /// Stored alerts.
    pub alerts: Mutex<Vec<scorer::alert::Alert>>,
    /// The audit log.
    pub audit: Mutex<Vec<api::AuditRecord>>,
    /// The live alert stream (only with a runtime).
    pub stream: tokio::sync::broadcast::Sender<scorer::alert::Alert>,
    /// The review queue: a real store in a temporary directory, opened on first use.
    pub reviews: OnceLock<ReviewStore>,
    /// The evidence store's events; `None`: no evidence store.
    pub events: Option<Vec<Event>>,
    /// Cardholder-data path patterns.
    pub pci: Vec<String>,
    /// Change counters: with them the router caches answers (the tests bump them).
    pub versions: Option<api::Versions>,
}

/// A real store for the review queue, removed with the fake.
pub struct ReviewStore {
    pub store: Store,
    _dir: tempfile::TempDir,
}

/// Everything an API call may change, to check a refused call changed nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub modes: BTreeMap<String, Mode>,
    pub profiles: BTreeMap<ProfileKey, StoredProfile>,
    pub writes: usize,
    pub alerts: Vec<Alert>,
    pub audit: Vec<AuditRecord>,
    pub reviews: Vec<Proposal>,
    pub approvals: Vec<Approval>,
}

impl Fake {
    /// No modes, no profiles, no cgroups.
    pub fn empty() -> Fake {
        Fake {
            settings: Settings {
                default_mode: Mode::Learn,
                stable_after: Duration::from_secs(60),
                auto_alert_after: Some(Duration::from_secs(3600)),
                max_entries: 4096,
            },
            runtime: None,
            modes: Mutex::default(),
            profiles: Mutex::default(),
            rates: Mutex::default(),
            existing: BTreeSet::new(),
            broken: false,
            writes: Mutex::new(0),
            alerts: Mutex::new(Vec::new()),
            audit: Mutex::new(Vec::new()),
            stream: tokio::sync::broadcast::channel(16).0,
            reviews: OnceLock::new(),
            events: None,
            pci: Vec::new(),
            versions: None,
        }
    }

    /// nginx: revisions r1 (learning for 20.5 s, changed last) and r2 (stable for 70 s), no
    /// mode; db: revision a (incomplete), mode enforce; orphan: mode alert, no profile;
    /// cron: a cgroup only.
    pub fn new() -> Fake {
        let f = Fake::empty();
        {
            let mut p = f.profiles.lock().unwrap();
            p.insert(key(NGINX, "r1"), stored(9_000, NOW - 20 * S - S / 2));
            p.insert(key(NGINX, "r2"), stored(9_900, NOW - 70 * S));
            let mut db = stored(8_000, 9_000 * S);
            db.learning
                .mark_incomplete("size bound forced widening of files");
            p.insert(key(DB, "a"), db);
            let mut m = f.modes.lock().unwrap();
            m.insert(DB.into(), Mode::Enforce);
            m.insert(ORPHAN.into(), Mode::Alert);
        }
        Fake {
            existing: [CRON.to_string()].into(),
            ..f
        }
    }

    pub fn with_runtime(self) -> Fake {
        Fake {
            runtime: Some(AgentRuntime {
                pid: 4242,
                started_ns: 9_500 * S,
                store: "/var/lib/baseliner".into(),
                recorded: 100,
                redactions: 2,
                not_recorded: 1,
                kernel: serde_json::json!({"total": {"seen": 120, "dropped": 0}}),
                alerts: AlertCounters {
                    scored: 50,
                    raised: 3,
                    repeats: 7,
                    delivered: 2,
                    failed: 4,
                    pending: 1,
                },
                enforcement: Default::default(),
                ring: Default::default(),
                evidence_dropped: 0,
                elasticsearch: None,
                kubernetes: None,
            }),
            ..self
        }
    }

    /// Modes, profiles, alerts, the audit log and the review queue, to check a request
    /// changed nothing.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            modes: self.modes.lock().unwrap().clone(),
            profiles: self.profiles.lock().unwrap().clone(),
            writes: *self.writes.lock().unwrap(),
            alerts: self.alerts.lock().unwrap().clone(),
            audit: self.audit.lock().unwrap().clone(),
            reviews: review::list(self.store(), None, None).unwrap(),
            approvals: review::approvals(self.store(), None).unwrap(),
        }
    }

    /// The review queue's store.
    pub fn store(&self) -> &Store {
        &self
            .reviews
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                ReviewStore { store, _dir: dir }
            })
            .store
    }

    /// Proposes the first entry of `event` (a deviation of its workload that raised the alert
    /// `alert-key`); returns the pending proposal.
    pub fn propose(&self, event: &Event) -> Proposal {
        let entry = event_entry(event);
        review::observe(
            self.store(),
            &event.workload.id,
            &entry,
            event,
            Some("alert-key"),
        )
        .unwrap()
    }

    /// The profile approvals of `workload` are applied to: its latest.
    pub fn latest_profile(&self, workload: &str) -> Option<Profile> {
        let key = api::summary::pick_revision(self, workload, None).ok()?;
        Some(self.profiles.lock().unwrap()[&key].profile.clone())
    }

    fn check(&self) -> Result<(), ApiError> {
        if self.broken {
            Err(ApiError::internal("store: disk on fire"))
        } else {
            Ok(())
        }
    }
}

impl Agent for Fake {
    fn settings(&self) -> Settings {
        self.settings.clone()
    }

    fn runtime(&self) -> Option<AgentRuntime> {
        self.runtime.clone()
    }

    fn modes(&self) -> Result<Vec<(String, Mode)>, ApiError> {
        self.check()?;
        let m = self.modes.lock().unwrap();
        Ok(m.iter().map(|(w, m)| (w.clone(), *m)).collect())
    }

    fn set_mode(&self, workload: &str, mode: Mode) -> Result<Option<Mode>, ApiError> {
        self.check()?;
        *self.writes.lock().unwrap() += 1;
        Ok(self.modes.lock().unwrap().insert(workload.into(), mode))
    }

    fn workload_exists(&self, workload: &str) -> bool {
        self.existing.contains(workload)
    }

    fn profile_keys(&self) -> Result<Vec<ProfileKey>, ApiError> {
        self.check()?;
        Ok(self.profiles.lock().unwrap().keys().cloned().collect())
    }

    fn profile(&self, key: &ProfileKey) -> Result<Option<StoredProfile>, ApiError> {
        self.check()?;
        Ok(self.profiles.lock().unwrap().get(key).cloned())
    }

    fn rate_samples(&self, key: &ProfileKey) -> Result<Option<RateSamples>, ApiError> {
        self.check()?;
        Ok(self.rates.lock().unwrap().get(key).cloned())
    }

    fn import(
        &self,
        key: &ProfileKey,
        profile: StoredProfile,
        rates: Option<RateSamples>,
    ) -> Result<(), ApiError> {
        self.check()?;
        *self.writes.lock().unwrap() += 1;
        self.profiles.lock().unwrap().insert(key.clone(), profile);
        let mut all = self.rates.lock().unwrap();
        match rates {
            Some(r) => all.insert(key.clone(), r),
            None => all.remove(key),
        };
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<scorer::alert::Alert>, ApiError> {
        self.check()?;
        Ok(self.alerts.lock().unwrap().clone())
    }

    fn audit(&self) -> Result<Vec<api::AuditRecord>, ApiError> {
        self.check()?;
        Ok(self.audit.lock().unwrap().clone())
    }

    fn record_audit(&self, record: api::AuditRecord) -> Result<(), ApiError> {
        self.check()?;
        self.audit.lock().unwrap().push(record);
        Ok(())
    }

    fn acknowledge(
        &self,
        key: &str,
        ack: scorer::alert::Ack,
    ) -> Result<scorer::alert::Alert, ApiError> {
        self.check()?;
        let mut all = self.alerts.lock().unwrap();
        let a = all
            .iter_mut()
            .find(|a| a.key == key)
            .ok_or_else(|| ApiError::not_found(format!("no alert {key:?}")))?;
        if a.ack.is_some() {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "already acknowledged",
            ));
        }
        *self.writes.lock().unwrap() += 1;
        a.ack = Some(ack);
        Ok(a.clone())
    }

    fn reviews(
        &self,
        workload: Option<&str>,
        state: Option<review::State>,
    ) -> Result<Vec<Proposal>, ApiError> {
        self.check()?;
        Ok(review::list(self.store(), workload, state)?)
    }

    fn review(&self, id: &str) -> Result<Proposal, ApiError> {
        self.check()?;
        Ok(review::get(self.store(), id)?)
    }

    /// As the agent does: approves in the store, then adds the entry to the workload's latest
    /// profile (409 when it has none).
    fn approve(
        &self,
        id: &str,
        reviewer: &str,
        comment: &str,
        pattern: Option<&str>,
    ) -> Result<Approval, ApiError> {
        self.check()?;
        let p = review::get(self.store(), id)?;
        let key = api::summary::pick_revision(self, &p.workload, None).map_err(|_| {
            ApiError::conflict(format!(
                "workload {:?} has no profile to add the entry to",
                p.workload
            ))
        })?;
        let a = review::approve(self.store(), id, reviewer, comment, pattern, NOW)?;
        let mut profiles = self.profiles.lock().unwrap();
        a.apply(&mut profiles.get_mut(&key).unwrap().profile);
        *self.writes.lock().unwrap() += 1;
        Ok(a)
    }

    fn reject(&self, id: &str, reviewer: &str, comment: &str) -> Result<Proposal, ApiError> {
        self.check()?;
        let p = review::reject(self.store(), id, reviewer, comment, NOW)?;
        *self.writes.lock().unwrap() += 1;
        Ok(p)
    }

    fn approvals(&self, workload: Option<&str>) -> Result<Vec<Approval>, ApiError> {
        self.check()?;
        Ok(review::approvals(self.store(), workload)?)
    }

    fn subscribe_alerts(&self) -> Option<tokio::sync::broadcast::Receiver<scorer::alert::Alert>> {
        self.runtime.as_ref().map(|_| self.stream.subscribe())
    }

    fn events(&self, q: &profiles::evidence::EvidenceQuery) -> Result<Vec<Event>, ApiError> {
        self.check()?;
        let all = self.events.as_ref().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no evidence store",
            )
        })?;
        let mut out: Vec<Event> = all
            .iter()
            .filter(|e| q.workload.as_ref().is_none_or(|w| &e.workload.id == w))
            .filter(|e| q.kinds.is_empty() || q.kinds.iter().any(|k| k == e.detail.kind()))
            .filter(|e| q.since_ns.is_none_or(|s| e.ts_ns >= s))
            .filter(|e| q.until_ns.is_none_or(|u| e.ts_ns <= u))
            .cloned()
            .collect();
        out.sort_by_key(|e| e.ts_ns);
        out.truncate(q.limit.unwrap_or(usize::MAX));
        Ok(out)
    }

    fn pci_paths(&self) -> Vec<String> {
        self.pci.clone()
    }

    fn versions(&self) -> Option<&api::Versions> {
        self.versions.as_ref()
    }

    fn now_ns(&self) -> u64 {
        NOW
    }
}

/// The router over `fake`.
pub fn app(fake: &Arc<Fake>) -> axum::Router {
    api::app(fake.clone())
}

// ---------------------------------------------------------------- events and alerts

/// An event of `workload` at `ts_s` seconds, of the kind and fields in `detail`.
pub fn event(workload: &str, ts_s: u64, detail: serde_json::Value) -> Event {
    let mut v = serde_json::json!({
        "schema": 1, "ts_ns": ts_s * S,
        "workload": {"id": workload, "cgroup_id": 7, "cgroup": workload},
        "pid": 1, "tid": 1, "ppid": 0, "uid": 0, "gid": 0, "comm": "x",
    });
    v.as_object_mut()
        .unwrap()
        .extend(detail.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

/// An exec of `path` with `argv`.
pub fn exec(workload: &str, ts_s: u64, argv: &[&str]) -> Event {
    event(
        workload,
        ts_s,
        serde_json::json!({"kind": "exec", "exe": argv[0], "filename": argv[0],
                           "argv": argv, "argv_truncated": false}),
    )
}

/// A TCP connect to `addr:port`.
pub fn connect(workload: &str, ts_s: u64, addr: &str, port: u16) -> Event {
    event(
        workload,
        ts_s,
        serde_json::json!({"kind": "connect", "family": "inet", "protocol": "tcp",
                           "addr": addr, "port": port}),
    )
}

/// The first profile entry `event` records.
pub fn event_entry(event: &Event) -> DiffEntry {
    profiles::model::event_entries(event).remove(0)
}

/// An acknowledgement by `by` at `at_ns`, without comment.
pub fn acked_by(by: &str, at_ns: u64) -> scorer::alert::Ack {
    scorer::alert::Ack {
        by: by.into(),
        at_ns,
        comment: String::new(),
    }
}

/// The alert a miner-named exec of `path` in `workload` raises, last seen at `last_s`.
pub fn alert(workload: &str, path: &str, last_s: u64) -> Alert {
    scorer::score::Scorer::default()
        .score(
            &exec(workload, last_s, &[path]),
            &Profile::default(),
            &mut Default::default(),
        )
        .expect("a miner name alone raises an alert")
}

// ---------------------------------------------------------------- a seeded agent

/// The program of the seeded exec proposal.
pub const TOOL: &str = "/opt/app/bin/tool";

/// What [`seeded`] put in the fake.
pub struct Seeds {
    /// The key of nginx's alert.
    pub alert: String,
    /// nginx's exec of [`TOOL`] (seen at 100 s).
    pub tool: Proposal,
    /// nginx's connect to 10.1.2.3:443 (seen at 200 s).
    pub net: Proposal,
    /// db's exec of /usr/bin/psql (seen at 300 s).
    pub db: Proposal,
}

/// [`Fake::new`] with an alert of nginx and three pending proposals (see [`Seeds`]).
pub fn seeded() -> (Arc<Fake>, Seeds) {
    let fake = Fake::new();
    let a = alert(NGINX, "/tmp/xmrig", 100);
    let seeds = Seeds {
        alert: a.key.clone(),
        tool: fake.propose(&exec(NGINX, 100, &[TOOL, "-x"])),
        net: fake.propose(&connect(NGINX, 200, "10.1.2.3", 443)),
        db: fake.propose(&exec(DB, 300, &["/usr/bin/psql"])),
    };
    fake.alerts.lock().unwrap().push(a);
    (Arc::new(fake), seeds)
}

impl Seeds {
    /// `path` with its parameters naming seeded things: nginx, its tool proposal, its alert.
    pub fn uri(&self, path: &str) -> String {
        path.replace("{workload}", &api::workload_segment(NGINX))
            .replace("{id}", &self.tool.id)
            .replace("{key}", &self.alert)
    }

    /// The URI of a call of `op` on seeded things ([`Seeds::uri`]) with every required query
    /// parameter given.
    pub fn call_uri(&self, op: &Operation) -> String {
        let mut uri = self.uri(&op.path);
        let params = op.op["parameters"].as_array().cloned().unwrap_or_default();
        let required = params
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true);
        for (i, p) in required.enumerate() {
            let value = match p["name"].as_str().unwrap() {
                "workload" => api::workload_segment(NGINX),
                "from" => "r2".to_string(),
                "namespace" => "shop".to_string(),
                other => panic!("{} {}: no value for {other}", op.method, op.path),
            };
            let sep = if i == 0 { '?' } else { '&' };
            uri = format!("{uri}{sep}{}={value}", p["name"].as_str().unwrap());
        }
        uri
    }

    /// A body that makes the call at `path` succeed; empty for reads.
    pub fn body(&self, path: &str) -> String {
        let json = match path {
            "/v1/workloads/{workload}/mode" => serde_json::json!({"mode": "enforce"}),
            "/v1/profiles/import" => {
                let e = profiles::export::export(NGINX, "r3", serde_json::Value::Null, &profile());
                return profiles::export::to_json(&e);
            }
            "/v1/alerts/{key}/ack" => serde_json::json!({"comment": "seen"}),
            "/v1/reviews/{id}/approve" => serde_json::json!({"comment": "fine"}),
            "/v1/reviews/{id}/reject" => serde_json::json!({"comment": "no"}),
            "/v1/reviews/bulk" => {
                serde_json::json!({"action": "reject", "ids": [self.net.id, self.db.id]})
            }
            _ => return String::new(),
        };
        json.to_string()
    }
}
