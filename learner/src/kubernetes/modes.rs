//! Modes from annotations: `baseliner.io/mode` on the pod (from its template), else on the
//! namespace, else whatever the store holds (set through the API, or the agent's default).
//!
//! Replicas share one workload, so the newest pod of a workload on this node decides (during a
//! rollout, the new template's annotation wins). An invalid value changes nothing: the
//! workload keeps its previous mode, and the value is reported once (log and a Kubernetes
//! Event on the object that holds it).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context as _, Result};
use profiles::mode::Mode;

use super::{identity::MODE_ANNOTATION, pods::PodCache};
use crate::recorder::{Recorder, now_ns};

/// The object whose annotation decided (or was invalid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Annotated {
    /// A pod: namespace, name, UID.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID.
        uid: String,
    },
    /// A namespace.
    Namespace(String),
}

impl Annotated {
    /// "pod annotation baseliner.io/mode on shop/web-1" or "namespace annotation … on shop".
    pub fn describe(&self) -> String {
        match self {
            Annotated::Pod {
                namespace, name, ..
            } => format!("pod annotation {MODE_ANNOTATION} on {namespace}/{name}"),
            Annotated::Namespace(ns) => format!("namespace annotation {MODE_ANNOTATION} on {ns}"),
        }
    }
}

/// An annotation value that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvalidMode {
    /// Where it is.
    pub object: Annotated,
    /// The value.
    pub value: String,
}

impl InvalidMode {
    /// The message for the log and the Kubernetes Event.
    pub fn message(&self) -> String {
        format!(
            "invalid {}: {:?} is not a mode (learn, alert, dry-run or enforce); the previous \
             mode stays",
            self.object.describe(),
            self.value
        )
    }
}

/// What the annotations say about one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This mode, decided by this annotation.
    Mode(Mode, Annotated),
    /// An annotation that would decide is invalid: keep the mode.
    Keep,
    /// No annotation: the store's mode (API-set or default) applies.
    None,
}

/// Reads one annotation value: `Ok(None)` when absent.
fn parse(
    value: Option<&String>,
    object: Annotated,
) -> Result<Option<(Mode, Annotated)>, InvalidMode> {
    match value {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(|m| Some((m, object.clone())))
            .map_err(|_| InvalidMode {
                object,
                value: v.clone(),
            }),
    }
}

/// What the annotations decide for every workload with a pod on this node, and the invalid
/// values met on the way.
pub fn decide(cache: &PodCache) -> (BTreeMap<String, Decision>, Vec<InvalidMode>) {
    // The newest pod speaks for its workload (ties: the name, so the choice is stable).
    let newest = cache.newest_pods();
    let mut invalid = Vec::new();
    let mut decisions = BTreeMap::new();
    for (id, pod) in newest {
        let on_pod = Annotated::Pod {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        };
        let decision = match parse(pod.mode.as_ref(), on_pod) {
            Ok(Some((m, by))) => Decision::Mode(m, by),
            Err(e) => {
                invalid.push(e);
                Decision::Keep
            }
            Ok(None) => {
                let ns = cache.namespace(&pod.namespace);
                let on_ns = Annotated::Namespace(pod.namespace.clone());
                match parse(ns.and_then(|n| n.mode.as_ref()), on_ns) {
                    Ok(Some((m, by))) => Decision::Mode(m, by),
                    Err(e) => {
                        invalid.push(e);
                        Decision::Keep
                    }
                    Ok(None) => Decision::None,
                }
            }
        };
        decisions.insert(id, decision);
    }
    invalid.sort_by(|a, b| (&a.object, &a.value).cmp(&(&b.object, &b.value)));
    invalid.dedup();
    (decisions, invalid)
}

/// One mode the annotations changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// The workload.
    pub workload: String,
    /// Its mode before.
    pub from: Mode,
    /// Its mode now.
    pub to: Mode,
    /// Why: the annotation, or its removal.
    pub why: String,
}

/// Applies the annotations' decisions to the recorder's modes.
#[derive(Debug, Default)]
pub struct ModeController {
    /// Workload → the annotation that decides its mode now.
    governed: HashMap<String, Annotated>,
    /// Invalid values already reported.
    reported: HashSet<InvalidMode>,
}

impl ModeController {
    /// A controller that has decided nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Workload → the annotation that decides its mode ("pod annotation … on ns/pod").
    pub fn sources(&self) -> BTreeMap<String, String> {
        self.governed
            .iter()
            .map(|(w, a)| (w.clone(), a.describe()))
            .collect()
    }

    /// Brings the modes in line with the annotations in `cache`: sets every mode an
    /// annotation decides, durably and audited (actor `kubernetes`); a workload whose
    /// annotation went away returns to the agent's default. Returns the changes made, and
    /// the invalid values not reported before.
    pub fn reconcile(
        &mut self,
        cache: &PodCache,
        recorder: &mut Recorder,
    ) -> Result<(Vec<ModeChange>, Vec<InvalidMode>)> {
        let (decisions, invalid) = decide(cache);
        let mut changes = Vec::new();
        for (workload, decision) in &decisions {
            let (to, why) = match decision {
                Decision::Mode(m, by) => {
                    self.governed.insert(workload.clone(), by.clone());
                    (*m, by.describe())
                }
                Decision::Keep => continue,
                Decision::None => match self.governed.remove(workload) {
                    Some(was) => (
                        recorder.settings().default_mode,
                        format!("the {} was removed: the default mode", was.describe()),
                    ),
                    None => continue,
                },
            };
            let from = recorder.mode(workload)?;
            if from == to {
                continue;
            }
            recorder
                .set_mode(workload, to)
                .with_context(|| format!("setting the mode of {workload}"))?;
            let rec = api::AuditRecord::change(
                "kubernetes",
                workload,
                api::SET_MODE_ACTION,
                format!("{to} (was {from}): {why}"),
                now_ns(),
            );
            crate::respond::audit::append(recorder.store(), &rec)
                .context("auditing a mode change from an annotation")?;
            tracing::info!(%workload, %from, %to, %why, "mode set by annotation");
            changes.push(ModeChange {
                workload: workload.clone(),
                from,
                to,
                why,
            });
        }
        // Workloads without a pod here any more: no longer governed from this node.
        self.governed.retain(|w, _| decisions.contains_key(w));
        // A value fixed and broken again is reported again.
        self.reported.retain(|r| invalid.contains(r));
        let fresh: Vec<InvalidMode> = invalid
            .into_iter()
            .filter(|i| self.reported.insert(i.clone()))
            .collect();
        for i in &fresh {
            tracing::warn!("{}", i.message());
        }
        Ok((changes, fresh))
    }
}

#[cfg(test)]
mod tests;
