//! The `WorkloadProfile` custom resource (`baseliner.io/v1alpha1`, short name `wp`): one
//! workload's behaviour profile, shared by the agents of every node that runs the workload.
//!
//! Each node's agent writes its own element of `spec.parts` (a list-map keyed by `node`) with
//! server-side apply under its own field manager, so agents never overwrite each other's parts;
//! the profile a workload is scored with is the commutative merge of all parts
//! ([`merge::merge`]), and the status holds that merged view: mode, entry count, stable since,
//! content hash, and the nodes whose part diverges from their siblings' ([`merge::divergence`]).
//!
//! A part holds the node's profile as entries of the export format ([`DiffEntry`] beside its
//! [`Seen`] record) and the reviewers' approvals made through that node's API, with the content
//! hash of the export format ([`profiles::export`]) over both. A part read back is checked like
//! an import (entries, approvals, hash) before it is merged.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::jiff::Timestamp;
use kube::{CustomResource, CustomResourceExt as _};
use profiles::{
    diff::DiffEntry,
    export::{self, ImportError},
    model::{Profile, Seen},
    review::Approval,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::identity::parse_workload_id;

pub mod merge;

pub use merge::{Divergence, NodePart, Threshold};

/// The command that prints [`crd_yaml`] (and so regenerates `deploy/crd.yaml`).
pub const CRD_COMMAND: &str = "baseliner k8s crd";

/// Longest object name [`object_name`] gives: a DNS-1123 label's length, so the name reads well
/// in `kubectl get` and also fits a label value.
pub const MAX_NAME: usize = 63;

/// Hex digits of the hash suffix [`object_name`] adds to a shortened or sanitised name.
const HASH_DIGITS: usize = 8;

/// The workload and each node's part of its profile.
// Printer columns repeat `type_ = ...` by nature.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "baseliner.io",
    version = "v1alpha1",
    kind = "WorkloadProfile",
    namespaced,
    status = "WorkloadProfileStatus",
    shortname = "wp",
    doc = "The behaviour profile of one workload, learned on every node that runs it: each \
           node's part in spec.parts, the merged view in the status.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".status.mode",
        description = "The workload's mode (learn, alert, dry-run or enforce)."
    ),
    printcolumn(
        name = "Entries",
        type_ = "integer",
        json_path = ".status.entries",
        description = "Entries of the merged profile."
    ),
    printcolumn(
        name = "Stable-Since",
        type_ = "date",
        json_path = ".status.stableSince",
        description = "Since when the merged profile has had no new entry."
    ),
    printcolumn(
        name = "Hash",
        type_ = "string",
        json_path = ".status.contentHash",
        description = "Content hash of the merged profile (SHA-256, as in a profile export)."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadProfileSpec {
    /// The workload (namespace, owner and container); replicas share it.
    pub workload: WorkloadRef,
    /// Each node's part of the profile, one per node, written by that node's agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub parts: Vec<ProfilePart>,
}

/// A Kubernetes workload: namespace, top owner and container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Namespace.
    pub namespace: String,
    /// Kind of the top owner (Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod, ...).
    pub owner_kind: String,
    /// Name of the top owner.
    pub owner_name: String,
    /// Container name.
    pub container: String,
}

impl WorkloadRef {
    /// The parts of a Kubernetes workload id; `None` for host workloads.
    pub fn from_id(workload_id: &str) -> Option<WorkloadRef> {
        let [namespace, owner_kind, owner_name, container] = parse_workload_id(workload_id)?;
        Some(WorkloadRef {
            namespace: namespace.into(),
            owner_kind: owner_kind.into(),
            owner_name: owner_name.into(),
            container: container.into(),
        })
    }

    /// The workload id: `k8s:<namespace>/<owner kind>/<owner name>/<container>`.
    pub fn id(&self) -> String {
        format!(
            "k8s:{}/{}/{}/{}",
            self.namespace, self.owner_kind, self.owner_name, self.container
        )
    }
}

/// One node's part of a workload's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePart {
    /// The node whose agent wrote this part.
    pub node: String,
    /// The workload revision the part was learned for (pod-template-hash or image digest).
    #[serde(default)]
    pub revision: String,
    /// The profile's entries learned on this node, in the export format's order.
    #[serde(default)]
    pub entries: Vec<PartEntry>,
    /// Reviewers' approvals of entries, made through this node's API, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<PartApproval>,
    /// Content hash of this part (a profile export's SHA-256 of the workload id, revision,
    /// entries and approvals).
    #[serde(default)]
    pub hash: String,
    /// Nanoseconds since the epoch of this part's last new entry.
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub stable_since_ns: u64,
    /// Nanoseconds since the epoch of this part's last write.
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub updated_ns: u64,
}

