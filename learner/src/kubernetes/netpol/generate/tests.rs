use profiles::model::Seen;

use super::*;
use crate::kubernetes::netpol::Error;

const SEEN: Seen = Seen {
    count: 1,
    first_ns: 1,
    last_ns: 2,
};

type Entry<'a> = (Family, Protocol, &'a str, u16);

fn entry((family, protocol, addr, port): Entry<'_>) -> NetEntry {
    NetEntry {
        family,
        protocol,
        addr: addr.into(),
        port,
    }
}

fn profile(listens: &[Entry<'_>], connects: &[Entry<'_>]) -> Profile {
    Profile {
        listens: listens.iter().map(|e| (entry(*e), SEEN)).collect(),
        connects: connects.iter().map(|e| (entry(*e), SEEN)).collect(),
        ..Profile::default()
    }
}

fn target() -> PolicyTarget {
    PolicyTarget {
        namespace: "shop".into(),
        name: "web-baseline".into(),
        pod_selector: BTreeMap::from([("app".into(), "web".into())]),
    }
}

fn spec(g: &Generated) -> &NetworkPolicySpec {
    g.policy.spec.as_ref().expect("a spec")
}

/// Each rule's ports as `PROTO port` strings (`PROTO *` for any port).
fn ports(ports: Option<&Vec<NetworkPolicyPort>>) -> Vec<String> {
    ports
        .into_iter()
        .flatten()
        .map(|p| {
            let port = match &p.port {
                Some(IntOrString::Int(n)) => n.to_string(),
                Some(IntOrString::String(s)) => s.clone(),
                None => "*".into(),
            };
            format!("{} {port}", p.protocol.as_deref().unwrap_or("-"))
        })
        .collect()
}

