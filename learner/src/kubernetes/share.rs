//! One baseline for all replicas: every node publishes what it learned of each Kubernetes
//! workload as its part of the workload's `WorkloadProfile` ([`publish`]), and scores and
//! enforces with its own profile merged with the other nodes' parts (read through a watch).
//! A replica whose part diverges from its siblings' is logged and shown in the status.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt as _, TryStreamExt as _};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};
use profiles::review;

use super::{
    crd::{WorkloadProfile, merge},
    publish::{LocalProfile, publish},
};
use crate::control::{ModeSources, SharedRecorder};

/// How often changed profiles are published by default.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(15);
/// Every profile is published again this often, changed or not (its status stays fresh).
const REFRESH_EVERY: u32 = 40;

/// Workload → what the last publication said of diverging replicas.
pub type Divergent = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// What identifies a published state of a workload's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    revision: String,
    entries: usize,
    last_change_ns: u64,
    approvals: usize,
    mode: String,
}

/// Publishes this node's profiles of Kubernetes workloads every `period`.
pub async fn publish_loop(
    client: Client,
    node: String,
    period: Duration,
    recorder: SharedRecorder,
    sources: ModeSources,
    divergent: Divergent,
) {
    let mut published: HashMap<String, Published> = HashMap::new();
    let mut every = tokio::time::interval(period);
    let mut round = 0u32;
    loop {
        every.tick().await;
        round = round.wrapping_add(1);
        let refresh = round.is_multiple_of(REFRESH_EVERY);
        let due = match local_profiles(&recorder, &sources) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "reading profiles to publish");
                continue;
            }
        };
        for (workload, local, approvals) in due {
            let state = Published {
                revision: local.revision.clone(),
                entries: local.profile.len(),
                last_change_ns: local.stable_since_ns,
                approvals: approvals.len(),
                mode: format!("{} {}", local.mode, local.mode_source),
            };
            if !refresh && published.get(&workload) == Some(&state) {
                continue;
            }
            match publish(&client, &node, &workload, &local, &approvals).await {
                Ok(object) => {
                    published.insert(workload.clone(), state);
                    note_divergence(&divergent, &workload, &object);
                }
                Err(e) => {
                    tracing::warn!(%workload, error = %e, "publishing the WorkloadProfile");
                }
            }
        }
    }
}

/// Every Kubernetes workload's latest local profile, with its approvals.
fn local_profiles(
    recorder: &SharedRecorder,
    sources: &ModeSources,
) -> anyhow::Result<Vec<(String, LocalProfile, Vec<review::Approval>)>> {
    let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
    let mut workloads: Vec<String> = r
        .profile_keys()?
        .into_iter()
        .map(|k| k.workload)
        .filter(|w| w.starts_with("k8s:"))
        .collect();
    workloads.dedup();
    let sources = sources.read().unwrap_or_else(|e| e.into_inner()).clone();
    let stored_modes: BTreeMap<String, profiles::mode::Mode> = r.modes()?.into_iter().collect();
    let mut out = Vec::new();
    for w in workloads {
        let Some((key, stored)) = r.latest_profile(&w)? else {
            continue;
        };
        let approvals = review::approvals(r.store(), Some(&w))?;
        let mode = r.mode(&w)?;
        let mode_source = match sources.get(&w) {
            Some(a) => a.clone(),
            None if stored_modes.contains_key(&w) => "set through the API".into(),
            None => "the agent's default".into(),
        };
        out.push((
            w,
            LocalProfile {
                revision: key.revision,
                stable_since_ns: stored.learning.last_change_ns(),
                profile: stored.profile,
                mode,
                mode_source,
                threshold: merge::Threshold::default(),
            },
            approvals,
        ));
    }
    Ok(out)
}

/// Logs a change in what the object's status says of diverging replicas, and keeps it.
fn note_divergence(divergent: &Divergent, workload: &str, object: &WorkloadProfile) {
    let now: Vec<String> = object
        .status
        .as_ref()
        .map(|s| {
            s.divergent
                .iter()
                .map(|d| format!("{}: {}", d.node, d.reason))
                .collect()
        })
        .unwrap_or_default();
    let mut all = divergent.lock().unwrap_or_else(|e| e.into_inner());
    if all
        .get(workload)
        .map_or(!now.is_empty(), |before| *before != now)
    {
        for d in &now {
            tracing::warn!(%workload, "replica diverges from its siblings: {d}");
        }
    }
    if now.is_empty() {
        all.remove(workload);
    } else {
        all.insert(workload.to_string(), now);
    }
}

/// Keeps the recorder's view of what other nodes learned ([`crate::recorder::Recorder::set_shared`])
/// in line with the `WorkloadProfile` objects.
pub async fn watch_profiles(client: Client, node: String, recorder: SharedRecorder) {
    let api: Api<WorkloadProfile> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(watcher::Event::Apply(wp) | watcher::Event::InitApply(wp))) => {
                let (others, rejected) = wp.other_parts(&node);
                for e in rejected {
                    tracing::warn!(workload = %wp.workload_id(), error = %e,
                        "a node's part of a WorkloadProfile is not valid: left out");
                }
                let shared = (!others.is_empty()).then(|| merge::merge(&others));
                recorder
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_shared(&wp.workload_id(), shared);
            }
            Ok(Some(watcher::Event::Delete(wp))) => recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_shared(&wp.workload_id(), None),
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "watching WorkloadProfiles (retrying)"),
        }
    }
}