/// One profile entry: the export format's entry (its `kind` beside the entry's fields) and
/// how often and when it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: DiffEntry,
    /// Its record.
    #[serde(flatten)]
    pub seen: Seen,
}

impl JsonSchema for PartEntry {
    fn schema_name() -> Cow<'static, str> {
        "PartEntry".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        entry_schema(true)
    }
}

/// A reviewer's approval of an entry, which joins the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartApproval {
    /// The approved proposal.
    pub proposal_id: String,
    /// What joined the profile: the pattern the reviewer named, or the exact entry.
    #[schemars(schema_with = "plain_entry_schema")]
    pub entry: DiffEntry,
    /// The proposal's entry, which `entry` covers.
    #[schemars(schema_with = "plain_entry_schema")]
    pub exact: DiffEntry,
    /// Who approved.
    pub reviewer: String,
    /// When (RFC 3339, to the nanosecond).
    #[schemars(extend("format" = "date-time"))]
    pub approved_at: String,
    /// Why (may be empty).
    #[serde(default)]
    pub comment: String,
}

/// The merged view of every node's part, written by the agents under one shared field manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadProfileStatus {
    /// The workload's mode (learn, alert, dry-run or enforce).
    #[serde(default)]
    pub mode: String,
    /// Where the mode comes from (a pod or namespace annotation, the API, the default).
    #[serde(default)]
    pub mode_source: String,
    /// Entries of the merged profile.
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub entries: u64,
    /// Since when the merged profile has had no new entry (the latest of the parts').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub stable_since: Option<String>,
    /// Content hash of the merged profile with every part's approvals (a profile export's
    /// SHA-256).
    #[serde(default)]
    pub content_hash: String,
    /// Nodes whose parts were merged.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub nodes: u32,
    /// Reviewers' approvals in the merged profile.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub approvals: u32,
    /// Nodes whose part has many entries that no other node's part has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub divergent: Vec<Divergence>,
    /// Parts left out of the merge because they failed the checks of an import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedPart>,
}

/// A part that was not merged, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RejectedPart {
    /// The node that wrote it.
    pub node: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The schema of a [`DiffEntry`], with the [`Seen`] fields when `seen`: one object whose
/// fields depend on `kind` (a structural schema cannot branch, so every field is optional).
fn entry_schema(seen: bool) -> Schema {
    let string = |description: &str| json_schema!({"type": "string", "description": description});
    let integer = |description: &str| json_schema!({"type": "integer", "format": "int64", "minimum": 0, "description": description});
    let mut properties = BTreeMap::from([
        (
            "kind",
            string("exec, lineage, file, connect or listen: which fields follow."),
        ),
        (
            "path",
            string("exec, file: the program or file path pattern."),
        ),
        (
            "parent",
            string("lineage: the parent's executable pattern."),
        ),
        ("child", string("lineage: the child's executable pattern.")),
        ("access", string("file: read, write or create.")),
        ("family", string("connect, listen: inet, inet6 or unix.")),
        (
            "protocol",
            string("connect, listen: tcp, udp, raw, stream, dgram, seqpacket or unknown."),
        ),
        (
            "addr",
            string("connect, listen: IP address or CIDR, or unix socket path pattern."),
        ),
        (
            "port",
            json_schema!({
                "type": "integer",
                "minimum": 0,
                "maximum": 65535,
                "description": "connect, listen: port (0: any, or a unix socket).",
            }),
        ),
        (
            "args",
            json_schema!({
                "type": "array",
                "nullable": true,
                "items": {"type": "string"},
                "description": "exec: generalised arguments after argv[0]; null when unknown.",
            }),
        ),
    ]);
    if seen {
        properties.extend([
            ("count", integer("How often the entry was seen.")),
            (
                "first_ns",
                integer("Nanoseconds since the epoch of its first observation."),
            ),
            (
                "last_ns",
                integer("Nanoseconds since the epoch of its latest observation."),
            ),
        ]);
    }
    let required: &[&str] = if seen {
        &["kind", "count", "first_ns", "last_ns"]
    } else {
        &["kind"]
    };
    json_schema!({
        "type": "object",
        "required": required,
        "properties": properties,
    })
}

fn plain_entry_schema(_: &mut SchemaGenerator) -> Schema {
    entry_schema(false)
}

/// The CustomResourceDefinition of [`WorkloadProfile`] as YAML, with a header saying it is
/// generated: what `deploy/crd.yaml` holds, byte for byte.
pub fn crd_yaml() -> String {
    let body = yaml_serde::to_string(&WorkloadProfile::crd())
        .expect("a CustomResourceDefinition always serialises to YAML");
    format!(
        "# Generated from the WorkloadProfile type (learner/src/kubernetes/crd.rs) by \
         `{CRD_COMMAND}`:\n\
         # do not edit; regenerate with `{CRD_COMMAND} > deploy/crd.yaml`.\n\
         #\n\
         # A WorkloadProfile is one workload's learned behaviour profile, shared by the agents of \
         every\n\
         # node that runs the workload: each node applies its own part (spec.parts, a list-map \
         keyed by\n\
         # node, under its own field manager), and the status holds the merged view (mode, \
         entry count,\n\
         # stable since, content hash, nodes whose part diverges from their siblings').\n\
         {body}"
    )
}

