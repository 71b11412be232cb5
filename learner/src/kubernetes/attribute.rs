//! Kubernetes metadata for events, on the event loop. An event from a pod's cgroup gets its
//! pod's namespace, name, container, image, owner and labels, and the workload id of its owner
//! ([`workload_id`]). An event that arrives before the watch has reported its pod (or before
//! the kubelet has reported the container's id) is held, in order, until the pod is known or
//! `max_hold` has passed; only then does it go on without metadata, and it is counted.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use profiles::Event;
use serde::Serialize;

use super::{
    identity::workload_id,
    pods::{Lookup, PodCache},
};

/// How long an event of an unknown pod is held by default.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(10);
/// Events held at most; past this the oldest go on without metadata.
pub const MAX_HELD: usize = 65_536;

/// Counters of attribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttributionStats {
    /// Events given pod metadata.
    pub attributed: u64,
    /// Of those, events that had to wait for their pod.
    pub held: u64,
    /// Events of a pod that went on without metadata: their pod was not known in time.
    pub unattributed: u64,
    /// Events waiting now.
    pub waiting: u64,
}

struct Held {
    since: Instant,
    pod_uid: String,
    event: Event,
}

/// Attributes events to pods, holding those whose pod is not known yet.
pub struct Attribution {
    cache: Arc<RwLock<PodCache>>,
    held: VecDeque<Held>,
    /// Pods with events held (later events of theirs queue behind, to keep the order).
    held_pods: HashSet<String>,
    max_hold: Duration,
    /// The cache generation last tried against.
    seen: u64,
    stats: AttributionStats,
}

impl Attribution {
    /// Attribution against the shared `cache`, holding events at most `max_hold`.
    pub fn new(cache: Arc<RwLock<PodCache>>, max_hold: Duration) -> Attribution {
        Attribution {
            cache,
            held: VecDeque::new(),
            held_pods: HashSet::new(),
            max_hold,
            seen: 0,
            stats: AttributionStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> AttributionStats {
        AttributionStats {
            waiting: self.held.len() as u64,
            ..self.stats
        }
    }

    /// Takes one event; pushes onto `ready` what can go on now, in order: held events whose
    /// pod became known first, then `event` unless it must wait.
    pub fn admit(&mut self, mut event: Event, now: Instant, ready: &mut Vec<Event>) {
        self.release(now, ready);
        let Some(uid) = event.workload.pod_uid.clone() else {
            // A container outside any pod (or a host cgroup): attributed when the id is known,
            // never held.
            if event.workload.container_id.is_some() {
                let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
                if let Lookup::Found(meta) =
                    cache.lookup(None, event.workload.container_id.as_deref())
                {
                    drop(cache);
                    self.stats.attributed += 1;
                    set_meta(&mut event, meta);
                }
            }
            ready.push(event);
            return;
        };
        if !self.held_pods.contains(&uid) {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Lookup::Found(meta) =
                cache.lookup(Some(&uid), event.workload.container_id.as_deref())
            {
                drop(cache);
                self.stats.attributed += 1;
                set_meta(&mut event, meta);
                ready.push(event);
                return;
            }
        }
        if self.held.len() >= MAX_HELD {
            self.release_oldest(ready);
        }
        self.held_pods.insert(uid.clone());
        self.held.push_back(Held {
            since: now,
            pod_uid: uid,
            event,
        });
    }

    /// Pushes onto `ready` the held events whose pod is now known, and those held too long
    /// (without metadata). Call it often (each tick) so held events do not wait for the next
    /// event.
    pub fn release(&mut self, now: Instant, ready: &mut Vec<Event>) {
        if self.held.is_empty() {
            return;
        }
        let generation = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation();
        let expired = self
            .held
            .front()
            .is_some_and(|h| now.duration_since(h.since) >= self.max_hold);
        if generation == self.seen && !expired {
            return;
        }
        self.seen = generation;
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let mut waiting = VecDeque::with_capacity(self.held.len());
        // Pods that still wait: their later events wait behind the first.
        let mut still: HashSet<String> = HashSet::new();
        for mut h in self.held.drain(..) {
            if still.contains(&h.pod_uid) {
                waiting.push_back(h);
                continue;
            }
            match cache.lookup(Some(&h.pod_uid), h.event.workload.container_id.as_deref()) {
                Lookup::Found(meta) => {
                    self.stats.attributed += 1;
                    self.stats.held += 1;
                    set_meta(&mut h.event, meta);
                    ready.push(h.event);
                }
                _ if now.duration_since(h.since) >= self.max_hold => {
                    self.stats.unattributed += 1;
                    tracing::debug!(pod_uid = %h.pod_uid, workload = %h.event.workload.id,
                        "event of a pod not known in time: recorded without pod metadata");
                    ready.push(h.event);
                }
                _ => {
                    still.insert(h.pod_uid.clone());
                    waiting.push_back(h);
                }
            }
        }
        drop(cache);
        self.held = waiting;
        self.held_pods = still;
    }

    /// Lets every held event go (at shutdown), attributed where possible.
    pub fn drain(&mut self, ready: &mut Vec<Event>) {
        self.release(Instant::now() + self.max_hold, ready);
    }

    fn release_oldest(&mut self, ready: &mut Vec<Event>) {
        if let Some(h) = self.held.pop_front() {
            self.stats.unattributed += 1;
            if !self.held.iter().any(|o| o.pod_uid == h.pod_uid) {
                self.held_pods.remove(&h.pod_uid);
            }
            ready.push(h.event);
        }
    }
}

/// Gives `event` its container's metadata and the owner's workload id.
fn set_meta(event: &mut Event, meta: Arc<profiles::KubeMeta>) {
    event.workload.id = workload_id(&meta);
    event.workload.k8s = Some(meta);
}

#[cfg(test)]
mod tests;
