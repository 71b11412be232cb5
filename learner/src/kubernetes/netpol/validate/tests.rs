use super::*;
use crate::kubernetes::netpol::no_peers;

/// A policy from YAML (namespace `shop` unless given).
fn policy(yaml: &str) -> NetworkPolicy {
    let mut p: NetworkPolicy = yaml_serde::from_str(yaml).expect("a policy");
    p.metadata.namespace.get_or_insert_with(|| "shop".into());
    p
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A flow of pod `web` (labels `app=web`) in `shop`.
fn flow(direction: Direction, peer: &str, port: u16, protocol: Transport) -> Flow {
    Flow {
        namespace: "shop".into(),
        pod: "web".into(),
        direction,
        peer_ip: peer.parse().expect("an address"),
        port,
        protocol,
        pod_labels: labels(&[("app", "web")]),
        count: 3,
        first_ns: 1,
        last_ns: 2,
    }
}

fn egress(peer: &str, port: u16) -> Flow {
    flow(Direction::Egress, peer, port, Transport::Tcp)
}

fn ingress(peer: &str, port: u16) -> Flow {
    flow(Direction::Ingress, peer, port, Transport::Tcp)
}

/// The denied flows as `direction peer port`.
fn denied(r: &Report) -> Vec<String> {
    r.denied
        .iter()
        .map(|f| format!("{} {} {}", f.flow.direction, f.flow.peer_ip, f.flow.port))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

use Transport::{Tcp, Udp};

const DENY_ALL: &str = "
metadata: {name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
";

#[test]
fn no_policy_allows_everything_and_reports_nothing() {
    let flows = [egress("203.0.113.9", 443), ingress("10.0.0.5", 8080)];
    let r = validate(&[], &flows, &no_peers);
    assert_eq!(r.judged, 2);
    assert!(r.denied.is_empty() && r.unused.is_empty() && r.warnings.is_empty());
}

#[test]
fn deny_all_reports_every_flow_but_loopback() {
    let flows = [
        egress("203.0.113.9", 443),
        ingress("10.0.0.5", 8080),
        egress("127.0.0.1", 8125),
        egress("::1", 8125),
        egress("::ffff:127.0.0.1", 8125),
    ];
    let r = validate(&[policy(DENY_ALL)], &flows, &no_peers);
    assert_eq!(r.judged, 2, "loopback flows are not judged");
    assert_eq!(
        denied(&r),
        strings(&["ingress 10.0.0.5 8080", "egress 203.0.113.9 443"])
    );
    assert!(
        r.denied[0]
            .reason
            .contains("isolated for ingress by shop/deny-all")
    );
    assert!(!r.denied[0].maybe_allowed);
    assert!(r.unused.is_empty(), "a deny-all policy has no rules");
}

#[test]
fn ip_block_except() {
    let p = policy(
        "
metadata: {name: internal}
spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    - ipBlock: {cidr: '2001:db8::/32'}
",
    );
    let flows = [
        egress("10.2.3.4", 443),
        egress("::ffff:10.2.3.5", 443),
        egress("10.1.2.3", 443),
        egress("192.168.1.1", 443),
        egress("2001:db8::7", 80),
    ];
    let r = validate(&[p], &flows, &no_peers);
    assert_eq!(
        denied(&r),
        strings(&["egress 10.1.2.3 443", "egress 192.168.1.1 443"])
    );
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_it_has_rules() {
    let with_egress = policy(
        "
metadata: {name: egress-rules}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 192.0.2.0/24}}]
",
    );
    let ingress_only = policy(
        "
metadata: {name: no-rules}
spec:
  podSelector: {}
",
    );
    let flows = [ingress("198.51.100.1", 8080), egress("198.51.100.1", 443)];
    let r = validate(&[with_egress], &flows, &no_peers);
    assert_eq!(
        denied(&r),
        strings(&["ingress 198.51.100.1 8080", "egress 198.51.100.1 443"])
    );
    let r = validate(&[ingress_only], &flows, &no_peers);
    assert_eq!(denied(&r), strings(&["ingress 198.51.100.1 8080"]));
}

#[test]
fn match_expressions_select_the_isolated_pods() {
    let p = policy(
        "
metadata: {name: front}
spec:
  podSelector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [front, edge]}
    - {key: env, operator: NotIn, values: [dev]}
    - {key: team, operator: Exists}
    - {key: canary, operator: DoesNotExist}
  policyTypes: [Egress]
",
    );
    let with = |pairs: &[(&str, &str)]| {
        let mut f = egress("203.0.113.9", 443);
        f.pod_labels = labels(pairs);
        f.pod = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        f
    };
    let selected = with(&[
        ("app", "web"),
        ("tier", "edge"),
        ("team", "a"),
        ("env", "prod"),
    ]);
    let flows = [
        selected.clone(),
        with(&[("app", "web"), ("tier", "back"), ("team", "a")]),
        with(&[
            ("app", "web"),
            ("tier", "edge"),
            ("team", "a"),
            ("env", "dev"),
        ]),
        with(&[("app", "web"), ("tier", "edge")]),
        with(&[
            ("app", "web"),
            ("tier", "edge"),
            ("team", "a"),
            ("canary", "1"),
        ]),
        with(&[("app", "api"), ("tier", "edge"), ("team", "a")]),
    ];
    let r = validate(&[p], &flows, &no_peers);
    assert_eq!(r.denied.len(), 1, "{r}");
    assert_eq!(r.denied[0].flow, selected);
    let other_namespace = Flow {
        namespace: "other".into(),
        ..selected
    };
    let r = validate(&[policy(DENY_ALL)], &[other_namespace], &no_peers);
    assert!(
        r.denied.is_empty(),
        "a policy selects pods of its own namespace"
    );
}

