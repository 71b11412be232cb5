//! The NetworkPolicies of a namespace checked against observed flows, with the semantics of
//! <https://kubernetes.io/docs/concepts/services-networking/network-policies/>:
//!
//! * a policy selects the pods of its namespace that its `podSelector` matches (empty: all);
//! * its `policyTypes` default to `Ingress`, plus `Egress` when it has egress rules;
//! * a pod is isolated for a direction when some policy selecting it has that type; a flow of
//!   an isolated pod is allowed when some rule of some selecting policy matches both its peer
//!   and its port (policies are additive); a flow of a pod that is not isolated is allowed.
//!
//! Flows allowed in practice that these rules deny mean the CNI does not enforce the policies;
//! rules no flow matched may be stale. Loopback flows are never judged. Named ports cannot be
//! resolved without the pods' specs: a flow only a named port might allow is reported with
//! that said. An `ipBlock` is matched against every address, pod addresses included (what
//! most CNIs do; the API leaves it to the implementation).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
};

use k8s_openapi::{
    api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use profiles::model::Profile;

use super::{
    Cidr, NAMESPACE_NAME_LABEL, Peer, Transport, cidr::canonical, count, selector::Selector,
};

/// The direction of a flow, seen from the observed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Into the pod: the peer is the source, the port the pod's.
    Ingress,
    /// Out of the pod: the peer is the destination, the port the peer's.
    Egress,
}

impl Direction {
    /// The direction as `policyTypes` spells it.
    pub fn policy_type(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// An observed connection of one pod (fields in the order reports sort by).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    /// The observed pod's namespace.
    pub namespace: String,
    /// The observed pod (or workload) name, for reports.
    pub pod: String,
    /// Into or out of the pod.
    pub direction: Direction,
    /// The other end: the source of an ingress flow, the destination of an egress flow.
    pub peer_ip: IpAddr,
    /// The destination port (the pod's for ingress, the peer's for egress).
    pub port: u16,
    /// The transport protocol.
    pub protocol: Transport,
    /// The observed pod's labels.
    pub pod_labels: BTreeMap<String, String>,
    /// How often the flow was seen.
    pub count: u64,
    /// First seen (Unix-epoch nanoseconds).
    pub first_ns: u64,
    /// Last seen (Unix-epoch nanoseconds).
    pub last_ns: u64,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ns, pod, proto) = (&self.namespace, &self.pod, self.protocol);
        match self.direction {
            Direction::Egress => write!(f, "egress {ns}/{pod} -> {}", self.peer_ip)?,
            Direction::Ingress => write!(f, "ingress {} -> {ns}/{pod}", self.peer_ip)?,
        }
        write!(f, " {proto} {}, seen {} times", self.port, self.count)
    }
}

/// An observed flow the policies should have denied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The flow.
    pub flow: Flow,
    /// Why the policies deny it.
    pub reason: String,
    /// True when a rule with a named port, which cannot be resolved here, might allow it.
    pub maybe_allowed: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flow, self.reason)
    }
}

/// An allow rule no observed flow matched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnusedRule {
    /// The policy, as `namespace/name`.
    pub policy: String,
    /// Whether it is an ingress or an egress rule.
    pub direction: Direction,
    /// Its index in the policy's `ingress` or `egress` list.
    pub index: usize,
    /// What the rule allows.
    pub description: String,
}

impl fmt::Display for UnusedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, d, i) = (&self.policy, self.direction, self.index);
        write!(f, "{p} {d} rule {i}: {}", self.description)
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Flows judged (all but loopback ones).
    pub judged: usize,
    /// Observed flows the policies should have denied, sorted.
    pub denied: Vec<Finding>,
    /// Allow rules no judged flow matched, sorted.
    pub unused: Vec<UnusedRule>,
    /// Parts of policies that could not be evaluated (a bad CIDR, an unknown operator), sorted.
    pub warnings: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} judged", count(self.judged, "flow", "flows"))?;
        match self.denied.len() {
            0 => writeln!(f, "no flow the policies deny was observed")?,
            n => writeln!(
                f,
                "{} the policies deny (is the CNI enforcing NetworkPolicy?):",
                count(n, "observed flow", "observed flows")
            )?,
        }
        for d in &self.denied {
            writeln!(f, "  {d}")?;
        }
        match self.unused.len() {
            0 => writeln!(f, "every allow rule matched an observed flow")?,
            n => writeln!(
                f,
                "{} no observed flow matched:",
                count(n, "allow rule", "allow rules")
            )?,
        }
        for u in &self.unused {
            writeln!(f, "  {u}")?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "warnings:")?;
        }
        for w in &self.warnings {
            writeln!(f, "  {w}")?;
        }
        Ok(())
    }
}

