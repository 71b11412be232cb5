//! Label selectors (`matchLabels` and `matchExpressions`) as the API server evaluates them.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn compile(r: &LabelSelectorRequirement) -> Result<Requirement, String> {
        let key = r.key.clone();
        let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
        match r.operator.as_str() {
            "In" => Ok(Requirement::In(key, values)),
            "NotIn" => Ok(Requirement::NotIn(key, values)),
            "Exists" => Ok(Requirement::Exists(key)),
            "DoesNotExist" => Ok(Requirement::DoesNotExist(key)),
            op => Err(format!("unknown selector operator {op:?} on key {key:?}")),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }

    fn describe(&self) -> String {
        let set = |vs: &BTreeSet<String>| vs.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Requirement::In(k, vs) => format!("{k} in ({})", set(vs)),
            Requirement::NotIn(k, vs) => format!("{k} notin ({})", set(vs)),
            Requirement::Exists(k) => k.clone(),
            Requirement::DoesNotExist(k) => format!("!{k}"),
        }
    }
}

/// A compiled label selector. The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: BTreeMap<String, String>,
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Compiles a `LabelSelector`; an unknown operator is an error (the API server would have
    /// rejected the object).
    pub fn compile(s: &LabelSelector) -> Result<Selector, String> {
        let requirements = s
            .match_expressions
            .iter()
            .flatten()
            .map(Requirement::compile)
            .collect::<Result<_, _>>()?;
        Ok(Selector {
            labels: s.match_labels.clone().unwrap_or_default(),
            requirements,
        })
    }

    /// Whether a set of labels satisfies every `matchLabels` pair and every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector, which selects everything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.requirements.is_empty()
    }

    /// The selector in `kubectl`'s syntax (`app=web,tier in (a,b)`); `*` when empty.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "*".into();
        }
        let pairs = self.labels.iter().map(|(k, v)| format!("{k}={v}"));
        let reqs = self.requirements.iter().map(Requirement::describe);
        pairs.chain(reqs).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(pairs: &[(&str, &str)], reqs: Vec<LabelSelectorRequirement>) -> Selector {
        Selector::compile(&LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: Some(reqs),
        })
        .expect("valid selector")
    }

    #[test]
    fn empty_selector_selects_everything() {
        let s = Selector::compile(&LabelSelector::default()).unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&BTreeMap::new()));
        assert!(s.matches(&labels(&[("app", "x")])));
        assert_eq!(s.describe(), "*");
    }

    #[test]
    fn match_labels_and_expressions_all_hold() {
        let s = selector(
            &[("app", "web")],
            vec![
                req("tier", "In", &["front", "edge"]),
                req("env", "NotIn", &["dev"]),
                req("team", "Exists", &[]),
                req("canary", "DoesNotExist", &[]),
            ],
        );
        let good = labels(&[("app", "web"), ("tier", "edge"), ("team", "a")]);
        assert!(s.matches(&good));
        let mut with_env = good.clone();
        with_env.insert("env".into(), "prod".into());
        assert!(s.matches(&with_env), "NotIn holds for another value");
        with_env.insert("env".into(), "dev".into());
        assert!(!s.matches(&with_env), "NotIn fails on a listed value");
        let mut canary = good.clone();
        canary.insert("canary".into(), "true".into());
        assert!(!s.matches(&canary), "DoesNotExist");
        let mut no_team = good.clone();
        no_team.remove("team");
        assert!(!s.matches(&no_team), "Exists");
        let mut back = good.clone();
        back.insert("tier".into(), "back".into());
        assert!(!s.matches(&back), "In");
        back.remove("tier");
        assert!(!s.matches(&back), "In needs the key");
        assert!(!s.matches(&labels(&[("app", "api"), ("tier", "edge"), ("team", "a")])));
        assert_eq!(
            s.describe(),
            "app=web,tier in (edge,front),env notin (dev),team,!canary"
        );
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let s = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![req("a", "Gt", &["1"])]),
        };
        assert!(Selector::compile(&s).is_err());
    }
}
