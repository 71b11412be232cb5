//! Detection evaluation over recorded traces: each workload is learned from the first part of
//! its normal trace; the held-back rest measures false alarms, and each attack trace played
//! against that workload measures detection and time to the first alert.

use std::collections::HashMap;

use profiles::{
    Event,
    model::Profile,
    rates::{DEFAULT_WINDOW_NS, RateLearner, RateSamples},
    redact::Redactor,
};
use scorer::{
    alert::{Aggregator, Alert, Observed, Severity},
    rates::{RateError, RateModel, RateWatch},
    score::{Scorer, WorkloadState},
};
use serde::{Deserialize, Serialize};

/// One trace of the dataset, as listed in `datasets/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceInfo {
    /// Trace name.
    pub name: String,
    /// The trace file, relative to the manifest.
    pub file: String,
    /// `normal` or `attack`.
    pub kind: String,
    /// The normal workload the trace belongs to.
    pub workload: String,
    /// When the attack started (attack traces).
    #[serde(default)]
    pub attack_start_ns: Option<u64>,
    /// What the trace shows.
    #[serde(default)]
    pub description: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A trace with its events.
pub struct Trace {
    /// From the manifest.
    pub info: TraceInfo,
    /// Its events, in order.
    pub events: Vec<Event>,
}

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Share of each normal trace (by time) used for learning.
    pub learn_fraction: f64,
    /// The lowest severity that counts as a detection (and as a false alarm).
    pub min_severity: Severity,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            learn_fraction: 0.7,
            min_severity: Severity::Medium,
        }
    }
}

/// The result for one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceResult {
    /// Trace name.
    pub trace: String,
    /// Workload.
    pub workload: String,
    /// `normal` or `attack`.
    pub kind: String,
    /// Events scored.
    pub events_scored: usize,
    /// Alerts at or above the minimum severity (aggregated: one per deviation).
    pub alerts: usize,
    /// Seconds of trace scored.
    pub seconds: f64,
    /// Normal traces: alerts per hour of held-back traffic.
    pub false_alarms_per_hour: Option<f64>,
    /// Attack traces: an alert at or above the minimum severity after the attack started.
    pub detected: Option<bool>,
    /// Attack traces: the highest severity raised after the attack started.
    pub max_severity: Option<Severity>,
    /// Attack traces: event time of the first alert minus the attack start, in milliseconds.
    pub time_to_alert_ms: Option<f64>,
    /// Attack traces: alerts raised by the normal traffic before the attack started (false
    /// alarms too).
    pub alerts_before_attack: Option<usize>,
    /// The summaries of the alerts raised (for reading the table).
    pub summaries: Vec<String>,
    /// Normal traces: the rate model learned for the workload, or why there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_model: Option<String>,
}

fn time_span(events: &[Event]) -> (u64, u64) {
    let first = events.iter().map(|e| e.ts_ns).min().unwrap_or(0);
    let last = events.iter().map(|e| e.ts_ns).max().unwrap_or(0);
    (first, last)
}

/// What was learned of one workload: its profile and the rate model of its windows (or why
/// there is none).
struct Learned {
    profile: Profile,
    model: Result<RateModel, RateError>,
}

impl Default for Learned {
    fn default() -> Self {
        Learned {
            profile: Profile::default(),
            model: RateModel::fit(&RateSamples::new(DEFAULT_WINDOW_NS)),
        }
    }
}

impl Learned {
    fn learn<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let mut windows = RateLearner::new(DEFAULT_WINDOW_NS);
        let mut samples = RateSamples::new(DEFAULT_WINDOW_NS);
        for e in events {
            let new = !self.profile.record(e).is_empty();
            windows.observe(e, new, &mut samples);
        }
        self.model = RateModel::fit(&samples);
    }

    /// The rate model in words.
    fn describe_model(&self) -> String {
        match &self.model {
            Ok(m) => format!(
                "{} activity shapes from {} windows of {} s",
                m.centroids.len(),
                m.windows,
                m.window_ns / 1_000_000_000
            ),
            Err(e) => format!("none: {e}"),
        }
    }
}

/// Scores `events` against what was learned, rate model included; returns the new alerts at or
/// above `min`.
fn score(events: &[Event], learned: &Learned, min: Severity) -> Vec<Alert> {
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    let mut windows = RateWatch::new(DEFAULT_WINDOW_NS);
    let mut agg = Aggregator::default();
    let mut out = Vec::new();
    let mut keep = |a: Alert, out: &mut Vec<Alert>| {
        if a.severity >= min && matches!(agg.observe(a.clone()), Observed::New) {
            out.push(a);
        }
    };
    for e in events {
        let alert = scorer.score(e, &learned.profile, &mut state);
        if let Some(r) = windows.observe(learned.model.as_ref().ok(), e, alert.as_ref()) {
            keep(r, &mut out);
        }
        if let Some(a) = alert {
            keep(a, &mut out);
        }
    }
    if let Some(r) = windows.tick(learned.model.as_ref().ok(), u64::MAX) {
        keep(r, &mut out);
    }
    out
}

