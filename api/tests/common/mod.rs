//! A fake in-memory agent shared by the API tests.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use api::{Agent, AgentRuntime, AlertCounters, ApiError, Settings};
use profiles::{
    learning::Learning,
    mode::Mode,
    model::{EntryKind, Profile},
    rates::RateSamples,
    store::{ProfileKey, StoredProfile},
};

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
            }),
            ..self
        }
    }

    /// Modes and profiles, to check a request changed nothing.
    pub fn snapshot(
        &self,
    ) -> (
        BTreeMap<String, Mode>,
        BTreeMap<ProfileKey, StoredProfile>,
        usize,
    ) {
        (
            self.modes.lock().unwrap().clone(),
            self.profiles.lock().unwrap().clone(),
            *self.writes.lock().unwrap(),
        )
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

    fn subscribe_alerts(&self) -> Option<tokio::sync::broadcast::Receiver<scorer::alert::Alert>> {
        self.runtime.as_ref().map(|_| self.stream.subscribe())
    }

    fn now_ns(&self) -> u64 {
        NOW
    }
}

/// The router over `fake`.
pub fn app(fake: &Arc<Fake>) -> axum::Router {
    api::app(fake.clone())
}
