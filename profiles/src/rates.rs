//! Windowed behaviour: how much a workload does per time window (events per kind, new entities,
//! connect fan-out), counted while it learns and kept beside its profile as training samples
//! for the scorer's rate model.
//!
//! A window opens at a workload's first event and lasts [`DEFAULT_WINDOW_NS`]; the first event
//! at or after its end closes it (or [`WindowCounter::close_due`], when the workload goes
//! quiet). Windows without events are not counted: the model describes a workload while it is
//! active, and quiet is never suspicious. Events arrive in kernel-timestamp order per CPU, not
//! globally: a slightly older event counts in the open window.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
};

use serde::{Deserialize, Serialize};

use crate::{Event, EventDetail};

/// Length of a window: 10 seconds.
pub const DEFAULT_WINDOW_NS: u64 = 10_000_000_000;

/// Training samples kept per profile; beyond this, reservoir sampling keeps a uniform sample
/// of every window seen (2048 windows of 10 s: almost 6 hours of activity).
pub const MAX_SAMPLES: usize = 2048;

/// Number of features of a window.
pub const FEATURES: usize = 7;

/// One measured quantity of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Programs executed.
    Execs = 0,
    /// Files opened.
    Opens = 1,
    /// Outgoing connections.
    Connects = 2,
    /// Binds and listens.
    Listens = 3,
    /// ptrace and set*id calls.
    Privileged = 4,
    /// Events that brought something the profile did not have (learning: a new entry;
    /// scoring: a novelty).
    NewEntities = 5,
    /// Distinct connection destinations (address and port).
    FanOut = 6,
}

impl Feature {
    /// Every feature, in index order.
    pub const ALL: [Feature; FEATURES] = [
        Feature::Execs,
        Feature::Opens,
        Feature::Connects,
        Feature::Listens,
        Feature::Privileged,
        Feature::NewEntities,
        Feature::FanOut,
    ];

    /// Index in a window's counts.
    pub fn index(self) -> usize {
        self as usize
    }

    /// What the count of this feature counts, in words (plural).
    pub fn counts_what(self) -> &'static str {
        match self {
            Feature::Execs => "program executions",
            Feature::Opens => "file opens",
            Feature::Connects => "outgoing connections",
            Feature::Listens => "binds and listens",
            Feature::Privileged => "ptrace and set*id calls",
            Feature::NewEntities => "events with entries new to the profile",
            Feature::FanOut => "distinct connection destinations",
        }
    }

    /// The feature's name, as in alert keys.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Execs => "execs",
            Feature::Opens => "opens",
            Feature::Connects => "connects",
            Feature::Listens => "listens",
            Feature::Privileged => "privileged",
            Feature::NewEntities => "new_entities",
            Feature::FanOut => "fan_out",
        }
    }

    /// The feature an event's kind counts towards (fan-out and new entities aside).
    fn of(detail: &EventDetail) -> Feature {
        match detail {
            EventDetail::Exec { .. } => Feature::Execs,
            EventDetail::Open { .. } => Feature::Opens,
            EventDetail::Connect { .. } => Feature::Connects,
            EventDetail::Bind { .. } | EventDetail::Listen { .. } => Feature::Listens,
            EventDetail::Ptrace { .. }
            | EventDetail::Setuid { .. }
            | EventDetail::Setgid { .. } => Feature::Privileged,
        }
    }
}

/// Counts of one window, indexed by [`Feature::index`].
pub type Counts = [u32; FEATURES];

/// A closed window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Start, Unix-epoch nanoseconds.
    pub start_ns: u64,
    /// Length in nanoseconds.
    pub len_ns: u64,
    /// Counts per feature.
    pub counts: Counts,
    /// The first event of each feature in the window, when the counter keeps examples.
    pub examples: [Option<Event>; FEATURES],
}

/// Counts one workload's events into consecutive windows.
#[derive(Debug, Clone)]
pub struct WindowCounter {
    len_ns: u64,
    keep_examples: bool,
    hasher: RandomState,
    /// Boxed: with its examples a window is a few kilobytes, and it must not be moved per event.
    open: Option<Box<Window>>,
    destinations: HashSet<u64>,
}