/// Each egress rule as (ports, ipBlock CIDRs).
fn egress(g: &Generated) -> Vec<(Vec<String>, Vec<String>)> {
    let rules = spec(g).egress.iter().flatten();
    rules
        .map(|r| {
            let peers = r.to.iter().flatten();
            let cidrs = peers.filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()));
            (ports(r.ports.as_ref()), cidrs.collect())
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn has_note(g: &Generated, part: &str) -> bool {
    g.notes.iter().any(|n| n.contains(part))
}

use Family::{Inet, Inet6, Unix};
use Protocol::{Raw, Stream, Tcp, Udp, Unknown};

#[test]
fn listens_become_one_ingress_rule_per_port() {
    let p = profile(
        &[
            (Inet, Tcp, "0.0.0.0", 8080),
            (Inet6, Tcp, "::", 8080),
            (Inet, Udp, "0.0.0.0", 5353),
            (Inet, Tcp, "127.0.0.1", 9090),
            (Unix, Stream, "/run/web.sock", 0),
        ],
        &[],
    );
    let g = generate(&p, &target(), &GenerateOptions::default()).unwrap();
    let s = spec(&g);
    assert_eq!(s.policy_types, Some(strings(&["Ingress", "Egress"])));
    let ingress = s.ingress.as_ref().unwrap();
    let got: Vec<_> = ingress.iter().map(|r| ports(r.ports.as_ref())).collect();
    assert_eq!(got, vec![strings(&["TCP 8080"]), strings(&["UDP 5353"])]);
    assert!(ingress.iter().all(|r| r.from.is_none()), "from any source");
    let selector = s.pod_selector.as_ref().unwrap().match_labels.as_ref();
    assert_eq!(selector, Some(&target().pod_selector));
    assert!(has_note(&g, "skipped 1 unix-socket entry"), "{:?}", g.notes);
    assert!(has_note(&g, "skipped 1 loopback entry"), "{:?}", g.notes);
    assert!(has_note(&g, "from any source"), "{:?}", g.notes);
    assert!(has_note(&g, "denies all egress"), "{:?}", g.notes);
}

#[test]
fn connects_become_ip_blocks_grouped_by_port_set() {
    let p = profile(
        &[],
        &[
            (Inet, Tcp, "203.0.113.9", 443),
            (Inet6, Tcp, "2001:db8::1", 443),
            (Inet6, Tcp, "::ffff:198.51.100.7", 443),
            (Inet, Tcp, "192.0.2.1", 443),
            (Inet, Tcp, "192.0.2.1", 80),
            (Inet, Tcp, "10.1.2.0/24", 5432),
            (Inet, Udp, "10.96.0.10", 53),
            (Inet, Tcp, "127.0.0.1", 8125),
            (Inet6, Tcp, "::1", 9000),
            (Inet6, Tcp, "::ffff:127.0.0.1", 9001),
            (Unix, Stream, "/var/run/docker.sock", 0),
        ],
    );
    let g = generate(&p, &target(), &GenerateOptions::default()).unwrap();
    assert_eq!(
        egress(&g),
        vec![
            (strings(&["TCP 80", "TCP 443"]), strings(&["192.0.2.1/32"])),
            (
                strings(&["TCP 443"]),
                strings(&["198.51.100.7/32", "203.0.113.9/32", "2001:db8::1/128"])
            ),
            (strings(&["TCP 5432"]), strings(&["10.1.2.0/24"])),
            (strings(&["UDP 53"]), strings(&["10.96.0.10/32"])),
        ]
    );
    assert_eq!(
        spec(&g).ingress,
        Some(vec![]),
        "no listens: deny all ingress"
    );
    assert!(has_note(&g, "denies all ingress"), "{:?}", g.notes);
    assert!(has_note(&g, "skipped 3 loopback entries"), "{:?}", g.notes);
    assert!(has_note(&g, "skipped 1 unix-socket entry"), "{:?}", g.notes);
    assert!(
        has_note(&g, "destination 10.96.0.10:53 is DNS"),
        "{:?}",
        g.notes
    );
    assert!(has_note(&g, "after DNAT"), "{:?}", g.notes);
}

#[test]
fn any_port_unknown_protocol_raw_and_covered_networks() {
    let p = profile(
        &[],
        &[
            (Inet, Tcp, "10.0.0.0/16", 0),
            (Inet, Tcp, "10.0.0.0/16", 443),
            (Inet, Unknown, "192.0.2.7", 8443),
            (Inet, Raw, "192.0.2.8", 0),
            (Inet, Tcp, "172.16.0.0/12", 6379),
            (Inet, Tcp, "172.16.1.2", 6379),
        ],
    );
    let g = generate(&p, &target(), &GenerateOptions::default()).unwrap();
    assert_eq!(
        egress(&g),
        vec![
            (strings(&["TCP *"]), strings(&["10.0.0.0/16"])),
            (strings(&["TCP 6379"]), strings(&["172.16.0.0/12"])),
            (
                strings(&["TCP 8443", "UDP 8443"]),
                strings(&["192.0.2.7/32"])
            ),
        ],
        "any port covers port 443; the /12 covers the /32 with the same ports"
    );
    assert!(has_note(&g, "protocol unknown"), "{:?}", g.notes);
    assert!(has_note(&g, "raw IP"), "{:?}", g.notes);
}

#[test]
fn resolved_pods_become_namespace_and_pod_selectors() {
    let pod_ip: IpAddr = "10.244.1.5".parse().unwrap();
    let resolve = move |ip: IpAddr| {
        (ip == pod_ip).then(|| Peer {
            namespace: "db".into(),
            labels: BTreeMap::from([
                ("app".into(), "postgres".into()),
                ("pod-template-hash".into(), "7f9c".into()),
            ]),
            namespace_labels: BTreeMap::new(),
        })
    };
    let options = GenerateOptions {
        resolve: &resolve,
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
    };
    let p = profile(
        &[],
        &[
            (Inet, Tcp, "10.244.1.5", 5432),
            (Inet, Tcp, "10.244.0.0/16", 5432),
            (Inet, Tcp, "10.96.4.4", 80),
        ],
    );
    let g = generate(&p, &target(), &options).unwrap();
    let rules = spec(&g).egress.as_ref().unwrap();
    assert_eq!(rules.len(), 2);
    let peers = rules[1].to.as_ref().unwrap();
    assert_eq!(ports(rules[1].ports.as_ref()), strings(&["TCP 5432"]));
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0].ip_block.as_ref().unwrap().cidr, "10.244.0.0/16");
    let pod = &peers[1];
    assert!(pod.ip_block.is_none());
    let ns = pod
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref();
    assert_eq!(
        ns,
        Some(&BTreeMap::from([(
            NAMESPACE_NAME_LABEL.into(),
            "db".into()
        )]))
    );
    let labels = pod.pod_selector.as_ref().unwrap().match_labels.as_ref();
    assert_eq!(
        labels,
        Some(&BTreeMap::from([("app".into(), "postgres".into())])),
        "pod-template-hash is dropped"
    );
    assert!(
        has_note(&g, "10.96.4.4:80 lies in the Service CIDR 10.96.0.0/12"),
        "{:?}",
        g.notes
    );
}

