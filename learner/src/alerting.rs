//! Alert mode: events of workloads in alert (or enforce) mode are redacted and scored against
//! their workload's profile. A new deviation becomes an alert that is written to the store and
//! made durable before it is delivered; repeats aggregate on the stored alert.

use std::{
    collections::HashMap,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use profiles::{Event, model::Profile};
use scorer::{
    alert::{Aggregator, Alert, Observed},
    score::{Scorer, WorkloadState},
};

use crate::{
    delivery::{self, SharedOutbox, falco},
    recorder::{Recorder, now_ns},
};

/// The store tree alerts are kept in, by alert key.
pub const ALERTS_TREE: &str = "alerts";

/// How long a workload's profile is used before it is read again (approved entries, imports
/// and learning in another revision show up within this).
const PROFILE_TTL: Duration = Duration::from_secs(5);

/// Scores alerting workloads' events and raises alerts.
pub struct Alerter {
    scorer: Scorer,
    states: HashMap<String, WorkloadState>,
    profiles: HashMap<String, (Instant, Arc<Profile>)>,
    aggregator: Aggregator,
    out: Option<Box<dyn Write + Send>>,
    falco: Option<Box<dyn Write + Send>>,
    outbox: Option<SharedOutbox>,
    /// Events scored.
    pub scored: u64,
    /// Alerts raised (new deviations).
    pub raised: u64,
    /// Repeats aggregated into existing alerts.
    pub repeats: u64,
}

impl Alerter {
    /// An alerter that writes each raised alert as one JSON line to `out`, if given.
    pub fn new(out: Option<Box<dyn Write + Send>>) -> Alerter {
        Alerter {
            scorer: Scorer::default(),
            states: HashMap::new(),
            profiles: HashMap::new(),
            aggregator: Aggregator::default(),
            out,
            falco: None,
            outbox: None,
            scored: 0,
            raised: 0,
            repeats: 0,
        }
    }

    /// Also puts each raised alert in `outbox`, in the same durable write that stores it.
    pub fn with_outbox(mut self, outbox: SharedOutbox) -> Alerter {
        self.outbox = Some(outbox);
        self
    }

    /// Also writes each raised alert as one line of Falco's JSON output to `out`.
    pub fn with_falco(mut self, out: Box<dyn Write + Send>) -> Alerter {
        self.falco = Some(out);
        self
    }

    fn profile(&mut self, workload: &str, recorder: &mut Recorder) -> Result<Arc<Profile>> {
        if let Some((at, p)) = self.profiles.get(workload)
            && at.elapsed() < PROFILE_TTL
        {
            return Ok(p.clone());
        }
        let p = Arc::new(
            recorder
                .latest_profile(workload)?
                .map(|s| s.profile)
                .unwrap_or_default(),
        );
        self.profiles
            .insert(workload.to_string(), (Instant::now(), p.clone()));
        // Verdicts cached against the previous copy may no longer hold (an import or an
        // approval can change entries without changing the count).
        if let Some(state) = self.states.get_mut(workload) {
            state.forget_coverage();
        }
        Ok(p)
    }

    /// Scores one event; returns the alert when it raised a new one (or re-announced a repeat).
    pub fn handle(&mut self, mut event: Event, recorder: &mut Recorder) -> Result<Option<Alert>> {
        recorder.redact(&mut event);
        let profile = self.profile(&event.workload.id, recorder)?;
        let state = self.states.entry(event.workload.id.clone()).or_default();
        self.scored += 1;
        let Some(alert) = self.scorer.score(&event, &profile, state) else {
            return Ok(None);
        };
        let store = recorder.store();
        match self.aggregator.observe(alert.clone()) {
            Observed::New => {
                self.raised += 1;
                // Durable before it is delivered: a crash after this line loses nothing.
                store.put_json(ALERTS_TREE, alert.key.as_bytes(), &alert)?;
                if let Some(outbox) = &self.outbox {
                    outbox.lock().unwrap_or_else(|e| e.into_inner()).enqueue(
                        store,
                        &alert,
                        now_ns(),
                    )?;
                }
                store.flush()?;
                tracing::warn!(workload = %alert.workload, severity = %alert.severity,
                    key = %alert.key, "{}", alert.summary);
                self.deliver(&alert)?;
                Ok(Some(alert))
            }
            Observed::Repeat { .. } => {
                self.repeats += 1;
                // The aggregate (count, last seen) is kept in the store; made durable with the
                // next flush.
                if let Some(agg) = self.aggregator.get(&alert.key) {
                    store.put_json(ALERTS_TREE, agg.key.as_bytes(), agg)?;
                }
                Ok(None)
            }
        }
    }

    fn deliver(&mut self, alert: &Alert) -> Result<()> {
        if let Some(out) = &mut self.out {
            let line = serde_json::to_string(alert)?;
            writeln!(out, "{line}")
                .and_then(|_| out.flush())
                .context("writing the alert output")?;
        }
        if let Some(out) = &mut self.falco {
            let line = serde_json::to_string(&falco::record(alert, delivery::hostname()))?;
            writeln!(out, "{line}")
                .and_then(|_| out.flush())
                .context("writing the Falco output")?;
        }
        Ok(())
    }
}
