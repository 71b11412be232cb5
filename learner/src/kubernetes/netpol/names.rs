//! The Kubernetes rules for object names and labels, checked before a policy is written.

use std::collections::BTreeMap;

use super::{Error, Result};

fn alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Why `s` is not a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
fn dns_label_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s.len() > 63 {
        Some("must be at most 63 characters")
    } else if !s.chars().all(|c| alnum_lower(c) || c == '-') {
        Some("must consist of lower-case letters, digits and '-'")
    } else if !s.starts_with(alnum_lower) || !s.ends_with(alnum_lower) {
        Some("must start and end with a lower-case letter or digit")
    } else {
        None
    }
}

/// Why `s` is not a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
fn dns_subdomain_problem(s: &str) -> Option<&'static str> {
    if s.len() > 253 {
        return Some("must be at most 253 characters");
    }
    s.split('.').find_map(dns_label_problem)
}

/// Checks a namespace name (a DNS-1123 label).
pub fn check_namespace(name: &str) -> Result<()> {
    match dns_label_problem(name) {
        Some(why) => Err(Error::InvalidName {
            what: "namespace",
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Checks an object name such as a NetworkPolicy's (a DNS-1123 subdomain).
pub fn check_object_name(name: &str) -> Result<()> {
    match dns_subdomain_problem(name) {
        Some(why) => Err(Error::InvalidName {
            what: "policy name",
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Why `s` is not a label name or non-empty value (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`).
fn label_part_problem(s: &str) -> Option<&'static str> {
    let edge = |c: char| c.is_ascii_alphanumeric();
    if s.len() > 63 {
        Some("must be at most 63 characters")
    } else if !s.chars().all(|c| edge(c) || matches!(c, '-' | '_' | '.')) {
        Some("must consist of letters, digits, '-', '_' and '.'")
    } else if !s.starts_with(edge) || !s.ends_with(edge) {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

fn label_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_problem = prefix.and_then(dns_subdomain_problem);
    let name_problem = match name {
        "" => Some("the name part must not be empty"),
        n => label_part_problem(n),
    };
    prefix_problem.or(name_problem)
}

/// Checks every label of a selector: keys (`[prefix/]name`) and values.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in labels {
        let value_problem = (!value.is_empty())
            .then(|| label_part_problem(value))
            .flatten();
        if let Some(why) = label_key_problem(key).or(value_problem) {
            return Err(Error::InvalidLabel {
                key: key.clone(),
                value: value.clone(),
                why,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_and_namespaces() {
        assert!(check_object_name("web-egress.v1").is_ok());
        assert!(check_object_name("Web").is_err());
        assert!(check_object_name("-web").is_err());
        assert!(check_object_name("web..x").is_err());
        assert!(check_object_name("").is_err());
        assert!(check_namespace("shop").is_ok());
        assert!(check_namespace("a.b").is_err());
        assert!(check_namespace(&"a".repeat(64)).is_err());
    }

    #[test]
    fn label_keys_and_values() {
        let ok = |k: &str, v: &str| check_labels(&BTreeMap::from([(k.into(), v.into())])).is_ok();
        assert!(ok("app", "web"));
        assert!(ok("app.kubernetes.io/name", "Web_1.x"));
        assert!(ok("tier", ""));
        assert!(!ok("app/", "web"));
        assert!(!ok("Bad.Prefix/app", "web"));
        assert!(!ok("app", "-web"));
        assert!(!ok("app", &"v".repeat(64)));
    }
}
