//! Field and label selectors as the API server parses them.

use serde_json::Value;

/// One label selector requirement.
#[derive(Clone, Debug)]
enum Label {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// One field selector requirement: a dotted path, equal or not, and the value.
#[derive(Clone, Debug)]
struct Field {
    path: String,
    equal: bool,
    value: String,
}

/// Parsed `fieldSelector` and `labelSelector`; an empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selector {
    labels: Vec<Label>,
    fields: Vec<Field>,
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|t| !t.is_empty());
    out
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn parse_label(term: &str) -> Result<Label, String> {
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Label::NotExists(k.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once(" notin ") {
        let vals = set_values(v).ok_or_else(|| format!("bad set in {term:?}"))?;
        return Ok(Label::NotIn(k.trim().to_string(), vals));
    }
    if let Some((k, v)) = term.split_once(" in ") {
        let vals = set_values(v).ok_or_else(|| format!("bad set in {term:?}"))?;
        return Ok(Label::In(k.trim().to_string(), vals));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Label::Ne(k.trim().to_string(), v.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Label::Eq(k.trim().to_string(), v.trim().to_string()));
    }
    if term.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
        return Err(format!("unsupported label requirement {term:?}"));
    }
    Ok(Label::Exists(term.to_string()))
}

fn parse_field(term: &str) -> Result<Field, String> {
    let (path, equal, value) = if let Some((k, v)) = term.split_once("!=") {
        (k, false, v)
    } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (k, true, v)
    } else {
        return Err(format!("invalid field selector {term:?}"));
    };
    Ok(Field {
        path: path.trim().to_string(),
        equal,
        value: value.trim().to_string(),
    })
}

impl Selector {
    /// Parses the two selectors (either may be absent); the error is the API server's message.
    pub(crate) fn parse(fields: Option<&str>, labels: Option<&str>) -> Result<Selector, String> {
        Ok(Selector {
            labels: labels
                .map(split_terms)
                .unwrap_or_default()
                .into_iter()
                .map(parse_label)
                .collect::<Result<_, _>>()?,
            fields: fields
                .map(split_terms)
                .unwrap_or_default()
                .into_iter()
                .map(parse_field)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `obj` satisfies every requirement.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        let labels_ok = self.labels.iter().all(|req| match req {
            Label::Eq(k, v) => label(k) == Some(v.as_str()),
            Label::Ne(k, v) => label(k) != Some(v.as_str()),
            Label::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Label::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Label::Exists(k) => label(k).is_some(),
            Label::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|f| {
                let mut cur = Some(obj);
                for part in f.path.split('.') {
                    cur = cur.and_then(|c| c.get(part));
                }
                let actual = match cur {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                (actual == f.value) == f.equal
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "a"}},
            "spec": {"nodeName": "node-a"}});
        let m = |f: Option<&str>, l: Option<&str>| Selector::parse(f, l).unwrap().matches(&pod);
        assert!(m(Some("spec.nodeName=node-a"), None));
        assert!(!m(Some("spec.nodeName=node-b"), None));
        assert!(m(Some("metadata.name==p,spec.nodeName!=x"), None));
        assert!(m(None, Some("app=web,tier=a")));
        assert!(!m(None, Some("app=web,tier=b")));
        assert!(m(None, Some("app in (web, db),!gone,tier")));
        assert!(!m(None, Some("app notin (web)")));
        assert!(m(Some("spec.missing="), None));
    }
}
