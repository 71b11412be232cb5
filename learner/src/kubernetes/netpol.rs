//! Network policies from profiles, and the policies in force checked against observed flows.
//!
//! * [`generate()`] turns a workload's behaviour profile into a `NetworkPolicy`: ingress on the
//!   ports it listened on, egress to the destinations it connected to;
//! * [`validate()`] applies NetworkPolicy semantics to observed flows and reports the flows the
//!   policies should have denied (a CNI that does not enforce them) and the allow rules no flow
//!   used.

pub mod cidr;
pub mod generate;
pub mod names;
pub mod selector;
pub mod validate;

use std::{collections::BTreeMap, fmt};

pub use cidr::Cidr;
pub use generate::{GenerateOptions, Generated, PolicyTarget, generate, to_yaml};
use profiles::Protocol;
pub use validate::{Direction, Finding, Flow, Report, UnusedRule, egress_flows, validate};

/// Errors of policy generation and rendering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name (policy name, namespace) that Kubernetes would reject.
    #[error("invalid {what} {name:?}: {why}")]
    InvalidName {
        /// What the name names (`policy name`, `namespace`).
        what: &'static str,
        /// The name as given.
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A label key or value that Kubernetes would reject.
    #[error("invalid label {key:?}={value:?}: {why}")]
    InvalidLabel {
        /// The label key.
        key: String,
        /// The label value.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The policy could not be rendered as YAML.
    #[error("cannot render the policy as YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
}

/// Result of this module's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pod known at an IP address: its namespace, its labels and its namespace's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The namespace's labels (`kubernetes.io/metadata.name` is implied when absent).
    pub namespace_labels: BTreeMap<String, String>,
}

/// A resolver that knows no pod: every address is outside the cluster's pods.
pub fn no_peers(_: std::net::IpAddr) -> Option<Peer> {
    None
}

/// A transport protocol NetworkPolicy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// TCP (the NetworkPolicy default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Transport {
    /// The protocol as NetworkPolicy spells it (`TCP`, `UDP`, `SCTP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
            Transport::Sctp => "SCTP",
        }
    }

    /// Parses a NetworkPolicy protocol name (case-sensitive, as the API server is).
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "TCP" => Some(Transport::Tcp),
            "UDP" => Some(Transport::Udp),
            "SCTP" => Some(Transport::Sctp),
            _ => None,
        }
    }

    /// The transport of a profile protocol; `None` for raw, unix and unknown sockets.
    pub fn from_protocol(p: Protocol) -> Option<Transport> {
        match p {
            Protocol::Tcp => Some(Transport::Tcp),
            Protocol::Udp => Some(Transport::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `n` things, in the singular when `n` is 1.
fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// The label Kubernetes sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[cfg(test)]
mod tests {
    use profiles::{
        Family,
        model::{NetEntry, Profile, Seen},
    };

    use super::*;

    /// A generated policy allows every flow its profile recorded and uses every egress rule.
    #[test]
    fn generated_policy_allows_the_profiled_flows() {
        let seen = Seen {
            count: 1,
            first_ns: 1,
            last_ns: 1,
        };
        let connect = |family, protocol, addr: &str, port| {
            let e = NetEntry {
                family,
                protocol,
                addr: addr.into(),
                port,
            };
            (e, seen)
        };
        let profile = Profile {
            connects: [
                connect(Family::Inet, Protocol::Tcp, "203.0.113.9", 443),
                connect(Family::Inet6, Protocol::Tcp, "2001:db8::1", 443),
                connect(Family::Inet, Protocol::Udp, "10.96.0.10", 53),
                connect(Family::Inet, Protocol::Tcp, "10.244.1.5", 5432),
            ]
            .into(),
            ..Profile::default()
        };
        let pod_ip: std::net::IpAddr = "10.244.1.5".parse().unwrap();
        let resolve = move |ip| {
            (ip == pod_ip).then(|| Peer {
                namespace: "db".into(),
                labels: BTreeMap::from([("app".into(), "postgres".into())]),
                namespace_labels: BTreeMap::new(),
            })
        };
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let target = PolicyTarget {
            namespace: "shop".into(),
            name: "web".into(),
            pod_selector: labels.clone(),
        };
        let options = GenerateOptions {
            resolve: &resolve,
            service_cidrs: Vec::new(),
        };
        let generated = generate(&profile, &target, &options).unwrap();
        let mut flows = egress_flows(&profile, "shop", "web-1", &labels);
        assert_eq!(flows.len(), 4);
        let policies = [generated.policy];
        let report = validate(&policies, &flows, &resolve);
        assert!(report.denied.is_empty(), "{report}");
        assert!(report.unused.is_empty(), "{report}");
        assert!(report.warnings.is_empty(), "{report}");
        flows[0].port = 444;
        let report = validate(&policies, &flows, &resolve);
        assert_eq!(report.denied.len(), 1, "{report}");
    }
}
