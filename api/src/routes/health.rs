//! Operations: `/healthz`, `/readyz`, Prometheus `/metrics`, and where the OpenAPI document is.

use std::fmt::Write as _;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use profiles::mode::Mode;

use super::AgentRef;
use crate::{Agent, ApiError, summary};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// True for the paths anyone may call without a token.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path == OPENAPI_PATH
}

/// The OpenAPI description of the document's own route.
pub fn openapi_path_item() -> utoipa::openapi::PathItem {
    use utoipa::openapi::{
        HttpMethod, PathItem, ResponseBuilder, path::OperationBuilder, response::ResponsesBuilder,
    };
    let op = OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This OpenAPI 3.1 document"))
        .responses(
            ResponsesBuilder::new()
                .response("200", ResponseBuilder::new().description("The document"))
                .build(),
        )
        .build();
    PathItem::new(HttpMethod::Get, op)
}

/// Liveness: the agent answers.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "operations",
    responses((status = 200, description = "The agent answers", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the agent's store answers (and, for a running agent, its capture is running).
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = String),
              (status = 503, description = "Not ready, with the reason")))]
pub async fn readyz(State(agent): AgentRef) -> Response {
    match agent.profile_keys() {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", e.detail),
        )
        .into_response(),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String)))]
pub async fn metrics(State(agent): AgentRef) -> Result<Response, ApiError> {
    let text = render(agent.as_ref())?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A Prometheus text exposition being written.
struct Exposition(String);

impl Exposition {
    /// Starts a metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `labels` are `(name, value)` pairs.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The metrics of `agent`.
pub fn render(agent: &dyn Agent) -> Result<String, ApiError> {
    let mut m = Exposition(String::new());
    let workloads = summary::workloads(agent)?;
    m.family("baseliner_workloads", "gauge", "Known workloads by mode.");
    for mode in Mode::ALL {
        let n = workloads.iter().filter(|w| w.mode == mode).count();
        m.sample("baseliner_workloads", &[("mode", mode.as_str())], n as f64);
    }
    let alerts = agent.alerts()?;
    m.family(
        "baseliner_alerts",
        "gauge",
        "Stored alerts (one per deviation) by severity.",
    );
    for sev in scorer::alert::Severity::ALL {
        let n = alerts.iter().filter(|a| a.severity == sev).count();
        m.sample("baseliner_alerts", &[("severity", sev.as_str())], n as f64);
    }
    let unacked = alerts.iter().filter(|a| a.ack.is_none()).count();
    m.single(
        "baseliner_alerts_unacknowledged",
        "gauge",
        "Stored alerts nobody acknowledged yet.",
        unacked as f64,
    );
    let pending = agent
        .reviews(None, Some(profiles::review::State::Pending))?
        .len();
    m.single(
        "baseliner_reviews_pending",
        "gauge",
        "Proposed allow-list entries waiting for a reviewer.",
        pending as f64,
    );
    if let Some(rt) = agent.runtime() {
        runtime(&mut m, &rt);
        if let Some(k) = &rt.kubernetes {
            kubernetes(&mut m, k);
        }
        process(&mut m);
    }
    Ok(m.0)
}

/// The Kubernetes integration's counters (from the runtime's `kubernetes` object).
fn kubernetes(m: &mut Exposition, k: &serde_json::Value) {
    let num = |key: &str| k.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0);
    for (name, kind, help, key) in [
        (
            "baseliner_kubernetes_pods",
            "gauge",
            "Pods of this node the agent knows.",
            "pods",
        ),
        (
            "baseliner_kubernetes_namespaces",
            "gauge",
            "Namespaces the agent knows.",
            "namespaces",
        ),
        (
            "baseliner_kubernetes_events_attributed_total",
            "counter",
            "Events given their pod's metadata.",
            "attributed",
        ),
        (
            "baseliner_kubernetes_events_held_total",
            "counter",
            "Events that waited for their pod to be reported.",
            "held",
        ),
        (
            "baseliner_kubernetes_events_unattributed_total",
            "counter",
            "Events of a pod that went on without pod metadata (the pod was not known in time).",
            "unattributed",
        ),
        (
            "baseliner_kubernetes_events_waiting",
            "gauge",
            "Events waiting for their pod now.",
            "waiting",
        ),
        (
            "baseliner_kubernetes_watch_errors_total",
            "counter",
            "Errors of the pod and namespace watches (each retried).",
            "errors",
        ),
        (
            "baseliner_kubernetes_mode_changes_total",
            "counter",
            "Modes changed by baseliner.io/mode annotations.",
            "mode_changes",
        ),
        (
            "baseliner_kubernetes_invalid_modes_total",
            "counter",
            "Invalid baseliner.io/mode annotation values reported.",
            "invalid_modes",
        ),
    ] {
        m.single(name, kind, help, num(key));
    }
}

/// The running agent's counters.
fn runtime(m: &mut Exposition, rt: &crate::AgentRuntime) {
    if let Some(kinds) = rt.kernel.as_object() {
        for (counter, help) in [
            (
                "seen",
                "Events of monitored cgroups that reached the kernel programs.",
            ),
            ("emitted", "Events the kernel wrote to the ring buffer."),
            (
                "deduplicated",
                "Identical repeats the kernel counted and did not send.",
            ),
            ("dropped", "Events lost because the ring buffer was full."),
        ] {
            let name = format!("baseliner_kernel_events_{counter}_total");
            m.family(&name, "counter", help);
            for (kind, stats) in kinds.iter().filter(|(k, _)| k.as_str() != "total") {
                let v = stats.get(counter).and_then(|v| v.as_f64()).unwrap_or(0.0);
                m.sample(&name, &[("kind", kind)], v);
            }
        }
    }
    const G: &str = "gauge";
    const C: &str = "counter";
    let (a, e) = (&rt.alerts, &rt.enforcement);
    let scalars: [(&str, &str, &str, f64); 16] = [
        (
            "baseliner_ring_pending_bytes",
            G,
            "Bytes written to the ring buffer and not yet read, at the last read.",
            rt.ring.pending_bytes as f64,
        ),
        (
            "baseliner_ring_capacity_bytes",
            G,
            "Size of the ring buffer.",
            rt.ring.capacity_bytes as f64,
        ),
        (
            "baseliner_evidence_dropped_total",
            C,
            "Events not kept in the evidence store.",
            rt.evidence_dropped as f64,
        ),
        (
            "baseliner_events_recorded_total",
            C,
            "Events recorded into profiles.",
            rt.recorded as f64,
        ),
        (
            "baseliner_events_scored_total",
            C,
            "Events of alerting workloads scored.",
            a.scored as f64,
        ),
        (
            "baseliner_alerts_raised_total",
            C,
            "New alerts raised.",
            a.raised as f64,
        ),
        (
            "baseliner_alert_repeats_total",
            C,
            "Repeats counted on alerts already raised.",
            a.repeats as f64,
        ),
        (
            "baseliner_deliveries_total",
            C,
            "Alert deliveries a receiver took.",
            a.delivered as f64,
        ),
        (
            "baseliner_delivery_failures_total",
            C,
            "Failed alert delivery attempts.",
            a.failed as f64,
        ),
        (
            "baseliner_outbox_depth",
            G,
            "Alerts waiting in the outbox for delivery.",
            a.pending as f64,
        ),
        (
            "baseliner_exec_killed_total",
            C,
            "Execs the kernel killed in enforce mode.",
            e.kernel.exec_killed as f64,
        ),
        (
            "baseliner_connect_denied_total",
            C,
            "Connects the kernel refused in enforce mode.",
            e.kernel.connect_denied as f64,
        ),
        (
            "baseliner_canary_failures_total",
            C,
            "Enforcement canary runs that failed.",
            e.canary_failures as f64,
        ),
        (
            "baseliner_start_time_seconds",
            G,
            "When the agent started, Unix time.",
            rt.started_ns as f64 / 1e9,
        ),
        (
            "baseliner_events_not_recorded_total",
            C,
            "Events that could not be recorded.",
            rt.not_recorded as f64,
        ),
        (
            "baseliner_redactions_total",
            C,
            "Secrets removed from arguments before recording.",
            rt.redactions as f64,
        ),
    ];
    for (name, kind, help, value) in scalars {
        m.single(name, kind, help, value);
    }
    if let Some(es) = &rt.elasticsearch {
        let n = |k: &str| es.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        for (name, key, help) in [
            (
                "baseliner_elasticsearch_sent_total",
                "sent",
                "Events Elasticsearch indexed.",
            ),
            (
                "baseliner_elasticsearch_rejected_total",
                "rejected",
                "Events Elasticsearch refused (mapping errors).",
            ),
            (
                "baseliner_elasticsearch_failures_total",
                "failed_attempts",
                "Failed bulk requests (each is retried).",
            ),
        ] {
            m.single(name, "counter", help, n(key));
        }
    }
}

/// This process's CPU time and resident memory.
fn process(m: &mut Exposition) {
    let Some((cpu_s, rss)) = self_usage() else {
        return;
    };
    m.single(
        "baseliner_process_cpu_seconds_total",
        "counter",
        "CPU time of the agent (user and system).",
        cpu_s,
    );
    m.single(
        "baseliner_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the agent.",
        rss as f64,
    );
}

/// CPU seconds and resident bytes of this process, from /proc.
pub fn self_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (hz, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Some((ticks as f64 / hz.max(1) as f64, pages * page.max(1) as u64))
}
