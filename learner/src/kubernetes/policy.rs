//! Network policies for the API and CLI: the policy of a workload (its namespace and name from
//! the workload id, its selector from its pods), and the check of a namespace's policies against
//! the connections its workloads made, with peers resolved through the node's pods.

use std::{collections::BTreeMap, net::IpAddr};

use api::{PolicyAnswer, PolicyCheck};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use profiles::model::Profile;

use super::{
    identity::{parse_workload_id, workload_id},
    netpol::{self, GenerateOptions, Peer, PolicyTarget, egress_flows, generate::VOLATILE_LABELS},
    pods::PodCache,
};

/// Longest Kubernetes object name.
const MAX_NAME: usize = 63;

/// Why a policy cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a Kubernetes workload id.
    #[error(
        "{0} is not a Kubernetes workload (k8s:<namespace>/<kind>/<name>/<container>): a \
         NetworkPolicy needs a namespace"
    )]
    NotKubernetes(String),
    /// No selector given and no pod known.
    #[error(
        "no pod of {0} runs on this node, so its labels are unknown: pass a selector \
         (app=web,...)"
    )]
    NoLabels(String),
    /// The policy would be invalid.
    #[error(transparent)]
    Invalid(#[from] netpol::Error),
}

/// The labels of the newest pod of `workload` in `cache`, less those that change per rollout.
pub fn selector_of(cache: &PodCache, workload: &str) -> Option<BTreeMap<String, String>> {
    let newest = cache.newest_pods();
    let pod = newest.get(workload)?;
    Some(
        pod.sandbox
            .labels
            .iter()
            .filter(|(k, _)| !VOLATILE_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// The policy's name: `baseliner-<owner name>-<container>`, lower case, at most 63 characters.
fn policy_name(owner: &str, container: &str) -> String {
    let raw = format!("baseliner-{owner}-{container}").to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(MAX_NAME);
    name.trim_end_matches(['-', '.']).to_string()
}

/// A resolver of peer addresses to the pods of `cache` (this node's pods).
pub fn peers(cache: &PodCache) -> impl Fn(IpAddr) -> Option<Peer> + '_ {
    move |ip| {
        let pod = cache.pod_by_ip(ip)?;
        Some(Peer {
            namespace: pod.namespace.clone(),
            labels: pod.sandbox.labels.clone(),
            namespace_labels: cache
                .namespace(&pod.namespace)
                .map(|n| n.labels.clone())
                .unwrap_or_default(),
        })
    }
}

/// The NetworkPolicy of `workload` from `profile`, selecting `selector`, else the labels of its
/// pods in `cache`.
pub fn policy_for(
    workload: &str,
    profile: &Profile,
    selector: Option<BTreeMap<String, String>>,
    cache: &PodCache,
) -> Result<PolicyAnswer, PolicyError> {
    let [namespace, _, owner, container] =
        parse_workload_id(workload).ok_or_else(|| PolicyError::NotKubernetes(workload.into()))?;
    let (selector, source) = match selector {
        Some(s) => (s, "the request".to_string()),
        None => (
            selector_of(cache, workload).ok_or_else(|| PolicyError::NoLabels(workload.into()))?,
            "the labels of its newest pod on this node".to_string(),
        ),
    };
    let target = PolicyTarget {
        namespace: namespace.to_string(),
        name: policy_name(owner, container),
        pod_selector: selector.clone(),
    };
    let resolve = peers(cache);
    let options = GenerateOptions {
        resolve: &resolve,
        ..GenerateOptions::default()
    };
    let generated = netpol::generate(profile, &target, &options)?;
    let yaml = netpol::to_yaml(&generated.policy)?;
    Ok(PolicyAnswer {
        workload: workload.to_string(),
        namespace: target.namespace,
        name: target.name,
        selector,
        selector_source: source,
        notes: generated.notes,
        yaml,
        policy: serde_json::to_value(&generated.policy).unwrap_or_default(),
    })
}

/// Checks `policies` of `namespace` against the egress of every workload of that namespace
/// with a pod on this node (`profiles`: workload id → its latest profile).
pub fn check(
    namespace: &str,
    policies: &[NetworkPolicy],
    profiles: &BTreeMap<String, Profile>,
    cache: &PodCache,
) -> PolicyCheck {
    let mut flows = Vec::new();
    for pod in cache.pods().filter(|p| p.namespace == namespace) {
        for c in &pod.containers {
            if let Some(profile) = profiles.get(&workload_id(&c.meta)) {
                flows.extend(egress_flows(profile, namespace, &pod.name, &c.meta.labels));
            }
        }
    }
    let resolve = peers(cache);
    let report = netpol::validate(policies, &flows, &resolve);
    PolicyCheck {
        namespace: namespace.to_string(),
        policies: policies.len(),
        judged: report.judged,
        denied: report.denied.iter().map(ToString::to_string).collect(),
        unused: report.unused.iter().map(ToString::to_string).collect(),
        warnings: report.warnings.clone(),
        report: report.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kubernetes::identity::{PodInfo, tests::pod_json};

    #[test]
    fn names_and_selectors_come_from_the_workload_and_its_pods() {
        assert_eq!(policy_name("Web_API", "app"), "baseliner-web-api-app");
        assert_eq!(policy_name(&"x".repeat(80), "c").len(), MAX_NAME);
        let mut cache = PodCache::new();
        let p = pod_json(
            "shop",
            "web-abc-1",
            "u1",
            Some(("ReplicaSet", "web-abc")),
            json!({ "app": "web", "pod-template-hash": "abc" }),
        );
        cache.apply_pod(PodInfo::from_pod(&p).unwrap());
        let sel = selector_of(&cache, "k8s:shop/Deployment/web/web").unwrap();
        assert_eq!(sel, BTreeMap::from([("app".into(), "web".into())]));
        assert_eq!(selector_of(&cache, "k8s:shop/Deployment/other/web"), None);
        let answer = policy_for(
            "k8s:shop/Deployment/web/web",
            &Profile::default(),
            None,
            &cache,
        )
        .unwrap();
        assert_eq!(answer.namespace, "shop");
        assert_eq!(answer.name, "baseliner-web-web");
        assert!(answer.yaml.contains("app: web"), "{}", answer.yaml);
        assert!(matches!(
            policy_for("/system.slice/x.service", &Profile::default(), None, &cache),
            Err(PolicyError::NotKubernetes(_))
        ));
        assert!(matches!(
            policy_for(
                "k8s:shop/Deployment/gone/app",
                &Profile::default(),
                None,
                &cache
            ),
            Err(PolicyError::NoLabels(_))
        ));
        let given = BTreeMap::from([("tier".to_string(), "fe".to_string())]);
        let answer = policy_for(
            "k8s:shop/Deployment/gone/app",
            &Profile::default(),
            Some(given.clone()),
            &cache,
        )
        .unwrap();
        assert_eq!(answer.selector, given);
        assert_eq!(answer.selector_source, "the request");
    }
}
