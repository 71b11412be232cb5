//! A `NetworkPolicy` from a workload's behaviour profile: ingress on the ports it listened on
//! (from any source: the agent learns listening ports, not who connects), egress to the
//! destinations it connected to, as `ipBlock`s or, for destinations a resolver knows as pods,
//! as namespace and pod selectors. The same profile always gives the same policy.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
        NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use profiles::{
    Family, Protocol,
    model::{NetEntry, Profile, Seen},
};

use super::{
    Cidr, NAMESPACE_NAME_LABEL, Peer, Result, Transport, count,
    names::{check_labels, check_namespace, check_object_name},
    no_peers,
};

/// The label marking policies this module wrote.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "baseliner");

/// Pod labels that change with every rollout or pod: never used to select a peer.
pub const VOLATILE_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// The policy to write: where it lives, its name and the pods it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTarget {
    /// Namespace of the policy (and of the pods it selects).
    pub namespace: String,
    /// Policy name (a DNS-1123 subdomain).
    pub name: String,
    /// `matchLabels` of the pods the policy applies to; empty selects every pod of the namespace.
    pub pod_selector: BTreeMap<String, String>,
}

/// How destinations are turned into peers.
pub struct GenerateOptions<'a> {
    /// The pod at an address, if any: such destinations become namespace and pod selectors.
    pub resolve: &'a dyn Fn(IpAddr) -> Option<Peer>,
    /// The cluster's Service CIDRs: destinations inside them are flagged in the notes.
    pub service_cidrs: Vec<Cidr>,
}

impl Default for GenerateOptions<'_> {
    fn default() -> Self {
        GenerateOptions {
            resolve: &no_peers,
            service_cidrs: Vec::new(),
        }
    }
}

/// A generated policy and what a reviewer should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The policy.
    pub policy: NetworkPolicy,
    /// Human-readable notes: what was skipped, what the policy cannot express, what to check.
    pub notes: Vec<String>,
}

/// A port of a rule: one port of a protocol, or (`port: None`) all its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PortSpec {
    transport: Transport,
    port: Option<u16>,
}

/// A destination of an egress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Block(Cidr),
    Pods {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

/// Notes in the order they were first made, without repeats.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, note: String) {
        if !self.0.contains(&note) {
            self.0.push(note);
        }
    }
}

/// Entries left out because NetworkPolicy does not govern them.
#[derive(Default)]
struct Skipped {
    unix: usize,
    loopback: usize,
}

impl Skipped {
    fn note(&self, notes: &mut Notes) {
        if self.unix > 0 {
            notes.add(format!(
                "skipped {}: NetworkPolicy governs IP traffic only",
                count(self.unix, "unix-socket entry", "unix-socket entries")
            ));
        }
        if self.loopback > 0 {
            notes.add(format!(
                "skipped {}: traffic inside the pod is never filtered",
                count(self.loopback, "loopback entry", "loopback entries")
            ));
        }
    }
}

/// Generates the policy for `target` from `profile`.
///
/// Errors when the target's namespace, name or selector labels would be rejected by the API
/// server. Entries that cannot become rules are skipped and explained in the notes.
pub fn generate(
    profile: &Profile,
    target: &PolicyTarget,
    options: &GenerateOptions<'_>,
) -> Result<Generated> {
    check_namespace(&target.namespace)?;
    check_object_name(&target.name)?;
    check_labels(&target.pod_selector)?;
    let (mut notes, mut skipped) = (Notes::default(), Skipped::default());
    let ingress = ingress_rules(&profile.listens, &mut notes, &mut skipped);
    let egress = egress_rules(&profile.connects, options, &mut notes, &mut skipped);
    skipped.note(&mut notes);
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(&target.pod_selector)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    };
    Ok(Generated {
        policy,
        notes: notes.0,
    })
}

/// The policy as YAML, without null or empty optional fields.
pub fn to_yaml(policy: &NetworkPolicy) -> Result<String> {
    Ok(yaml_serde::to_string(policy)?)
}

fn match_labels(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then(|| labels.clone()),
        match_expressions: None,
    }
}

