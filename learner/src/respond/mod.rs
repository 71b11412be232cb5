//! Automated responses to alerts, configured per severity and rule (`[respond]` in the
//! configuration): kill the process tree, freeze it (SIGSTOP), and on Kubernetes quarantine the
//! pod or delete it ([`KubeHooks`]; the Kubernetes integration provides them). Never acts on
//! the agent itself, its ancestors, pid 1 or a protected cgroup or namespace; at most
//! `max_per_minute` actions a minute. Every action is written to the audit log in the store
//! ([`audit`]) and reported in the alert that caused it.

pub mod audit;
pub mod process;

use std::{collections::VecDeque, path::PathBuf};

use profiles::{mode::Mode, store::Store};
use scorer::alert::{ActionTaken, Alert, Severity};
use serde::Deserialize;

use crate::recorder::now_ns;

/// A response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// SIGKILL the alert's process and its descendants in the workload (frozen first, so
    /// none forks away).
    Kill,
    /// SIGSTOP them, for inspection.
    Freeze,
    /// Kubernetes: label the pod and isolate it with a deny-all NetworkPolicy.
    Quarantine,
    /// Kubernetes: delete the pod.
    DeletePod,
}

impl Action {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Freeze => "freeze",
            Action::Quarantine => "quarantine",
            Action::DeletePod => "delete-pod",
        }
    }
}

/// `[[respond.rules]]`: when to take an action.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    /// What to do.
    pub action: Action,
    /// Alerts at or above this severity.
    pub min_severity: Severity,
    /// Only alerts with a reason from one of these rules (e.g. `crypto-miner`); empty: any.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only workloads in these modes; empty: alert, dry-run and enforce.
    #[serde(default)]
    pub modes: Vec<Mode>,
}

/// `[respond]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RespondConfig {
    /// The rules, each checked on every new alert.
    pub rules: Vec<ResponseRule>,
    /// Actions per minute at most, all workloads together.
    pub max_per_minute: usize,
    /// Workloads (cgroup paths; a path covers its sub-cgroups) never acted on.
    pub protected_cgroups: Vec<String>,
    /// Kubernetes namespaces never acted on.
    pub protected_namespaces: Vec<String>,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            rules: Vec::new(),
            max_per_minute: 20,
            protected_cgroups: Vec::new(),
            protected_namespaces: vec!["kube-system".into()],
        }
    }
}

