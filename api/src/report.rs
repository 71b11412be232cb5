//! Audit reports: what an auditor asks about one workload over a period — its profile's
//! revisions and content hashes, mode changes, reviewers' decisions, enforcement actions and
//! alerts — as JSON and as a readable HTML page.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};
use profiles::{
    mode::Mode,
    review::{Approval, Proposal, State as ReviewState},
};
use scorer::alert::{Alert, Enforcement};
use serde::{Deserialize, Serialize};

use crate::{
    Agent, ApiError, AuditRecord, SET_MODE_ACTION,
    summary::{self, EntryCounts},
};

/// One revision of the workload's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// The revision.
    pub revision: String,
    /// SHA-256 of its export (what `baseliner profile export` prints and import checks).
    pub content_sha256: String,
    /// Entries by kind.
    pub entries: EntryCounts,
    /// When learning started (Unix-epoch nanoseconds).
    pub started_ns: u64,
    /// When it last gained an entry.
    pub last_change_ns: u64,
}

/// One alert, as a report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertLine {
    /// The alert's key.
    pub key: String,
    /// Its severity.
    pub severity: String,
    /// Its strongest reason.
    pub summary: String,
    /// The rules of its reasons.
    pub rules: Vec<String>,
    /// Occurrences.
    pub count: u64,
    /// First occurrence (Unix-epoch nanoseconds).
    pub first_ns: u64,
    /// Latest occurrence.
    pub last_ns: u64,
    /// What enforcement did (`blocked`, `would-block`), if anything.
    pub enforcement: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
}

/// The audit report of one workload over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The workload.
    pub workload: String,
    /// Start of the period (Unix-epoch nanoseconds).
    pub since_ns: u64,
    /// End of the period.
    pub until_ns: u64,
    /// When the report was made.
    pub generated_ns: u64,
    /// The workload's mode now.
    pub mode: Mode,
    /// Its profile's revisions, each with its content hash.
    pub revisions: Vec<RevisionRecord>,
    /// Mode changes in the period (from the audit log).
    pub mode_changes: Vec<AuditRecord>,
    /// Entries reviewers approved in the period, with reviewer and comment.
    pub approvals: Vec<Approval>,
    /// Proposals reviewers rejected in the period.
    pub rejections: Vec<Proposal>,
    /// Responses (kill, freeze, ...) taken in the period, with the alert that caused each.
    pub actions: Vec<AuditRecord>,
    /// Other changes made through the API in the period (imports, acknowledgements).
    pub changes: Vec<AuditRecord>,
    /// Alerts active in the period (first seen before its end, last seen after its start).
    pub alerts: Vec<AlertLine>,
    /// Alerts by severity.
    pub alerts_by_severity: BTreeMap<String, u64>,
    /// Alerts whose event the kernel blocked.
    pub blocked: u64,
}

/// Builds the audit report of `workload` over `since..=until`.
pub fn audit_report(
    agent: &dyn Agent,
    workload: &str,
    since: u64,
    until: u64,
) -> Result<AuditReport, ApiError> {
    let summary = summary::workload(agent, workload)?;
    if summary.is_none() && !agent.workload_exists(workload) {
        return Err(ApiError::not_found(format!(
            "unknown workload {workload:?} (`GET /v1/workloads` lists them)"
        )));
    }
    let mode = summary
        .as_ref()
        .map_or(agent.settings().default_mode, |s| s.mode);
    let mut revisions = Vec::new();
    for key in agent
        .profile_keys()?
        .into_iter()
        .filter(|k| k.workload == workload)
    {
        let Some(p) = agent.profile(&key)? else {
            continue;
        };
        let export = crate::routes::profiles::export_of(agent, &key, &p)?;
        revisions.push(RevisionRecord {
            content_sha256: export.content_sha256,
            entries: EntryCounts::of(&p),
            started_ns: p.learning.started_ns,
            last_change_ns: p.learning.last_change_ns(),
            revision: key.revision,
        });
    }
    let in_period = |ns: u64| ns >= since && ns <= until;
    let mut mode_changes = Vec::new();
    let mut actions = Vec::new();
    let mut changes = Vec::new();
    for r in agent.audit()? {
        if r.workload != workload || !in_period(r.action.at_ns) {
            continue;
        }
        match r.action.action.as_str() {
            SET_MODE_ACTION => mode_changes.push(r),
            // Approvals and rejections are listed from the review queue, with their entries.
            "approve" | "reject" => {}
            _ if !r.alert_key.is_empty() && r.actor == "agent" => actions.push(r),
            _ => changes.push(r),
        }
    }
    let approvals = agent
        .approvals(Some(workload))?
        .into_iter()
        .filter(|a| in_period(a.at_ns))
        .collect();
    let rejections = agent
        .reviews(Some(workload), Some(ReviewState::Rejected))?
        .into_iter()
        .filter(|p| p.decision.as_ref().is_some_and(|d| in_period(d.at_ns)))
        .collect();
    let mut alerts: Vec<Alert> = agent
        .alerts()?
        .into_iter()
        .filter(|a| a.workload == workload && a.first_ns <= until && a.last_ns >= since)
        .collect();
    alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.last_ns.cmp(&a.last_ns)));
    let mut alerts_by_severity = BTreeMap::new();
    for s in scorer::alert::Severity::ALL {
        let n = alerts.iter().filter(|a| a.severity == s).count() as u64;
        alerts_by_severity.insert(s.as_str().to_string(), n);
    }
    let blocked = alerts
        .iter()
        .filter(|a| a.enforcement == Some(Enforcement::Blocked))
        .count() as u64;
    Ok(AuditReport {
        workload: workload.to_string(),
        since_ns: since,
        until_ns: until,
        generated_ns: agent.now_ns(),
        mode,
        revisions,
        mode_changes,
        approvals,
        rejections,
        actions,
        changes,
        alerts: alerts.iter().map(alert_line).collect(),
        alerts_by_severity,
        blocked,
    })
}