/// Where a Kubernetes workload's `WorkloadProfile` lives: its namespace and object name;
/// `None` for host workloads.
///
/// The name is `<owner kind>-<owner name>-<container>`, lowercased (e.g.
/// `deployment-web-nginx`). When the owner name or container had to change to make a valid
/// DNS-1123 subdomain (upper case, characters other than `a-z0-9.-`), or the name is longer
/// than [`MAX_NAME`], it is cut and ends in `-` and the first 8 hex digits of the SHA-256 of the
/// workload id, so distinct workloads keep distinct names.
pub fn object_name(workload_id: &str) -> Option<(String, String)> {
    let [namespace, kind, owner, container] = parse_workload_id(workload_id)?;
    let plain = format!("{}-{owner}-{container}", kind.to_ascii_lowercase());
    let mut name: String = plain
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    // Every dot-separated label must start and end with a letter or digit.
    let bytes = name.as_bytes().to_vec();
    for (i, b) in bytes.iter().enumerate() {
        let alnum = |j: Option<usize>| {
            j.and_then(|j| bytes.get(j))
                .is_some_and(u8::is_ascii_alphanumeric)
        };
        if *b == b'.' && !(alnum(i.checked_sub(1)) && alnum(Some(i + 1))) {
            name.replace_range(i..=i, "-");
        }
    }
    let trimmed = name.trim_matches('-');
    if trimmed == plain && plain.len() <= MAX_NAME {
        return Some((namespace.into(), plain));
    }
    let hash = format!("{:x}", Sha256::digest(workload_id.as_bytes()));
    let keep = MAX_NAME - HASH_DIGITS - 1;
    let stem = trimmed[..trimmed.len().min(keep)].trim_end_matches(['-', '.']);
    let name = match stem {
        "" => format!("workload-{}", &hash[..HASH_DIGITS]),
        stem => format!("{stem}-{}", &hash[..HASH_DIGITS]),
    };
    Some((namespace.into(), name))
}

/// A part read back that cannot be merged.
#[derive(Debug, Error)]
pub enum PartError {
    /// An approval's time is not RFC 3339.
    #[error("part of node {node:?}: approval {proposal:?} has an invalid time {value:?}")]
    Time {
        /// The part's node.
        node: String,
        /// The approval's proposal id.
        proposal: String,
        /// The time as written.
        value: String,
    },
    /// The part fails the checks of a profile import (content hash, entries, approvals).
    #[error("part of node {node:?}: {source}")]
    Invalid {
        /// The part's node.
        node: String,
        /// What the import found.
        #[source]
        source: ImportError,
    },
}

impl PartError {
    /// The node whose part it is.
    pub fn node(&self) -> &str {
        match self {
            PartError::Time { node, .. } | PartError::Invalid { node, .. } => node,
        }
    }
}

/// Every entry of a profile with its record, in the export format's order.
pub fn profile_entries(p: &Profile) -> impl Iterator<Item = (DiffEntry, Seen)> + '_ {
    let execs = p
        .execs
        .iter()
        .map(|(k, s)| (DiffEntry::Exec(k.clone()), *s));
    let lineage = p
        .lineage
        .iter()
        .map(|(k, s)| (DiffEntry::Lineage(k.clone()), *s));
    let files = p
        .files
        .iter()
        .map(|(k, s)| (DiffEntry::File(k.clone()), *s));
    let connects = p
        .connects
        .iter()
        .map(|(k, s)| (DiffEntry::Connect(k.clone()), *s));
    let listens = p
        .listens
        .iter()
        .map(|(k, s)| (DiffEntry::Listen(k.clone()), *s));
    execs
        .chain(lineage)
        .chain(files)
        .chain(connects)
        .chain(listens)
}

/// Adds an entry to a profile, merging its record with one already there.
pub fn add_entry(p: &mut Profile, entry: DiffEntry, seen: Seen) {
    fn add<K: Ord>(m: &mut BTreeMap<K, Seen>, k: K, s: Seen) {
        m.entry(k).and_modify(|e| e.merge(&s)).or_insert(s);
    }
    match entry {
        DiffEntry::Exec(k) => add(&mut p.execs, k, seen),
        DiffEntry::Lineage(k) => add(&mut p.lineage, k, seen),
        DiffEntry::File(k) => add(&mut p.files, k, seen),
        DiffEntry::Connect(k) => add(&mut p.connects, k, seen),
        DiffEntry::Listen(k) => add(&mut p.listens, k, seen),
    }
}

