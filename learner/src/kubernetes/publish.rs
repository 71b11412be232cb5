//! Publishing what this node learned for a workload into its `WorkloadProfile`
//! ([`super::crd`]): server-side apply of this node's part under the node's own field manager,
//! then the merged status under one field manager shared by all agents.
//!
//! Two agents publishing at once each compute the status from the object as their own apply
//! returned it; the later status write wins, and the next publish of any node brings it up to
//! date.

use kube::{
    Api, Client, Resource as _,
    api::{Patch, PatchParams},
};
use profiles::{mode::Mode, model::Profile, review::Approval};
use serde_json::json;
use thiserror::Error;

use super::crd::{
    ProfilePart, RejectedPart, Threshold, WorkloadProfile, WorkloadProfileSpec, WorkloadRef, merge,
    object_name,
};
use crate::recorder::now_ns;

/// The field manager of the status, shared by every agent (all compute the same status).
pub const STATUS_MANAGER: &str = "baseliner";

/// The field manager under which `node`'s agent applies its part: `baseliner/<node>`.
pub fn field_manager(node: &str) -> String {
    format!("baseliner/{node}")
}

/// What this node publishes for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalProfile {
    /// The revision the profile was learned for.
    pub revision: String,
    /// The profile learned on this node.
    pub profile: Profile,
    /// Nanoseconds since the epoch of the profile's last new entry.
    pub stable_since_ns: u64,
    /// The mode this node applies to the workload.
    pub mode: Mode,
    /// Where that mode comes from (an annotation, the API, the default).
    pub mode_source: String,
    /// When a part counts as diverging from its siblings'.
    pub threshold: Threshold,
}

/// Publishing failed.
#[derive(Debug, Error)]
pub enum PublishError {
    /// Only Kubernetes workloads have a `WorkloadProfile`.
    #[error("{0:?} is not a Kubernetes workload id (k8s:<namespace>/<kind>/<owner>/<container>)")]
    NotKubernetes(String),
    /// The object of the workload's name belongs to another workload.
    #[error(
        "WorkloadProfile {namespace}/{name} belongs to workload {theirs:?}, not {ours:?}: the \
         two workloads' names collide"
    )]
    Collision {
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The workload being published.
        ours: String,
        /// The workload the object holds.
        theirs: String,
    },
    /// The API server refused or could not be reached.
    #[error("WorkloadProfile {namespace}/{name}: {source}")]
    Kube {
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Publishes this node's part of `workload_id`'s profile with `approvals` (those of other
/// workloads are left out), then the status merged from every node's part. Returns the object
/// as stored after the status write.
///
/// An object of another workload under the same name is [`PublishError::Collision`]. The
/// part is applied under [`field_manager`]`(node)` with only `spec.workload` and this node's
/// element of `spec.parts`, so other nodes' parts stay; a conflict (another manager changed a
/// field of this node's part) is forced. The status goes to `/status` under
/// [`STATUS_MANAGER`] with force.
pub async fn publish(
    client: &Client,
    node: &str,
    workload_id: &str,
    local: &LocalProfile,
    approvals: &[Approval],
) -> Result<WorkloadProfile, PublishError> {
    let workload = WorkloadRef::from_id(workload_id)
        .ok_or_else(|| PublishError::NotKubernetes(workload_id.into()))?;
    let (namespace, name) =
        object_name(workload_id).ok_or_else(|| PublishError::NotKubernetes(workload_id.into()))?;
    let kube_err = |source| PublishError::Kube {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let api: Api<WorkloadProfile> = Api::namespaced(client.clone(), &namespace);
    let part = ProfilePart::new(
        node,
        workload_id,
        &local.revision,
        &local.profile,
        approvals,
        local.stable_since_ns,
        now_ns(),
    );
    let mut body = WorkloadProfile::new(
        &name,
        WorkloadProfileSpec {
            workload: workload.clone(),
            parts: vec![part],
        },
    );
    body.metadata.namespace = Some(namespace.clone());
    if let Some(live) = api.get_opt(&name).await.map_err(kube_err)?
        && live.spec.workload != workload
    {
        return Err(PublishError::Collision {
            namespace: namespace.clone(),
            name: name.clone(),
            ours: workload_id.into(),
            theirs: live.workload_id(),
        });
    }
    let manager = field_manager(node);
    let applied = match api
        .patch(&name, &PatchParams::apply(&manager), &Patch::Apply(&body))
        .await
    {
        // Another manager touched this node's part (an operator's edit): the part is ours.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let force = PatchParams::apply(&manager).force();
            api.patch(&name, &force, &Patch::Apply(&body)).await
        }
        other => other,
    }
    .map_err(kube_err)?;

    let (parts, bad) = applied.parts();
    let rejected = bad
        .iter()
        .map(|e| RejectedPart {
            node: e.node().into(),
            reason: e.to_string(),
        })
        .collect();
    let status = merge::status(
        workload_id,
        &parts,
        rejected,
        local.mode,
        &local.mode_source,
        local.threshold,
    );
    let status_body = json!({
        "apiVersion": WorkloadProfile::api_version(&()),
        "kind": WorkloadProfile::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    });
    let force = PatchParams::apply(STATUS_MANAGER).force();
    api.patch_status(&name, &force, &Patch::Apply(&status_body))
        .await
        .map_err(kube_err)
}