/// The network and rule ports of an IP entry; `None` (counted or noted) for what no rule can
/// express: unix sockets, loopback, raw sockets, addresses that do not parse.
fn ip_entry(
    e: &NetEntry,
    what: &str,
    notes: &mut Notes,
    skipped: &mut Skipped,
) -> Option<(Cidr, Vec<PortSpec>)> {
    if e.family == Family::Unix {
        skipped.unix += 1;
        return None;
    }
    let Ok(cidr) = e.addr.parse::<Cidr>() else {
        notes.add(format!(
            "{what} {:?} skipped: not an IP address or network",
            e.addr
        ));
        return None;
    };
    if cidr.is_loopback() {
        skipped.loopback += 1;
        return None;
    }
    Some((cidr, port_specs(e, &cidr, what, notes)?))
}

/// The rule ports of an entry: port 0 is any port; a socket of unknown type is allowed as both
/// TCP and UDP; raw sockets cannot be expressed.
fn port_specs(e: &NetEntry, cidr: &Cidr, what: &str, notes: &mut Notes) -> Option<Vec<PortSpec>> {
    let port = (e.port != 0).then_some(e.port);
    let at = endpoint_text(cidr, port);
    let transports = match e.protocol {
        Protocol::Tcp => vec![Transport::Tcp],
        Protocol::Udp => vec![Transport::Udp],
        Protocol::Unknown => {
            notes.add(format!(
                "{what} {at}: protocol unknown (socket opened before the agent started); \
                 allowed for both TCP and UDP"
            ));
            vec![Transport::Tcp, Transport::Udp]
        }
        _ => {
            notes.add(format!(
                "{what} {at} skipped: NetworkPolicy cannot name raw IP traffic (ICMP); \
                 whether it passes depends on the CNI"
            ));
            return None;
        }
    };
    Some(
        transports
            .into_iter()
            .map(|transport| PortSpec { transport, port })
            .collect(),
    )
}

/// An address and port as people write them (`10.0.0.1:53`, `[2001:db8::1]:443`); networks
/// and any-port entries spelled out.
fn endpoint_text(cidr: &Cidr, port: Option<u16>) -> String {
    match (cidr.is_host(), cidr.addr(), port) {
        (true, IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (true, IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (true, a, None) => format!("{a} (any port)"),
        (false, _, Some(p)) => format!("{cidr} port {p}"),
        (false, _, None) => format!("{cidr} (any port)"),
    }
}

/// Drops single ports that an any-port entry of the same protocol covers.
fn simplify(ports: BTreeSet<PortSpec>) -> BTreeSet<PortSpec> {
    let any: BTreeSet<Transport> = ports
        .iter()
        .filter(|p| p.port.is_none())
        .map(|p| p.transport)
        .collect();
    ports
        .into_iter()
        .filter(|p| p.port.is_none() || !any.contains(&p.transport))
        .collect()
}

fn policy_port(p: &PortSpec) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(p.transport.as_str().into()),
        port: p.port.map(|n| IntOrString::Int(i32::from(n))),
        end_port: None,
    }
}

/// One ingress rule per listening port and protocol, from any source.
fn ingress_rules(
    listens: &BTreeMap<NetEntry, Seen>,
    notes: &mut Notes,
    skipped: &mut Skipped,
) -> Vec<NetworkPolicyIngressRule> {
    let ports: BTreeSet<PortSpec> = listens
        .keys()
        .filter_map(|e| ip_entry(e, "listen on", notes, skipped))
        .flat_map(|(_, ports)| ports)
        .collect();
    if ports.is_empty() {
        notes.add("no listening port was learned: the policy denies all ingress".into());
    } else {
        notes.add(
            "ingress allows each learned port from any source: the agent learns where the \
             workload listens, not who connects to it; narrow `from` by hand if you know"
                .into(),
        );
    }
    simplify(ports)
        .iter()
        .map(|p| NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![policy_port(p)]),
        })
        .collect()
}

