//! Alert mode: events of workloads in alert (or enforce) mode are redacted and scored against
//! their workload's profile. A new deviation becomes an alert that is written to the store and
//! made durable before it is delivered; repeats aggregate on the stored alert.
//!
//! Beside each event, each workload's windows of activity are checked against the rate model
//! fitted to the windows it learned ([`scorer::rates`]); an anomalous window is an alert too.

use std::{
    collections::HashMap,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use profiles::{Event, mode::Mode, model::Profile, review::ReviewBuffer, store::ProfileKey};
use scorer::{
    alert::{Aggregator, Alert, Enforcement, Observed},
    rates::{RateModel, RateWatch},
    score::{Scorer, WorkloadState},
};

use crate::{
    control::AlertStream,
    delivery::{self, SharedOutbox, falco},
    enforce::allow::AllowList,
    recorder::{Recorder, now_ns},
    respond::Responder,
};

/// The store tree alerts are kept in, by alert key.
pub const ALERTS_TREE: &str = "alerts";

/// How long a workload's profile is used before it is read again (approved entries, imports
/// and learning in another revision show up within this).
const PROFILE_TTL: Duration = Duration::from_secs(5);

/// What a workload is scored against, as last read.
struct Baseline {
    read: Instant,
    profile: Arc<Profile>,
    /// The profile the model was fitted for, and the windows it had seen.
    fitted: Option<(ProfileKey, u64)>,
    model: Option<Arc<RateModel>>,
}

/// Scores alerting workloads' events and raises alerts.
pub struct Alerter {
    scorer: Scorer,
    states: HashMap<String, WorkloadState>,
    windows: HashMap<String, RateWatch>,
    baselines: HashMap<String, Baseline>,
    aggregator: Aggregator,
    out: Option<Box<dyn Write + Send>>,
    falco: Option<Box<dyn Write + Send>>,
    outbox: Option<SharedOutbox>,
    responder: Option<Responder>,
    /// Deviations proposed as allow-list entries, counted in memory between flushes.
    reviews: ReviewBuffer,
    /// The live alert stream.
    stream: Option<AlertStream>,
    /// [`Recorder::changes`] when the baselines were read.
    changes: u64,
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
            windows: HashMap::new(),
            baselines: HashMap::new(),
            aggregator: Aggregator::default(),
            out,
            falco: None,
            outbox: None,
            responder: None,
            reviews: ReviewBuffer::new(),
            stream: None,
            changes: 0,
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

    /// Takes the responses `responder` is configured for on each new alert.
    pub fn with_responder(mut self, responder: Responder) -> Alerter {
        self.responder = Some(responder);
        self
    }

    /// Also sends each new alert to the API's live stream.
    pub fn with_stream(mut self, tx: AlertStream) -> Alerter {
        self.stream = Some(tx);
        self
    }

    /// Writes the review queue's counts held in memory to the store (durable with the next
    /// flush).
    pub fn flush_reviews(&mut self, recorder: &Recorder) -> Result<()> {
        let n = self
            .reviews
            .flush(recorder.store())
            .context("writing the review queue")?;
        if n > 0 {
            api::Versions::bump(&recorder.versions().reviews);
        }
        Ok(())
    }

    /// Also writes each raised alert as one line of Falco's JSON output to `out`.
    pub fn with_falco(mut self, out: Box<dyn Write + Send>) -> Alerter {
        self.falco = Some(out);
        self
    }

    /// The workload's profile and rate model, read again when older than [`PROFILE_TTL`].
    fn baseline(
        &mut self,
        workload: &str,
        recorder: &mut Recorder,
    ) -> Result<(Arc<Profile>, Option<Arc<RateModel>>)> {
        if recorder.changes != self.changes {
            // An import or an approval: every copy is stale, at once.
            self.changes = recorder.changes;
            self.baselines.clear();
        }
        if let Some(b) = self.baselines.get(workload)
            && b.read.elapsed() < PROFILE_TTL
        {
            return Ok((b.profile.clone(), b.model.clone()));
        }
        let latest = recorder.latest_profile(workload)?;
        let old = self.baselines.remove(workload);
        let mut b = Baseline {
            read: Instant::now(),
            // With what other nodes learned of the workload, on Kubernetes.
            profile: Arc::new(recorder.baseline_profile(workload)?.unwrap_or_default()),
            fitted: None,
            model: None,
        };
        if let Some((key, _)) = latest
            && let Some(samples) = recorder.rate_samples(&key)?
        {
            let current = Some((key, samples.seen));
            match old {
                Some(o) if o.fitted == current => b.model = o.model,
                _ => {
                    b.model = match RateModel::fit(&samples) {
                        Ok(m) => Some(Arc::new(m)),
                        Err(e) => {
                            tracing::debug!(workload, "no rate model: {e}");
                            None
                        }
                    }
                }
            }
            b.fitted = current;
        }
        // Verdicts cached against the previous copy may no longer hold (an import or an
        // approval can change entries without changing the count).
        if let Some(state) = self.states.get_mut(workload) {
            state.forget_coverage();
        }
        let out = (b.profile.clone(), b.model.clone());
        self.baselines.insert(workload.to_string(), b);
        Ok(out)
    }

    /// Scores one event; returns the new alerts it raised: its own, and that of the window it
    /// closed.
    ///
    /// `mode`: the workload's; `list`: its allow-list in enforce and dry-run modes (an alert
    /// about an event the list blocks says so, [`Enforcement`]).
    pub fn handle(
        &mut self,
        mut event: Event,
        recorder: &mut Recorder,
        mode: Mode,
        list: Option<&AllowList>,
    ) -> Result<Vec<Alert>> {
        recorder.redact(&mut event);
        self.handle_redacted(event, recorder, mode, list)
    }

    /// [`Alerter::handle`] for an event already passed through [`Recorder::redact`].
    pub fn handle_redacted(
        &mut self,
        event: Event,
        recorder: &mut Recorder,
        mode: Mode,
        list: Option<&AllowList>,
    ) -> Result<Vec<Alert>> {
        let (profile, model) = self.baseline(&event.workload.id, recorder)?;
        let state = match self.states.get_mut(&event.workload.id) {
            Some(s) => s,
            None => self.states.entry(event.workload.id.clone()).or_default(),
        };
        self.scored += 1;
        let mut alert = self.scorer.score(&event, &profile, state);
        if let Some(a) = alert.take() {
            // The kernel says when it killed an exec; for connects (refused with EPERM) the
            // allow-list it holds says the same.
            let verdict = if event.blocked {
                let program = match &event.detail {
                    profiles::EventDetail::Exec { filename, .. } => filename.as_str(),
                    _ => event.comm.as_str(),
                };
                Some(format!("the kernel killed {program} before it ran"))
            } else {
                list.and_then(|l| l.blocks(&event))
            };
            alert = Some(match verdict {
                Some(why) if mode == Mode::Enforce => a.enforced(Enforcement::Blocked, why),
                Some(why) if mode == Mode::DryRun => a.enforced(Enforcement::WouldBlock, why),
                _ => a,
            });
        }
        let windows = match self.windows.get_mut(&event.workload.id) {
            Some(w) => w,
            None => self
                .windows
                .entry(event.workload.id.clone())
                .or_insert_with(|| RateWatch::new(profiles::rates::DEFAULT_WINDOW_NS)),
        };
        let rate = windows.observe(model.as_deref(), &event, alert.as_ref());
        if let Some(a) = &alert {
            self.propose(&event, &profile, &a.key, recorder)?;
        }
        let mut raised = Vec::new();
        for a in alert.into_iter().chain(rate) {
            raised.extend(self.raise(a, recorder, mode)?);
        }
        Ok(raised)
    }

    /// Puts each entry of a deviating event that its profile does not cover in the review
    /// queue, with the alert it raised.
    fn propose(
        &mut self,
        event: &Event,
        profile: &Profile,
        alert_key: &str,
        recorder: &Recorder,
    ) -> Result<()> {
        for entry in profiles::model::event_entries(event) {
            if !profile.covers_entry(&entry) {
                let seen = self
                    .reviews
                    .observe(
                        recorder.store(),
                        &event.workload.id,
                        &entry,
                        event,
                        Some(alert_key),
                    )
                    .context("proposing an allow-list entry")?;
                if seen.written {
                    api::Versions::bump(&recorder.versions().reviews);
                }
            }
        }
        Ok(())
    }

    /// Closes the windows of workloads gone quiet and raises their rate alerts.
    pub fn tick(&mut self, now_ns: u64, recorder: &mut Recorder) -> Result<Vec<Alert>> {
        let mut due = Vec::new();
        for (workload, windows) in &mut self.windows {
            let model = self.baselines.get(workload).and_then(|b| b.model.clone());
            due.extend(windows.tick(model.as_deref(), now_ns));
        }
        let mut raised = Vec::new();
        for a in due {
            let mode = recorder.mode(&a.workload)?;
            raised.extend(self.raise(a, recorder, mode)?);
        }
        Ok(raised)
    }

    /// Raises an alert the agent made itself (a failed canary), like any other.
    pub fn raise_alert(&mut self, alert: Alert, recorder: &mut Recorder) -> Result<Option<Alert>> {
        self.raise(alert, recorder, Mode::Alert)
    }

    /// Takes the responses a new alert calls for, then stores it durably (and in the outbox)
    /// before delivering it; counts a repeat on the stored aggregate. Returns the alert when it
    /// was new.
    fn raise(
        &mut self,
        mut alert: Alert,
        recorder: &Recorder,
        mode: Mode,
    ) -> Result<Option<Alert>> {
        let store = recorder.store();
        if self.aggregator.get(&alert.key).is_none()
            && let Some(r) = &mut self.responder
        {
            alert.actions = r.respond(&alert, mode, store);
        }
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
                if let Some(tx) = &self.stream {
                    // No subscriber is not an error.
                    let _ = tx.send(alert.clone());
                }
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