impl RespondConfig {
    /// Checks that every rule names known alert rules.
    pub fn validate(&self) -> Result<(), String> {
        let known: Vec<&str> = scorer::rules::RULES
            .iter()
            .map(|r| r.name)
            .chain([
                scorer::score::NOVELTY,
                scorer::score::RARITY,
                scorer::rates::RATE,
                scorer::alert::ENFORCE,
                crate::enforce::canary::CANARY,
            ])
            .collect();
        for rule in &self.rules {
            if let Some(bad) = rule.rules.iter().find(|r| !known.contains(&r.as_str())) {
                return Err(format!(
                    "[[respond.rules]]: unknown alert rule {bad:?}; known rules: {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Responses that need Kubernetes; the Kubernetes integration implements them. The pod is the
/// one in the alert's event (`alert.event.workload.k8s`).
///
/// Called from the agent's event loop, with the recorder locked: a hook must return at once,
/// never wait on the network nor lock the recorder. `Ok` is the outcome to report (`done: …`,
/// or `requested: …` when the action goes on in the background and its final outcome is
/// audited later); `Err` is `skipped: <why>` or why it failed.
pub trait KubeHooks: Send {
    /// Labels the alert's pod and isolates it with a deny-all NetworkPolicy.
    fn quarantine(&self, alert: &Alert) -> Result<String, String>;
    /// Deletes the alert's pod.
    fn delete_pod(&self, alert: &Alert) -> Result<String, String>;
}

/// The hooks off Kubernetes: every Kubernetes action is skipped, saying why.
pub struct NoKubernetes;

impl KubeHooks for NoKubernetes {
    fn quarantine(&self, _alert: &Alert) -> Result<String, String> {
        Err("skipped: not running on Kubernetes".into())
    }
    fn delete_pod(&self, _alert: &Alert) -> Result<String, String> {
        Err("skipped: not running on Kubernetes".into())
    }
}

/// The target of a Kubernetes response to `alert`, in words: `pod <namespace>/<name>` when
/// the alert's event names its pod.
pub fn pod_target(alert: &Alert) -> String {
    match &alert.event.workload.k8s {
        Some(k) => format!("pod {}/{}", k.namespace, k.pod),
        None => format!("the pod of {}", alert.workload),
    }
}

/// Takes the configured responses.
pub struct Responder {
    config: RespondConfig,
    kube: Box<dyn KubeHooks>,
    proc_root: PathBuf,
    /// Times of the actions of the last minute.
    recent: VecDeque<u64>,
}

impl Responder {
    /// A responder for `config` (on the host's /proc).
    pub fn new(config: RespondConfig, kube: Box<dyn KubeHooks>) -> Responder {
        Responder {
            config,
            kube,
            proc_root: PathBuf::from("/proc"),
            recent: VecDeque::new(),
        }
    }

    fn matches(rule: &ResponseRule, alert: &Alert, mode: Mode) -> bool {
        alert.severity >= rule.min_severity
            && (rule.rules.is_empty() || alert.reasons.iter().any(|r| rule.rules.contains(&r.rule)))
            && if rule.modes.is_empty() {
                mode.scores()
            } else {
                rule.modes.contains(&mode)
            }
    }

    /// Why the workload may not be acted on, if it may not: its cgroup (the workload id, or
    /// the event's cgroup path when the id is a Kubernetes one) or its pod's namespace is
    /// protected.
    fn protected(&self, alert: &Alert) -> Option<String> {
        let paths = [
            alert.workload.as_str(),
            alert.event.workload.cgroup.as_str(),
        ];
        let covered = |p: &String| {
            let p = p.trim_end_matches('/');
            paths
                .iter()
                .any(|w| *w == p || w.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        };
        if let Some(p) = self.config.protected_cgroups.iter().find(|p| covered(p)) {
            return Some(format!("skipped: the cgroup {p} is protected"));
        }
        if let Some(k) = &alert.event.workload.k8s
            && self.config.protected_namespaces.contains(&k.namespace)
        {
            return Some(format!(
                "skipped: the namespace {} is protected",
                k.namespace
            ));
        }
        None
    }

    /// Takes every response `alert` calls for in a workload in `mode`, records each in the
    /// audit log, and returns them.
    pub fn respond(&mut self, alert: &Alert, mode: Mode, store: &Store) -> Vec<ActionTaken> {
        let actions: Vec<Action> = self
            .config
            .rules
            .iter()
            .filter(|r| Self::matches(r, alert, mode))
            .map(|r| r.action)
            .collect();
        let mut taken = Vec::new();
        for action in actions {
            let at_ns = now_ns();
            let (target, outcome) = self.act(action, alert, at_ns);
            let record = ActionTaken {
                action: action.as_str().into(),
                target,
                outcome,
                at_ns,
            };
            tracing::warn!(workload = %alert.workload, action = %record.action,
                target = %record.target, outcome = %record.outcome, alert = %alert.key,
                "response");
            if let Err(e) = audit::record(store, alert, &record) {
                tracing::error!(error = %e, "writing the audit log");
            }
            taken.push(record);
        }
        taken
    }

    fn act(&mut self, action: Action, alert: &Alert, at_ns: u64) -> (String, String) {
        let pid = alert.event.pid;
        let target = match action {
            Action::Kill | Action::Freeze => format!("pid {pid} and its descendants"),
            Action::Quarantine | Action::DeletePod => pod_target(alert),
        };
        if let Some(why) = self.protected(alert) {
            return (target, why);
        }
        while self
            .recent
            .front()
            .is_some_and(|t| at_ns.saturating_sub(*t) > 60_000_000_000)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.config.max_per_minute {
            let n = self.config.max_per_minute;
            return (
                target,
                format!("skipped: rate limit ({n} actions a minute)"),
            );
        }
        self.recent.push_back(at_ns);
        let result = match action {
            // The tree is bounded by the cgroup the event came from (a Kubernetes workload id
            // is not a cgroup path; on a host the two are the same).
            Action::Kill | Action::Freeze => process::signal_tree(
                &self.proc_root,
                pid,
                match alert.event.workload.cgroup.as_str() {
                    "" => &alert.workload,
                    cgroup => cgroup,
                },
                action == Action::Kill,
            )
            .map(|n| format!("done: {n} processes")),
            Action::Quarantine => self.kube.quarantine(alert),
            Action::DeletePod => self.kube.delete_pod(alert),
        };
        let outcome = result.unwrap_or_else(|e| {
            if e.starts_with("skipped") {
                e
            } else {
                format!("failed: {e}")
            }
        });
        (target, outcome)
    }
}

#[cfg(test)]
mod tests;