/// Judges `flows` against `policies` and reports the flows they deny and the rules no flow
/// used. `resolve` names the pod at a peer address (its namespace, labels and namespace
/// labels), for the rules that select pods and namespaces; peers it does not know match only
/// `ipBlock`s. A policy without a namespace is taken to be in each flow's namespace.
pub fn validate(
    policies: &[NetworkPolicy],
    flows: &[Flow],
    resolve: &dyn Fn(IpAddr) -> Option<Peer>,
) -> Report {
    let mut warnings = BTreeSet::new();
    let compiled: Vec<Policy> = policies
        .iter()
        .filter_map(|p| Policy::compile(p, &mut warnings))
        .collect();
    let mut usage = Usage::default();
    let mut report = Report::default();
    for flow in flows
        .iter()
        .filter(|f| !Cidr::host(f.peer_ip).is_loopback())
    {
        report.judged += 1;
        let peer = resolve(canonical(flow.peer_ip));
        if let Some(finding) = judge(&compiled, flow, peer.as_ref(), &mut usage) {
            report.denied.push(finding);
        }
    }
    report.denied.sort();
    report.unused = usage.unused(&compiled);
    report.warnings = warnings.into_iter().collect();
    report
}

/// The egress flows a profile records for one pod: its connects to single addresses on known
/// ports over TCP or UDP, sorted. Widened entries (networks, any port) name no single flow and
/// are left out, as are unix sockets and sockets of unknown type.
pub fn egress_flows(
    profile: &Profile,
    namespace: &str,
    pod: &str,
    pod_labels: &BTreeMap<String, String>,
) -> Vec<Flow> {
    let mut flows: Vec<Flow> = profile
        .connects
        .iter()
        .filter(|(e, _)| e.port != 0)
        .filter_map(|(e, seen)| {
            let protocol = Transport::from_protocol(e.protocol)?;
            let peer = e.addr.parse::<Cidr>().ok().filter(Cidr::is_host)?;
            Some(Flow {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                direction: Direction::Egress,
                peer_ip: peer.addr(),
                port: e.port,
                protocol,
                pod_labels: pod_labels.clone(),
                count: seen.count,
                first_ns: seen.first_ns,
                last_ns: seen.last_ns,
            })
        })
        .collect();
    flows.sort();
    flows
}

// --- Compiled policies ---------------------------------------------------------------------