/// RFC 3339 text of a time in nanoseconds since the epoch (UTC, fraction only when needed).
pub fn rfc3339(ns: u64) -> String {
    Timestamp::from_nanosecond(i128::from(ns))
        .unwrap_or(Timestamp::MAX)
        .to_string()
}

/// The export document a part's hash covers, with the part's stated hash.
fn export_of(
    workload_id: &str,
    revision: &str,
    profile: &Profile,
    approvals: Vec<Approval>,
) -> export::ProfileExport {
    export::export(workload_id, revision, Value::Null, profile).with_approvals(approvals)
}

impl ProfilePart {
    /// The part `node` publishes for a workload: its profile's entries, the approvals of that
    /// workload (in time order), and their content hash.
    pub fn new(
        node: &str,
        workload_id: &str,
        revision: &str,
        profile: &Profile,
        approvals: &[Approval],
        stable_since_ns: u64,
        updated_ns: u64,
    ) -> ProfilePart {
        let mut approvals: Vec<Approval> = approvals
            .iter()
            .filter(|a| a.workload == workload_id)
            .cloned()
            .collect();
        approvals.sort_by(|a, b| (a.at_ns, &a.proposal_id).cmp(&(b.at_ns, &b.proposal_id)));
        let hash = export_of(workload_id, revision, profile, approvals.clone()).content_sha256;
        ProfilePart {
            node: node.into(),
            revision: revision.into(),
            entries: profile_entries(profile)
                .map(|(entry, seen)| PartEntry { entry, seen })
                .collect(),
            approvals: approvals
                .into_iter()
                .map(|a| PartApproval {
                    proposal_id: a.proposal_id,
                    entry: a.entry,
                    exact: a.exact,
                    reviewer: a.reviewer,
                    approved_at: rfc3339(a.at_ns),
                    comment: a.comment,
                })
                .collect(),
            hash,
            stable_since_ns,
            updated_ns,
        }
    }

    /// The part as a profile with its approvals, checked as an import of `workload_id` is:
    /// the content hash, every entry and every approval.
    pub fn to_node_part(&self, workload_id: &str) -> Result<NodePart, PartError> {
        let mut profile = Profile::default();
        for e in &self.entries {
            add_entry(&mut profile, e.entry.clone(), e.seen);
        }
        let approvals = self
            .approvals
            .iter()
            .map(|a| {
                let at = a.approved_at.parse::<Timestamp>().ok();
                let at_ns = at.and_then(|t| u64::try_from(t.as_nanosecond()).ok());
                Ok(Approval {
                    proposal_id: a.proposal_id.clone(),
                    workload: workload_id.into(),
                    entry: a.entry.clone(),
                    exact: a.exact.clone(),
                    reviewer: a.reviewer.clone(),
                    at_ns: at_ns.ok_or_else(|| PartError::Time {
                        node: self.node.clone(),
                        proposal: a.proposal_id.clone(),
                        value: a.approved_at.clone(),
                    })?,
                    comment: a.comment.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut doc = export_of(workload_id, &self.revision, &profile, approvals);
        doc.content_sha256 = self.hash.clone();
        let checked =
            export::import(&export::to_json(&doc)).map_err(|source| PartError::Invalid {
                node: self.node.clone(),
                source,
            })?;
        Ok(NodePart {
            node: self.node.clone(),
            revision: checked.revision,
            profile: checked.profile,
            approvals: checked.approvals,
            stable_since_ns: self.stable_since_ns,
            updated_ns: self.updated_ns,
        })
    }
}

impl WorkloadProfile {
    /// The workload id the object is for.
    pub fn workload_id(&self) -> String {
        self.spec.workload.id()
    }

    /// Every part, checked ([`ProfilePart::to_node_part`]): the good ones in node order, and
    /// why the others cannot be merged.
    pub fn parts(&self) -> (Vec<NodePart>, Vec<PartError>) {
        let id = self.workload_id();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for part in &self.spec.parts {
            match part.to_node_part(&id) {
                Ok(p) => good.push(p),
                Err(e) => bad.push(e),
            }
        }
        good.sort_by(|a, b| a.node.cmp(&b.node));
        (good, bad)
    }

    /// The checked parts of every node but `node`, for the agent on `node` to merge into the
    /// profile it scores with ([`merge::merge`]), and why other parts cannot be merged.
    pub fn other_parts(&self, node: &str) -> (Vec<NodePart>, Vec<PartError>) {
        let (mut good, mut bad) = self.parts();
        good.retain(|p| p.node != node);
        bad.retain(|e| e.node() != node);
        (good, bad)
    }
}

#[cfg(test)]
pub(crate) mod tests;