#[test]
fn ports_end_ports_and_protocols() {
    let p = policy(
        "
metadata: {name: ports}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports:
    - {port: 5000, endPort: 5010}
    - {protocol: UDP, port: 53}
    - {port: 443}
    - {protocol: SCTP}
",
    );
    let flows = [
        flow(Direction::Egress, "192.0.2.1", 5000, Tcp),
        flow(Direction::Egress, "192.0.2.1", 5010, Tcp),
        flow(Direction::Egress, "192.0.2.1", 5011, Tcp),
        flow(Direction::Egress, "192.0.2.1", 53, Udp),
        flow(Direction::Egress, "192.0.2.1", 53, Tcp),
        flow(Direction::Egress, "192.0.2.1", 443, Tcp),
        flow(Direction::Egress, "192.0.2.1", 443, Udp),
        flow(Direction::Egress, "192.0.2.1", 9999, Transport::Sctp),
    ];
    let r = validate(&[p], &flows, &no_peers);
    let got: Vec<_> = r
        .denied
        .iter()
        .map(|f| format!("{} {}", f.flow.protocol, f.flow.port))
        .collect();
    assert_eq!(got, strings(&["TCP 53", "UDP 443", "TCP 5011"]));
    assert!(r.unused.is_empty());
}

#[test]
fn egress_only_policy_does_not_isolate_ingress() {
    let p = policy(
        "
metadata: {name: egress-only}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 192.0.2.0/24}}]
",
    );
    let flows = [
        ingress("198.51.100.1", 8080),
        egress("192.0.2.9", 443),
        egress("198.51.100.1", 443),
    ];
    let r = validate(&[p], &flows, &no_peers);
    assert_eq!(denied(&r), strings(&["egress 198.51.100.1 443"]));
}

#[test]
fn policies_are_additive() {
    let dns = policy(
        "
metadata: {name: allow-dns}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports: [{protocol: UDP, port: 53}]
",
    );
    let api = policy(
        "
metadata: {name: allow-api}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
    ports: [{port: 443}]
",
    );
    let flows = [
        flow(Direction::Egress, "10.96.0.10", 53, Udp),
        egress("203.0.113.9", 443),
        egress("203.0.113.9", 80),
    ];
    let r = validate(&[dns, api], &flows, &no_peers);
    assert_eq!(denied(&r), strings(&["egress 203.0.113.9 80"]));
    assert!(
        r.denied[0]
            .reason
            .contains("isolated for egress by shop/allow-dns, shop/allow-api"),
        "{}",
        r.denied[0].reason
    );
    assert!(r.unused.is_empty());
}

#[test]
fn unused_rules_are_reported() {
    let web = policy(
        "
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 8080}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8}}]
    ports: [{port: 9090}]
",
    );
    let db = policy(
        "
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - ports: [{port: 5432}]
",
    );
    let flows = [ingress("192.0.2.1", 8080)];
    let r = validate(&[web, db], &flows, &no_peers);
    assert!(r.denied.is_empty());
    let got: Vec<String> = r.unused.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        strings(&[
            "shop/db ingress rule 0: from any peer on TCP 5432 \
             (the policy selects no pod seen in ingress flows)",
            "shop/web ingress rule 1: from 10.0.0.0/8 on TCP 9090",
        ])
    );
}

