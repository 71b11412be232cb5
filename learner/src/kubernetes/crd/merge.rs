//! The merged view of a workload's parts, as pure functions: the merged profile (commutative:
//! the order parts arrive in does not matter), the approvals of every part, the nodes whose
//! part diverges from their siblings', and the status all agents compute alike.

use std::collections::{BTreeMap, BTreeSet};

use profiles::{diff::DiffEntry, mode::Mode, model::Profile, review::Approval};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RejectedPart, WorkloadProfileStatus, profile_entries};

/// Unique entries named as examples in a [`Divergence`].
pub const MAX_EXAMPLES: usize = 3;

/// One node's part, checked and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePart {
    /// The node whose agent wrote it.
    pub node: String,
    /// The workload revision it was learned for.
    pub revision: String,
    /// The entries learned on that node.
    pub profile: Profile,
    /// Reviewers' approvals made through that node's API, in time order.
    pub approvals: Vec<Approval>,
    /// Nanoseconds since the epoch of the part's last new entry.
    pub stable_since_ns: u64,
    /// Nanoseconds since the epoch of the part's last write.
    pub updated_ns: u64,
}

/// When a part counts as divergent: it has more than `min_unique` entries that no other part
/// has, and they are more than `min_percent` % of its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Unique entries a part may have without diverging.
    pub min_unique: usize,
    /// Share of its entries (percent) that may be unique without diverging.
    pub min_percent: u32,
}

impl Default for Threshold {
    /// More than 10 unique entries, and more than 20 % of the part.
    fn default() -> Self {
        Threshold {
            min_unique: 10,
            min_percent: 20,
        }
    }
}

/// A node whose part has many entries that no other node's part has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Divergence {
    /// The node.
    pub node: String,
    /// Entries of its part that no other part has.
    #[schemars(extend("format" = "int64"))]
    pub unique: u64,
    /// Entries of its part.
    #[schemars(extend("format" = "int64"))]
    pub entries: u64,
    /// Some of the unique entries, as one line each.
    pub examples: Vec<String>,
    /// What it may mean, in words.
    pub reason: String,
}

/// Every part's approvals, each once, in time order (then proposal id and reviewer).
pub fn approvals(parts: &[NodePart]) -> Vec<Approval> {
    let mut all: Vec<Approval> = parts.iter().flat_map(|p| p.approvals.clone()).collect();
    all.sort_by(|a, b| {
        let key = |x: &Approval| {
            (
                x.at_ns,
                x.proposal_id.clone(),
                x.reviewer.clone(),
                x.entry.clone(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| (&a.exact, &a.comment).cmp(&(&b.exact, &b.comment)))
    });
    all.dedup();
    all
}

/// The profile the workload is scored with: every part's entries merged
/// ([`Profile::merge`]), then every approval applied. The same parts in any order give the
/// same profile.
pub fn merge(parts: &[NodePart]) -> Profile {
    let mut merged = Profile::default();
    for p in parts {
        merged.merge(&p.profile);
    }
    for a in approvals(parts) {
        a.apply(&mut merged);
    }
    merged
}

/// The revisions of the parts, sorted and joined by commas (one during steady state).
pub fn revision(parts: &[NodePart]) -> String {
    let revisions: BTreeSet<&str> = parts.iter().map(|p| p.revision.as_str()).collect();
    revisions.into_iter().collect::<Vec<_>>().join(",")
}

/// The content hash of the merged profile: the export format's SHA-256 of the workload id,
/// [`revision`], [`merge`] and [`approvals`].
pub fn content_hash(workload_id: &str, parts: &[NodePart]) -> String {
    profiles::export::export(workload_id, revision(parts), Value::Null, &merge(parts))
        .with_approvals(approvals(parts))
        .content_sha256
}

/// The nodes whose part diverges from the others': for each part, the entries that no other
/// part has (approved entries aside: an approval is made through one node's API and is
/// meant for all); a part diverges when they pass `threshold`. A workload learned on one node
/// never diverges.
pub fn divergence(parts: &[NodePart], threshold: Threshold) -> Vec<Divergence> {
    if parts.len() < 2 {
        return Vec::new();
    }
    let approved: BTreeSet<DiffEntry> = approvals(parts)
        .into_iter()
        .flat_map(|a| [a.entry, a.exact])
        .collect();
    let sets: Vec<BTreeSet<DiffEntry>> = parts
        .iter()
        .map(|p| {
            profile_entries(&p.profile)
                .map(|(e, _)| e)
                .filter(|e| !approved.contains(e))
                .collect()
        })
        .collect();
    let mut holders: BTreeMap<&DiffEntry, usize> = BTreeMap::new();
    for e in sets.iter().flatten() {
        *holders.entry(e).or_default() += 1;
    }
    parts
        .iter()
        .zip(&sets)
        .filter_map(|(part, set)| {
            let unique: Vec<&DiffEntry> = set.iter().filter(|e| holders[e] == 1).collect();
            let (n, total) = (unique.len(), set.len());
            let diverges = n > threshold.min_unique
                && n as u128 * 100 > u128::from(threshold.min_percent) * total as u128;
            diverges.then(|| {
                let examples: Vec<String> = unique
                    .iter()
                    .take(MAX_EXAMPLES)
                    .map(|e| e.to_string())
                    .collect();
                Divergence {
                    reason: reason(&part.node, n, total, parts.len() - 1, &examples),
                    node: part.node.clone(),
                    unique: n as u64,
                    entries: total as u64,
                    examples,
                }
            })
        })
        .collect()
}

fn reason(node: &str, unique: usize, total: usize, others: usize, examples: &[String]) -> String {
    let percent = unique * 100 / total.max(1);
    let siblings = if others == 1 {
        "the other node's replica"
    } else {
        "the replicas on the other nodes"
    };
    format!(
        "the replica on node {node} has {unique} entries that no other node's replica has \
         ({percent} % of its {total}): either {siblings} saw no test traffic while learning \
         and this one did, or this replica was compromised while learning, and the merged \
         profile now allows those entries on every replica; review them, e.g. {}",
        examples.join("; ")
    )
}

/// The status every agent computes alike from the checked parts (and those rejected), with
/// the mode this agent applies.
pub fn status(
    workload_id: &str,
    parts: &[NodePart],
    rejected: Vec<RejectedPart>,
    mode: Mode,
    mode_source: &str,
    threshold: Threshold,
) -> WorkloadProfileStatus {
    let merged = merge(parts);
    WorkloadProfileStatus {
        mode: mode.as_str().into(),
        mode_source: mode_source.into(),
        entries: merged.len() as u64,
        stable_since: parts
            .iter()
            .map(|p| p.stable_since_ns)
            .max()
            .map(|ns| super::rfc3339(ns - ns % 1_000_000_000)),
        content_hash: content_hash(workload_id, parts),
        nodes: parts.len() as u32,
        approvals: approvals(parts).len() as u32,
        divergent: divergence(parts, threshold),
        rejected,
    }
}