fn alert_line(a: &Alert) -> AlertLine {
    let mut rules: Vec<String> = a.reasons.iter().map(|r| r.rule.clone()).collect();
    rules.dedup();
    AlertLine {
        key: a.key.clone(),
        severity: a.severity.as_str().into(),
        summary: a.summary.clone(),
        rules,
        count: a.count,
        first_ns: a.first_ns,
        last_ns: a.last_ns,
        enforcement: a.enforcement.map(|e| match e {
            Enforcement::Blocked => "blocked".into(),
            Enforcement::WouldBlock => "would-block".into(),
        }),
        acknowledged_by: a.ack.as_ref().map(|k| k.by.clone()),
    }
}

/// A Unix-epoch nanosecond time as RFC 3339 (UTC, seconds).
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

/// The page's style: readable on screen and printed.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
    table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}\
    th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\
    th{background:#f0f0f0}code{font-size:.9em}.none{color:#777;font-style:italic}\
    .critical,.high{color:#a00;font-weight:bold}";

/// A page with `title`, the period, and `body`.
pub fn page(title: &str, since: u64, until: u64, generated: u64, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p { "Period " (rfc3339(since)) " to " (rfc3339(until))
                    ". Generated " (rfc3339(generated)) " by Baseliner." }
                (body)
            }
        }
    }
    .into_string()
}

/// `rows` as a table with `head`, or a note that there are none.
fn table<T>(head: &[&str], rows: &[T], row: impl Fn(&T) -> Markup) -> Markup {
    html! {
        @if rows.is_empty() {
            p.none { "None in the period." }
        } @else {
            table {
                tr { @for h in head { th { (h) } } }
                @for r in rows { (row(r)) }
            }
        }
    }
}

/// The audit report as an HTML page.
pub fn audit_html(r: &AuditReport) -> String {
    let audit_row = |a: &AuditRecord| {
        html! { tr {
            td { (rfc3339(a.action.at_ns)) } td { (a.actor) } td { (a.action.action) }
            td { (a.action.target) } td { (a.action.outcome) }
            td { @if !a.alert_key.is_empty() { code { (a.alert_key) } " " (a.alert_summary) } }
        } }
    };
    let audit_head = ["Time", "By", "Action", "Target", "Outcome", "Alert"];
    let body = html! {
        p { "Workload " code { (r.workload) } ", mode " b { (r.mode) } " now." }
        h2 { "Profile revisions" }
        (table(&["Revision", "SHA-256", "Entries", "Learning started", "Last new entry"],
            &r.revisions, |v| html! { tr {
                td { code { (v.revision) } } td { code { (v.content_sha256) } }
                td { (v.entries.total) " (" (v.entries.execs) " programs, " (v.entries.files)
                     " files, " (v.entries.connects) " destinations, " (v.entries.listens)
                     " listeners)" }
                td { (rfc3339(v.started_ns)) } td { (rfc3339(v.last_change_ns)) }
            } }))
        h2 { "Mode changes" }
        (table(&audit_head, &r.mode_changes, audit_row))
        h2 { "Approved entries" }
        (table(&["Time", "Reviewer", "Allowed", "Proposed", "Comment"], &r.approvals, |a| html! { tr {
            td { (rfc3339(a.at_ns)) } td { (a.reviewer) } td { code { (a.entry) } }
            td { code { (a.exact) } } td { (a.comment) }
        } }))
        h2 { "Rejected entries" }
        (table(&["Time", "Reviewer", "Entry", "Seen", "Comment"], &r.rejections, |p| {
            let d = p.decision.as_ref();
            html! { tr {
                td { @if let Some(d) = d { (rfc3339(d.at_ns)) } }
                td { @if let Some(d) = d { (d.reviewer) } }
                td { code { (p.entry) } } td { (p.count) }
                td { @if let Some(d) = d { (d.comment) } }
            } }
        }))
        h2 { "Enforcement and responses" }
        p { (r.blocked) " alert(s) about events the kernel blocked." }
        (table(&audit_head, &r.actions, audit_row))
        h2 { "Other changes" }
        (table(&audit_head, &r.changes, audit_row))
        h2 { "Alerts" }
        p { @for (s, n) in &r.alerts_by_severity { (s) ": " (n) ". " } }
        (table(&["Severity", "Summary", "Rules", "Count", "First", "Last", "Enforcement", "Acknowledged by"],
            &r.alerts, |a| html! { tr {
                td class=(a.severity) { (a.severity) } td { (a.summary) }
                td { (a.rules.join(", ")) } td { (a.count) }
                td { (rfc3339(a.first_ns)) } td { (rfc3339(a.last_ns)) }
                td { (a.enforcement.as_deref().unwrap_or("")) }
                td { (a.acknowledged_by.as_deref().unwrap_or("")) }
            } }))
    };
    page(
        &format!("Audit report: {}", r.workload),
        r.since_ns,
        r.until_ns,
        r.generated_ns,
        body,
    )
}