fn resolver(ip: IpAddr) -> Option<Peer> {
    let peer = |ns: &str, app: &str, team: &str| Peer {
        namespace: ns.into(),
        labels: labels(&[("app", app)]),
        namespace_labels: labels(&[("team", team)]),
    };
    match ip.to_string().as_str() {
        "10.244.0.5" => Some(peer("shop", "db", "shop")),
        "10.244.0.6" => Some(peer("billing", "db", "pay")),
        "10.244.0.7" => Some(peer("billing", "api", "pay")),
        "10.244.0.8" => Some(peer("monitoring", "prometheus", "ops")),
        _ => None,
    }
}

#[test]
fn pod_and_namespace_selectors() {
    let p = policy(
        "
metadata: {name: peers}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector: {matchLabels: {app: db}}
  - to:
    - namespaceSelector: {matchLabels: {team: pay}}
      podSelector: {matchLabels: {app: api}}
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
",
    );
    let flows = [
        egress("10.244.0.5", 5432), // db in the policy's namespace: rule 0
        egress("10.244.0.6", 5432), // db in another namespace: denied
        egress("10.244.0.7", 8080), // api in a pay namespace: rule 1
        egress("10.244.0.8", 9090), // any pod of monitoring: rule 2
        egress("10.244.0.9", 80),   // not a known pod: denied
    ];
    let r = validate(&[p], &flows, &resolver);
    assert_eq!(
        denied(&r),
        strings(&["egress 10.244.0.6 5432", "egress 10.244.0.9 80"])
    );
    assert!(r.unused.is_empty(), "{r}");
}

#[test]
fn named_ports_are_not_guessed() {
    let p = policy(
        "
metadata: {name: named}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: http}]
",
    );
    let r = validate(&[p], &[ingress("192.0.2.1", 8080)], &no_peers);
    assert_eq!(r.denied.len(), 1);
    let f = &r.denied[0];
    assert!(f.maybe_allowed);
    assert!(
        f.reason.contains("named ports cannot be resolved"),
        "{}",
        f.reason
    );
    assert!(f.reason.contains("http"), "{}", f.reason);
    assert!(
        r.unused.is_empty(),
        "a rule that may have matched is not called unused"
    );
}

#[test]
fn invalid_parts_are_warned_about() {
    let p = policy(
        "
metadata: {name: broken}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/99}}]
  - to: [{podSelector: {matchExpressions: [{key: a, operator: Gt, values: ['1']}]}}]
  - ports: [{protocol: ICMP}]
",
    );
    let r = validate(&[p], &[egress("10.0.0.1", 80)], &resolver);
    assert_eq!(r.denied.len(), 1);
    assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    assert_eq!(r.unused.len(), 3);
}

#[test]
fn report_reads_well() {
    let r = validate(
        &[policy(DENY_ALL)],
        &[egress("203.0.113.9", 443)],
        &no_peers,
    );
    let text = r.to_string();
    assert_eq!(
        text,
        "1 flow judged\n\
         1 observed flow the policies deny (is the CNI enforcing NetworkPolicy?):\n  \
         egress shop/web -> 203.0.113.9 TCP 443, seen 3 times: isolated for egress by \
         shop/deny-all; no rule allows it\n\
         every allow rule matched an observed flow\n"
    );
}

#[test]
fn egress_flows_from_a_profile() {
    use profiles::{
        Family, Protocol,
        model::{NetEntry, Profile, Seen},
    };
    let entry = |family, protocol, addr: &str, port| NetEntry {
        family,
        protocol,
        addr: addr.into(),
        port,
    };
    let seen = Seen {
        count: 4,
        first_ns: 10,
        last_ns: 20,
    };
    let connects = [
        entry(Family::Inet, Protocol::Tcp, "203.0.113.9", 443),
        entry(Family::Inet6, Protocol::Udp, "::ffff:10.96.0.10", 53),
        entry(Family::Inet, Protocol::Tcp, "10.0.0.0/8", 443),
        entry(Family::Inet, Protocol::Tcp, "192.0.2.1", 0),
        entry(Family::Inet, Protocol::Unknown, "192.0.2.2", 80),
        entry(Family::Unix, Protocol::Stream, "/run/x.sock", 0),
    ];
    let profile = Profile {
        connects: connects.into_iter().map(|e| (e, seen)).collect(),
        ..Profile::default()
    };
    let flows = egress_flows(&profile, "shop", "web", &labels(&[("app", "web")]));
    let got: Vec<String> = flows.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        strings(&[
            "egress shop/web -> 10.96.0.10 UDP 53, seen 4 times",
            "egress shop/web -> 203.0.113.9 TCP 443, seen 4 times",
        ])
    );
    assert_eq!((flows[0].first_ns, flows[0].last_ns), (10, 20));
    assert_eq!(flows[0].pod_labels, labels(&[("app", "web")]));
}