/// Egress rules: destinations grouped by their set of ports, one rule per set.
fn egress_rules(
    connects: &BTreeMap<NetEntry, Seen>,
    options: &GenerateOptions<'_>,
    notes: &mut Notes,
    skipped: &mut Skipped,
) -> Vec<NetworkPolicyEgressRule> {
    let mut dests: BTreeMap<Dest, BTreeSet<PortSpec>> = BTreeMap::new();
    for e in connects.keys() {
        let Some((cidr, ports)) = ip_entry(e, "connect to", notes, skipped) else {
            continue;
        };
        let dest = destination(cidr, options, notes);
        if matches!(dest, Dest::Block(_)) {
            note_service(&cidr, &ports, &options.service_cidrs, notes);
        }
        dests.entry(dest).or_default().extend(ports);
    }
    if dests.is_empty() {
        notes.add(
            "no outgoing connection was learned: the policy denies all egress, DNS included".into(),
        );
    }
    let mut groups: BTreeMap<BTreeSet<PortSpec>, Vec<Dest>> = BTreeMap::new();
    for (dest, ports) in dests {
        groups.entry(simplify(ports)).or_default().push(dest);
    }
    groups
        .iter()
        .map(|(ports, dests)| NetworkPolicyEgressRule {
            to: Some(peers(dests)),
            ports: Some(ports.iter().map(policy_port).collect()),
        })
        .collect()
}

/// The peer for a learned destination: the pod a resolver knows at a single address, else the
/// network itself.
fn destination(cidr: Cidr, options: &GenerateOptions<'_>, notes: &mut Notes) -> Dest {
    let peer = cidr
        .is_host()
        .then(|| (options.resolve)(cidr.addr()))
        .flatten();
    let Some(peer) = peer else {
        notes.add(
            "ipBlock destinations are fixed addresses: pod IPs change when pods restart, and \
             most CNIs match traffic to a Service after DNAT (the backing pod's address, not \
             the ClusterIP)"
                .into(),
        );
        return Dest::Block(cidr);
    };
    let labels: BTreeMap<String, String> = peer
        .labels
        .into_iter()
        .filter(|(k, _)| !VOLATILE_LABELS.contains(&k.as_str()))
        .collect();
    if let Err(e) = check_namespace(&peer.namespace).and_then(|_| check_labels(&labels)) {
        notes.add(format!("pod at {cidr} kept as an ipBlock: {e}"));
        return Dest::Block(cidr);
    }
    if labels.is_empty() {
        notes.add(format!(
            "pod at {cidr} has no stable labels: every pod of namespace {} is allowed",
            peer.namespace
        ));
    }
    Dest::Pods {
        namespace: peer.namespace,
        labels,
    }
}

/// Notes on an ipBlock destination that is likely a Service ClusterIP.
fn note_service(cidr: &Cidr, ports: &[PortSpec], services: &[Cidr], notes: &mut Notes) {
    let port = ports.first().and_then(|p| p.port);
    let at = endpoint_text(cidr, port);
    if let Some(svc) = services.iter().find(|s| s.covers(cidr)) {
        notes.add(format!(
            "destination {at} lies in the Service CIDR {svc}: policies apply after DNAT on \
             most CNIs, so this ipBlock will not match; allow the Service's backing pods"
        ));
    } else if port == Some(53) {
        notes.add(format!(
            "destination {at} is DNS: if it is the cluster DNS Service's ClusterIP, allow the \
             DNS pods (e.g. namespace kube-system, k8s-app=kube-dns) instead of the address"
        ));
    }
}

/// The peers of a rule: networks (leaving out those another network of the rule covers) and
/// pod selectors.
fn peers(dests: &[Dest]) -> Vec<NetworkPolicyPeer> {
    let blocks: Vec<Cidr> = dests
        .iter()
        .filter_map(|d| match d {
            Dest::Block(c) => Some(*c),
            Dest::Pods { .. } => None,
        })
        .collect();
    let covered = |c: &Cidr| blocks.iter().any(|b| b != c && b.covers(c));
    dests
        .iter()
        .filter(|d| !matches!(d, Dest::Block(c) if covered(c)))
        .map(peer)
        .collect()
}

fn peer(dest: &Dest) -> NetworkPolicyPeer {
    match dest {
        Dest::Block(cidr) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_string(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        },
        Dest::Pods { namespace, labels } => NetworkPolicyPeer {
            ip_block: None,
            namespace_selector: Some(match_labels(&BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                namespace.clone(),
            )]))),
            pod_selector: Some(match_labels(labels)),
        },
    }
}

#[cfg(test)]
mod tests;