/// Who touched cardholder data: one row per workload, program, user, access and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciAccess {
    /// The workload.
    pub workload: String,
    /// The program (its executable, or its command name when unknown).
    pub program: String,
    /// The user id.
    pub uid: u32,
    /// `read`, `write`, `create`, ... as opened.
    pub access: String,
    /// The file.
    pub path: String,
    /// The configured pattern it matched.
    pub pattern: String,
    /// How often.
    pub count: u64,
    /// First access in the period (Unix-epoch nanoseconds).
    pub first_ns: u64,
    /// Latest access in the period.
    pub last_ns: u64,
}

/// The PCI-DSS access report: every read and write of the configured cardholder-data paths in
/// the period, from the evidence store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciReport {
    /// Start of the period (Unix-epoch nanoseconds).
    pub since_ns: u64,
    /// End of the period.
    pub until_ns: u64,
    /// When the report was made.
    pub generated_ns: u64,
    /// The cardholder-data path patterns (the agent's `[evidence] pci_paths`).
    pub patterns: Vec<String>,
    /// Evidence events examined.
    pub events_examined: u64,
    /// Accesses, grouped; most frequent first.
    pub accesses: Vec<PciAccess>,
    /// Workloads that accessed cardholder data.
    pub workloads: Vec<String>,
}

/// Builds the PCI-DSS access report over `since..=until`.
pub fn pci_report(agent: &dyn Agent, since: u64, until: u64) -> Result<PciReport, ApiError> {
    let patterns = agent.pci_paths();
    if patterns.is_empty() {
        return Err(ApiError::conflict(
            "no cardholder-data paths are configured: set [evidence] pci_paths in the agent's \
             configuration",
        ));
    }
    let q = profiles::evidence::EvidenceQuery {
        kinds: vec!["open".into()],
        since_ns: Some(since),
        until_ns: Some(until),
        ..Default::default()
    };
    let events = agent.events(&q)?;
    let mut groups: BTreeMap<(String, String, u32, String, String), PciAccess> = BTreeMap::new();
    for e in &events {
        let profiles::EventDetail::Open { path, access, .. } = &e.detail else {
            continue;
        };
        let Some(pattern) = patterns
            .iter()
            .find(|p| profiles::generalize::matches(p, path))
        else {
            continue;
        };
        let program = e.exe.clone().unwrap_or_else(|| e.comm.clone());
        let access = serde_json::to_value(access)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let key = (
            e.workload.id.clone(),
            program.clone(),
            e.uid,
            access.clone(),
            path.clone(),
        );
        groups
            .entry(key)
            .and_modify(|g| {
                g.count += 1;
                g.first_ns = g.first_ns.min(e.ts_ns);
                g.last_ns = g.last_ns.max(e.ts_ns);
            })
            .or_insert_with(|| PciAccess {
                workload: e.workload.id.clone(),
                program,
                uid: e.uid,
                access,
                path: path.clone(),
                pattern: pattern.clone(),
                count: 1,
                first_ns: e.ts_ns,
                last_ns: e.ts_ns,
            });
    }
    let mut accesses: Vec<PciAccess> = groups.into_values().collect();
    accesses.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
    let mut workloads: Vec<String> = accesses.iter().map(|a| a.workload.clone()).collect();
    workloads.sort();
    workloads.dedup();
    Ok(PciReport {
        since_ns: since,
        until_ns: until,
        generated_ns: agent.now_ns(),
        patterns,
        events_examined: events.len() as u64,
        accesses,
        workloads,
    })
}

/// The PCI-DSS access report as an HTML page.
pub fn pci_html(r: &PciReport) -> String {
    let body = html! {
        p { "Cardholder-data paths: " @for (i, p) in r.patterns.iter().enumerate() {
            @if i > 0 { ", " } code { (p) } } "." }
        p { (r.events_examined) " file opens examined; " (r.workloads.len())
            " workload(s) touched cardholder data." }
        (table(&["Workload", "Program", "User id", "Access", "Path", "Count", "First", "Last"],
            &r.accesses, |a| html! { tr {
                td { code { (a.workload) } } td { code { (a.program) } } td { (a.uid) }
                td { (a.access) } td { code { (a.path) } } td { (a.count) }
                td { (rfc3339(a.first_ns)) } td { (rfc3339(a.last_ns)) }
            } }))
    };
    page(
        "PCI-DSS cardholder-data access report",
        r.since_ns,
        r.until_ns,
        r.generated_ns,
        body,
    )
}