impl WindowCounter {
    /// A counter of windows `len_ns` long (at least 1 ns). With `keep_examples`, closed
    /// windows carry the first event of each feature (for explaining an alert).
    pub fn new(len_ns: u64, keep_examples: bool) -> WindowCounter {
        WindowCounter {
            len_ns: len_ns.max(1),
            keep_examples,
            hasher: RandomState::new(),
            open: None,
            destinations: HashSet::new(),
        }
    }

    /// Counts `event` (`new_entity`: it brought something the profile did not have); returns
    /// the window it closed, if the event lies past the open window's end.
    pub fn observe(&mut self, event: &Event, new_entity: bool) -> Option<Box<Window>> {
        let closed = self.close_due(event.ts_ns);
        let len_ns = self.len_ns;
        let open = self.open.get_or_insert_with(|| {
            Box::new(Window {
                start_ns: event.ts_ns,
                len_ns,
                counts: [0; FEATURES],
                examples: Default::default(),
            })
        });
        let mut bump = |f: Feature, examples: bool| {
            let i = f.index();
            open.counts[i] = open.counts[i].saturating_add(1);
            if examples && open.examples[i].is_none() {
                open.examples[i] = Some(event.clone());
            }
        };
        let feature = Feature::of(&event.detail);
        bump(feature, self.keep_examples);
        if new_entity {
            bump(Feature::NewEntities, self.keep_examples);
        }
        if let EventDetail::Connect { dest } = &event.detail
            && self
                .destinations
                .insert(self.hasher.hash_one((&dest.addr, dest.port)))
        {
            bump(Feature::FanOut, self.keep_examples);
        }
        closed
    }

    /// Closes the open window when `now_ns` is at or past its end, and returns it.
    pub fn close_due(&mut self, now_ns: u64) -> Option<Box<Window>> {
        let open = self.open.as_ref()?;
        if now_ns < open.start_ns.saturating_add(open.len_ns) {
            return None;
        }
        self.destinations.clear();
        self.open.take()
    }

    /// The open window's counts so far, if one is open.
    pub fn open_counts(&self) -> Option<&Counts> {
        self.open.as_ref().map(|w| &w.counts)
    }
}

/// Training samples of a profile: the counts of windows seen while learning, a uniform sample
/// of at most [`MAX_SAMPLES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSamples {
    /// Window length the samples were counted with, nanoseconds.
    pub window_ns: u64,
    /// Windows seen (kept or not).
    pub seen: u64,
    /// The kept windows' counts.
    pub samples: Vec<Counts>,
}

impl RateSamples {
    /// No samples yet, for windows of `window_ns`.
    pub fn new(window_ns: u64) -> RateSamples {
        RateSamples {
            window_ns,
            seen: 0,
            samples: Vec::new(),
        }
    }

    /// Adds one window's counts. Past [`MAX_SAMPLES`], the window replaces a random kept one
    /// with probability `MAX_SAMPLES / seen` (reservoir sampling); the choice is a hash of
    /// `seen`, so the same windows give the same samples.
    pub fn add(&mut self, counts: Counts) {
        self.seen += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(counts);
            return;
        }
        let slot = splitmix64(self.seen) % self.seen;
        if let Some(s) = self.samples.get_mut(slot as usize) {
            *s = counts;
        }
    }
}

/// Counts a learning workload's windows into its training samples.
#[derive(Debug, Clone)]
pub struct RateLearner {
    counter: WindowCounter,
}

impl RateLearner {
    /// Windows of `window_ns`.
    pub fn new(window_ns: u64) -> RateLearner {
        RateLearner {
            counter: WindowCounter::new(window_ns, false),
        }
    }

    /// Counts `event` (`new_entity`: it added an entry to the profile); a window it closes
    /// joins `samples`. Returns whether one did.
    pub fn observe(&mut self, event: &Event, new_entity: bool, samples: &mut RateSamples) -> bool {
        match self.counter.observe(event, new_entity) {
            Some(w) => {
                samples.add(w.counts);
                true
            }
            None => false,
        }
    }
}