#[test]
fn yaml_is_clean_and_deterministic() {
    let listens = [(Inet, Tcp, "0.0.0.0", 8080)];
    let connects = [
        (Inet, Udp, "10.96.0.10", 53),
        (Inet, Tcp, "203.0.113.9", 443),
    ];
    let mut reversed = connects;
    reversed.reverse();
    let a = generate(
        &profile(&listens, &connects),
        &target(),
        &GenerateOptions::default(),
    );
    let b = generate(
        &profile(&listens, &reversed),
        &target(),
        &GenerateOptions::default(),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let yaml = to_yaml(&a.policy).unwrap();
    assert_eq!(yaml, to_yaml(&b.policy).unwrap());
    assert_eq!(a.notes, b.notes);
    let expected = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  labels:
    app.kubernetes.io/managed-by: baseliner
  name: web-baseline
  namespace: shop
spec:
  egress:
  - ports:
    - port: 443
      protocol: TCP
    to:
    - ipBlock:
        cidr: 203.0.113.9/32
  - ports:
    - port: 53
      protocol: UDP
    to:
    - ipBlock:
        cidr: 10.96.0.10/32
  ingress:
  - ports:
    - port: 8080
      protocol: TCP
  podSelector:
    matchLabels:
      app: web
  policyTypes:
  - Ingress
  - Egress
";
    assert_eq!(yaml, expected);
    assert!(!yaml.contains("null"));
    let back: NetworkPolicy = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(back, a.policy);
}

#[test]
fn empty_selector_selects_every_pod() {
    let t = PolicyTarget {
        pod_selector: BTreeMap::new(),
        ..target()
    };
    let g = generate(&Profile::default(), &t, &GenerateOptions::default()).unwrap();
    let yaml = to_yaml(&g.policy).unwrap();
    assert!(yaml.contains("podSelector: {}"), "{yaml}");
    assert!(
        yaml.contains("ingress: []") && yaml.contains("egress: []"),
        "{yaml}"
    );
}

#[test]
fn invalid_targets_are_rejected() {
    let bad_name = PolicyTarget {
        name: "Web_Policy".into(),
        ..target()
    };
    let err = generate(&Profile::default(), &bad_name, &GenerateOptions::default());
    assert!(matches!(
        err,
        Err(Error::InvalidName {
            what: "policy name",
            ..
        })
    ));
    let bad_label = PolicyTarget {
        pod_selector: BTreeMap::from([("app".into(), "-web".into())]),
        ..target()
    };
    let err = generate(&Profile::default(), &bad_label, &GenerateOptions::default());
    assert!(matches!(err, Err(Error::InvalidLabel { .. })));
}