/// A `NetworkPolicy` ready to evaluate.
struct Policy {
    id: String,
    namespace: Option<String>,
    selector: Selector,
    /// Ingress rules, when the policy has the Ingress type.
    ingress: Option<Vec<Rule>>,
    /// Egress rules, when the policy has the Egress type.
    egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule; `None` lists allow everything.
struct Rule {
    peers: Option<Vec<PeerSel>>,
    ports: Option<Vec<PortSel>>,
}

/// One `from` / `to` entry.
enum PeerSel {
    Block {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
    Pods {
        pods: Option<Selector>,
        namespaces: Option<Selector>,
    },
    /// An entry that could not be compiled; matches nothing.
    Invalid,
}

/// One `ports` entry; `transport: None` for a protocol NetworkPolicy does not know.
struct PortSel {
    transport: Option<Transport>,
    port: PortVal,
}

enum PortVal {
    Any,
    Range(u16, u16),
    Named(String),
}

/// Whether a rule matches a flow.
enum Match {
    No,
    /// The peer matches; only these named ports might match the port.
    Named(Vec<String>),
    Yes,
}

/// The `policyTypes` in effect: as given, else Ingress plus Egress when there are egress rules.
fn policy_types(
    spec: &NetworkPolicySpec,
    id: &str,
    warnings: &mut BTreeSet<String>,
) -> (bool, bool) {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => {
            for t in types
                .iter()
                .filter(|t| !matches!(t.as_str(), "Ingress" | "Egress"))
            {
                warnings.insert(format!("{id}: unknown policy type {t:?} ignored"));
            }
            let has = |d: Direction| types.iter().any(|t| t == d.policy_type());
            (has(Direction::Ingress), has(Direction::Egress))
        }
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

impl Policy {
    fn compile(p: &NetworkPolicy, warnings: &mut BTreeSet<String>) -> Option<Policy> {
        let name = p.metadata.name.as_deref().unwrap_or("<unnamed>");
        let namespace = p.metadata.namespace.clone();
        let id = match &namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        let default = NetworkPolicySpec::default();
        let spec = p.spec.as_ref().unwrap_or(&default);
        let selector = compile_selector(spec.pod_selector.as_ref(), &id, warnings);
        let Some(selector) = selector.unwrap_or_else(|| Some(Selector::default())) else {
            warnings.insert(format!("{id}: ignored, its podSelector is invalid"));
            return None;
        };
        let (ingress, egress) = policy_types(spec, &id, warnings);
        let mut rules = |peers: Option<&Vec<NetworkPolicyPeer>>, ports| {
            Rule::compile(peers, ports, &id, warnings)
        };
        let ingress = ingress.then(|| {
            let list = spec.ingress.iter().flatten();
            list.map(|r| rules(r.from.as_ref(), r.ports.as_ref()))
                .collect()
        });
        let egress = egress.then(|| {
            let list = spec.egress.iter().flatten();
            list.map(|r| rules(r.to.as_ref(), r.ports.as_ref()))
                .collect()
        });
        Some(Policy {
            id,
            namespace,
            selector,
            ingress,
            egress,
        })
    }

    fn rules(&self, d: Direction) -> Option<&[Rule]> {
        match d {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Whether the policy selects the flow's pod and has the flow's direction.
    fn isolates(&self, flow: &Flow) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == flow.namespace)
            && self.selector.matches(&flow.pod_labels)
            && self.rules(flow.direction).is_some()
    }
}

/// A selector compiled, or `Some(None)` (with a warning) when it is invalid; `None` when absent.
fn compile_selector(
    s: Option<&LabelSelector>,
    id: &str,
    warnings: &mut BTreeSet<String>,
) -> Option<Option<Selector>> {
    s.map(|s| {
        Selector::compile(s)
            .map_err(|e| warnings.insert(format!("{id}: {e}")))
            .ok()
    })
}

impl Rule {
    fn compile(
        peers: Option<&Vec<NetworkPolicyPeer>>,
        ports: Option<&Vec<NetworkPolicyPort>>,
        id: &str,
        warnings: &mut BTreeSet<String>,
    ) -> Rule {
        let peers = peers.filter(|p| !p.is_empty());
        let ports = ports.filter(|p| !p.is_empty());
        Rule {
            peers: peers.map(|ps| {
                ps.iter()
                    .map(|p| PeerSel::compile(p, id, warnings))
                    .collect()
            }),
            ports: ports.map(|ps| {
                ps.iter()
                    .map(|p| PortSel::compile(p, id, warnings))
                    .collect()
            }),
        }
    }

    fn matches(&self, ctx: &Context<'_>) -> Match {
        let peer = self
            .peers
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(ctx)));
        let Some(ports) = self.ports.as_ref().filter(|_| peer) else {
            return if peer { Match::Yes } else { Match::No };
        };
        let flow = ctx.flow;
        if ports.iter().any(|p| p.matches(flow.protocol, flow.port)) {
            return Match::Yes;
        }
        let named: Vec<String> = ports
            .iter()
            .filter(|p| p.transport == Some(flow.protocol))
            .filter_map(|p| match &p.port {
                PortVal::Named(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        if named.is_empty() {
            Match::No
        } else {
            Match::Named(named)
        }
    }

    fn describe(&self, d: Direction) -> String {
        let peers = match &self.peers {
            None => "any peer".to_string(),
            Some(ps) => ps
                .iter()
                .map(PeerSel::describe)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let ports = match &self.ports {
            None => "any port".to_string(),
            Some(ps) => ps
                .iter()
                .map(PortSel::describe)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let dir = match d {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        format!("{dir} {peers} on {ports}")
    }
}

/// A CIDR of an ipBlock, warning when it does not parse.
fn block_cidr(s: &str, id: &str, warnings: &mut BTreeSet<String>) -> Option<Cidr> {
    s.parse()
        .map_err(|e| warnings.insert(format!("{id}: ipBlock: {e}")))
        .ok()
}

impl PeerSel {
    fn compile(p: &NetworkPolicyPeer, id: &str, warnings: &mut BTreeSet<String>) -> PeerSel {
        if let Some(block) = &p.ip_block {
            let Some(cidr) = block_cidr(&block.cidr, id, warnings) else {
                return PeerSel::Invalid;
            };
            let except = block.except.iter().flatten();
            let except = except.filter_map(|e| block_cidr(e, id, warnings)).collect();
            return PeerSel::Block { cidr, except };
        }
        let pods = compile_selector(p.pod_selector.as_ref(), id, warnings);
        let namespaces = compile_selector(p.namespace_selector.as_ref(), id, warnings);
        match (pods, namespaces) {
            (None, None) => {
                warnings.insert(format!("{id}: a peer with no selector and no ipBlock"));
                PeerSel::Invalid
            }
            (Some(None), _) | (_, Some(None)) => PeerSel::Invalid,
            (pods, namespaces) => PeerSel::Pods {
                pods: pods.flatten(),
                namespaces: namespaces.flatten(),
            },
        }
    }

    fn matches(&self, ctx: &Context<'_>) -> bool {
        match self {
            PeerSel::Block { cidr, except } => {
                let ip = ctx.flow.peer_ip;
                cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
            }
            PeerSel::Pods { pods, namespaces } => ctx.peer.is_some_and(|peer| {
                let ns = match namespaces {
                    None => peer.namespace == ctx.flow.namespace,
                    Some(sel) => sel.matches(&ctx.namespace_labels),
                };
                ns && pods.as_ref().is_none_or(|sel| sel.matches(&peer.labels))
            }),
            PeerSel::Invalid => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            PeerSel::Block { cidr, except } if except.is_empty() => cidr.to_string(),
            PeerSel::Block { cidr, except } => {
                let except: Vec<String> = except.iter().map(Cidr::to_string).collect();
                format!("{cidr} except {}", except.join(", "))
            }
            PeerSel::Pods { pods, namespaces } => {
                let pods = match pods {
                    Some(s) if !s.is_empty() => format!("pods {}", s.describe()),
                    _ => "all pods".into(),
                };
                let ns = match namespaces {
                    None => "of the policy's namespace".into(),
                    Some(s) if s.is_empty() => "of all namespaces".into(),
                    Some(s) => format!("of namespaces {}", s.describe()),
                };
                format!("{pods} {ns}")
            }
            PeerSel::Invalid => "an invalid peer (matches nothing)".into(),
        }
    }
}

impl PortSel {
    fn compile(p: &NetworkPolicyPort, id: &str, warnings: &mut BTreeSet<String>) -> PortSel {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let transport = Transport::parse(proto);
        if transport.is_none() {
            warnings.insert(format!(
                "{id}: unknown protocol {proto:?} (matches nothing)"
            ));
        }
        let port = match &p.port {
            None => PortVal::Any,
            Some(IntOrString::String(name)) => PortVal::Named(name.clone()),
            Some(IntOrString::Int(n)) => port_range(*n, p.end_port).unwrap_or_else(|| {
                let end = p.end_port.map(|e| format!(" to {e}")).unwrap_or_default();
                warnings.insert(format!("{id}: invalid port {n}{end} (matches nothing)"));
                PortVal::Range(1, 0)
            }),
        };
        PortSel { transport, port }
    }

    fn matches(&self, transport: Transport, port: u16) -> bool {
        self.transport == Some(transport)
            && match self.port {
                PortVal::Any => true,
                PortVal::Range(lo, hi) => (lo..=hi).contains(&port),
                PortVal::Named(_) => false,
            }
    }

    fn describe(&self) -> String {
        let proto = self.transport.map_or("?", Transport::as_str);
        match &self.port {
            PortVal::Any => format!("{proto} (any port)"),
            PortVal::Range(lo, hi) if lo == hi => format!("{proto} {lo}"),
            PortVal::Range(lo, hi) => format!("{proto} {lo}-{hi}"),
            PortVal::Named(n) => format!("{proto} port {n:?}"),
        }
    }
}

/// `port` to `end_port` (inclusive); `None` when out of range or reversed.
fn port_range(port: i32, end_port: Option<i32>) -> Option<PortVal> {
    let lo = u16::try_from(port).ok().filter(|&p| p > 0)?;
    let hi = match end_port {
        Some(e) => u16::try_from(e).ok().filter(|&e| e >= lo)?,
        None => lo,
    };
    Some(PortVal::Range(lo, hi))
}

// --- Judging -------------------------------------------------------------------------------

/// A flow with what is known about its peer.
struct Context<'a> {
    flow: &'a Flow,
    peer: Option<&'a Peer>,
    /// The peer's namespace labels, with `kubernetes.io/metadata.name`.
    namespace_labels: BTreeMap<String, String>,
}

/// Which rules matched a flow, and which policies isolated one, by policy index.
#[derive(Default)]
struct Usage {
    rules: BTreeSet<(usize, Direction, usize)>,
    isolating: BTreeSet<(usize, Direction)>,
}

impl Usage {
    /// The rules of in-effect directions that no flow matched.
    fn unused(&self, policies: &[Policy]) -> Vec<UnusedRule> {
        let mut out = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            for d in [Direction::Ingress, Direction::Egress] {
                let rules = p.rules(d).unwrap_or_default();
                let idle = !self.isolating.contains(&(i, d));
                let unused = rules
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !self.rules.contains(&(i, d, *j)));
                out.extend(unused.map(|(j, rule)| {
                    let mut description = rule.describe(d);
                    if idle {
                        description
                            .push_str(&format!(" (the policy selects no pod seen in {d} flows)"));
                    }
                    UnusedRule {
                        policy: p.id.clone(),
                        direction: d,
                        index: j,
                        description,
                    }
                }));
            }
        }
        out.sort();
        out
    }
}

/// The finding for a flow the policies deny; `None` when it is allowed.
fn judge(
    policies: &[Policy],
    flow: &Flow,
    peer: Option<&Peer>,
    usage: &mut Usage,
) -> Option<Finding> {
    let mut namespace_labels = peer.map(|p| p.namespace_labels.clone()).unwrap_or_default();
    if let Some(p) = peer {
        namespace_labels
            .entry(NAMESPACE_NAME_LABEL.to_string())
            .or_insert_with(|| p.namespace.clone());
    }
    let ctx = Context {
        flow,
        peer,
        namespace_labels,
    };
    let d = flow.direction;
    let (mut isolating, mut allowed, mut named) = (Vec::new(), false, Vec::new());
    for (i, p) in policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.isolates(flow))
    {
        usage.isolating.insert((i, d));
        isolating.push(p.id.as_str());
        for (j, rule) in p.rules(d).unwrap_or_default().iter().enumerate() {
            match rule.matches(&ctx) {
                Match::No => continue,
                Match::Yes => allowed = true,
                Match::Named(ports) => {
                    named.push(format!("{} {d} rule {j} ({})", p.id, ports.join(", ")))
                }
            }
            usage.rules.insert((i, d, j));
        }
    }
    if allowed || isolating.is_empty() {
        return None;
    }
    let mut reason = format!(
        "isolated for {d} by {}; no rule allows it",
        isolating.join(", ")
    );
    if !named.is_empty() {
        reason.push_str(&format!(
            "; named ports cannot be resolved here, and these rules might: {}",
            named.join("; ")
        ));
    }
    Some(Finding {
        flow: flow.clone(),
        reason,
        maybe_allowed: !named.is_empty(),
    })
}

#[cfg(test)]
mod tests;