/// SplitMix64: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Endpoint, Family, Protocol, SCHEMA_VERSION, Workload};

    fn event(ts_s: f64, detail: EventDetail) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            ts_ns: (ts_s * 1e9) as u64,
            workload: Workload {
                id: "/w".into(),
                cgroup_id: 1,
                cgroup: "/w".into(),
                runtime: None,
                container_id: None,
                pod_uid: None,
                unit: None,
                k8s: None,
            },
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "app".into(),
            exe: Some("/usr/bin/app".into()),
            parent_exe: None,
            existing: false,
            blocked: false,
            detail,
        }
    }

    fn open(ts: f64) -> Event {
        event(
            ts,
            EventDetail::Open {
                path: "/etc/hosts".into(),
                flags: 0,
                access: Access::Read,
                path_truncated: false,
            },
        )
    }

    fn connect(ts: f64, port: u16) -> Event {
        event(
            ts,
            EventDetail::Connect {
                dest: Endpoint {
                    family: Family::Inet,
                    protocol: Protocol::Tcp,
                    addr: "127.0.0.1".into(),
                    port,
                },
            },
        )
    }

    #[test]
    fn windows_count_kinds_fan_out_and_new_entities() {
        let mut c = WindowCounter::new(DEFAULT_WINDOW_NS, true);
        assert!(c.observe(&open(100.0), false).is_none());
        assert!(c.observe(&open(101.0), true).is_none());
        for (i, port) in [80, 80, 443, 8080].into_iter().enumerate() {
            assert!(c.observe(&connect(102.0 + i as f64, port), false).is_none());
        }
        // 110 s is the end of the window that opened at 100 s.
        let w = c.observe(&open(110.0), false).expect("the window closed");
        assert_eq!(w.start_ns, 100_000_000_000);
        assert_eq!(w.counts[Feature::Opens.index()], 2);
        assert_eq!(w.counts[Feature::Connects.index()], 4);
        assert_eq!(w.counts[Feature::FanOut.index()], 3, "three distinct ports");
        assert_eq!(w.counts[Feature::NewEntities.index()], 1);
        assert_eq!(w.counts[Feature::Execs.index()], 0);
        let first_connect = w.examples[Feature::Connects.index()].as_ref().unwrap();
        assert_eq!(first_connect.ts_ns, 102_000_000_000);
        // The event that closed it opens the next window; destinations start over.
        assert_eq!(c.open_counts().unwrap()[Feature::Opens.index()], 1);
        c.observe(&connect(111.0, 80), false);
        assert_eq!(c.open_counts().unwrap()[Feature::FanOut.index()], 1);
    }

    #[test]
    fn a_quiet_workload_closes_its_window_on_the_clock() {
        let mut c = WindowCounter::new(DEFAULT_WINDOW_NS, false);
        c.observe(&open(5.0), false);
        assert!(c.close_due(14_999_999_999).is_none());
        let w = c.close_due(15_000_000_000).expect("due");
        assert_eq!(w.counts[Feature::Opens.index()], 1);
        assert!(w.examples.iter().all(Option::is_none), "no examples kept");
        assert!(c.close_due(100_000_000_000).is_none(), "nothing is open");
    }

    #[test]
    fn samples_stay_bounded_and_uniform() {
        let mut s = RateSamples::new(DEFAULT_WINDOW_NS);
        let total = MAX_SAMPLES as u32 * 4;
        for i in 0..total {
            s.add([i, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(s.samples.len(), MAX_SAMPLES);
        assert_eq!(s.seen, u64::from(total));
        // A uniform sample of 0..total has about a quarter of its values below total / 4.
        let early = s.samples.iter().filter(|c| c[0] < total / 4).count();
        let share = early as f64 / MAX_SAMPLES as f64;
        assert!((0.18..0.32).contains(&share), "early share {share}");
        let mut again = RateSamples::new(DEFAULT_WINDOW_NS);
        for i in 0..total {
            again.add([i, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(again, s, "deterministic");
    }
}