/// Evaluates every trace; the workloads are learned from their normal traces.
pub fn evaluate(traces: Vec<Trace>, cfg: &EvalConfig) -> Vec<TraceResult> {
    let redactor = Redactor::default();
    // Name every event by its trace's workload, and redact as the agent does.
    let traces: Vec<Trace> = traces
        .into_iter()
        .map(|mut t| {
            for e in &mut t.events {
                e.workload.id = t.info.workload.clone();
                redactor.redact_event(e);
            }
            t
        })
        .collect();
    let mut learned: HashMap<String, Learned> = HashMap::new();
    let mut results = Vec::new();
    for t in traces.iter().filter(|t| t.info.kind == "normal") {
        let (first, last) = time_span(&t.events);
        let cut = first + ((last - first) as f64 * cfg.learn_fraction) as u64;
        let (learn, held): (Vec<&Event>, Vec<&Event>) =
            t.events.iter().partition(|e| e.ts_ns <= cut);
        let workload = learned.entry(t.info.workload.clone()).or_default();
        workload.learn(learn);
        let held: Vec<Event> = held.into_iter().cloned().collect();
        let alerts = score(&held, workload, cfg.min_severity);
        let seconds = (last.saturating_sub(cut)) as f64 / 1e9;
        results.push(TraceResult {
            trace: t.info.name.clone(),
            workload: t.info.workload.clone(),
            kind: "normal".into(),
            events_scored: held.len(),
            alerts: alerts.len(),
            seconds,
            false_alarms_per_hour: Some(if seconds > 0.0 {
                alerts.len() as f64 * 3600.0 / seconds
            } else {
                0.0
            }),
            detected: None,
            max_severity: None,
            time_to_alert_ms: None,
            alerts_before_attack: None,
            summaries: alerts.iter().map(|a| a.summary.clone()).collect(),
            rate_model: Some(workload.describe_model()),
        });
    }
    for t in traces.iter().filter(|t| t.info.kind == "attack") {
        let empty = Learned::default();
        let workload = learned.get(&t.info.workload).unwrap_or(&empty);
        let start = t
            .info
            .attack_start_ns
            .unwrap_or_else(|| time_span(&t.events).0);
        let alerts = score(&t.events, workload, cfg.min_severity);
        let after: Vec<&Alert> = alerts.iter().filter(|a| a.first_ns >= start).collect();
        let (first, last) = time_span(&t.events);
        results.push(TraceResult {
            trace: t.info.name.clone(),
            workload: t.info.workload.clone(),
            kind: "attack".into(),
            events_scored: t.events.len(),
            alerts: alerts.len(),
            seconds: (last - first) as f64 / 1e9,
            false_alarms_per_hour: None,
            detected: Some(!after.is_empty()),
            max_severity: after.iter().map(|a| a.severity).max(),
            time_to_alert_ms: after
                .iter()
                .map(|a| a.first_ns)
                .min()
                .map(|t0| t0.saturating_sub(start) as f64 / 1e6),
            alerts_before_attack: Some(alerts.len() - after.len()),
            summaries: alerts.iter().map(|a| a.summary.clone()).collect(),
            rate_model: None,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_s: u64, kind: serde_json::Value) -> Event {
        let mut v = serde_json::json!({
            "schema": 1, "ts_ns": ts_s * 1_000_000_000,
            "workload": {"id": "/cg-1", "cgroup_id": 7, "cgroup": "/cg-1"},
            "pid": 10, "tid": 10, "ppid": 1, "uid": 0, "gid": 0, "comm": "python3",
            "exe": "/usr/bin/python3", "parent_exe": "/usr/bin/bash",
        });
        v.as_object_mut()
            .unwrap()
            .extend(kind.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn open(ts_s: u64, path: &str) -> Event {
        ev(
            ts_s,
            serde_json::json!({"kind": "open", "path": path, "flags": 0, "access": "read",
                "path_truncated": false}),
        )
    }

    fn info(name: &str, kind: &str, start: Option<u64>) -> TraceInfo {
        TraceInfo {
            name: name.into(),
            file: String::new(),
            kind: kind.into(),
            workload: "pyhttp".into(),
            attack_start_ns: start,
            description: String::new(),
            labels: Vec::new(),
        }
    }

    #[test]
    fn learns_scores_held_back_traffic_and_detects_attacks() {
        let normal: Vec<Event> = (0..100).map(|i| open(i, "/srv/www/index.html")).collect();
        let mut attack: Vec<Event> = (200..210).map(|i| open(i, "/srv/www/index.html")).collect();
        attack.push(open(210, "/etc/shadow"));
        let results = evaluate(
            vec![
                Trace {
                    info: info("pyhttp", "normal", None),
                    events: normal,
                },
                Trace {
                    info: info("credentials", "attack", Some(205_000_000_000)),
                    events: attack,
                },
            ],
            &EvalConfig::default(),
        );
        assert_eq!(results.len(), 2);
        let n = &results[0];
        assert_eq!(n.alerts, 0, "{:?}", n.summaries);
        assert_eq!(n.false_alarms_per_hour, Some(0.0));
        assert_eq!(n.events_scored, 30, "the last 30 % is held back");
        let a = &results[1];
        assert_eq!(a.detected, Some(true), "{:?}", a.summaries);
        assert!(a.max_severity >= Some(Severity::High));
        assert_eq!(a.time_to_alert_ms, Some(5000.0));
    }
}
