//! Field sets and ownership in the shape of `metadata.managedFields` (FieldsV1), and the merge
//! rules of server-side apply: maps merge recursively, list-maps merge elements by key, other
//! lists and scalars are replaced.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field path in FieldsV1 segments: `f:name` for a map key, `k:{"key":"value"}` for a list-map
/// element.
pub(crate) type FieldPath = Vec<String>;
/// A set of owned field paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// The list-map lists of one resource: the list's path of field names from the object root
/// (keys of list-map elements on the way are skipped) and the element keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListMaps(pub Vec<(Vec<String>, Vec<String>)>);

impl ListMaps {
    fn keys_for(&self, names: &[String]) -> Option<&[String]> {
        self.0
            .iter()
            .find(|(path, _)| path.as_slice() == names)
            .map(|(_, keys)| keys.as_slice())
    }
}

/// Metadata fields the server owns, never part of a manager's field set.
const SERVER_FIELDS: &[&str] = &[
    "f:name",
    "f:namespace",
    "f:uid",
    "f:resourceVersion",
    "f:creationTimestamp",
    "f:generation",
    "f:managedFields",
    "f:deletionTimestamp",
];

fn element_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

/// The field set of `v`: every leaf (scalar, atomic list, empty map) and every list-map element.
/// `status` selects which side of the status subresource is counted: `Some(true)` only
/// `.status`, `Some(false)` everything but `.status`, `None` everything.
pub(crate) fn field_set(v: &Value, lm: &ListMaps, status: Option<bool>) -> FieldSet {
    fn walk(
        v: &Value,
        path: &mut FieldPath,
        names: &mut Vec<String>,
        lm: &ListMaps,
        out: &mut FieldSet,
    ) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(format!("f:{k}"));
                    names.push(k.clone());
                    walk(child, path, names, lm, out);
                    names.pop();
                    path.pop();
                }
            }
            Value::Array(items) if items.iter().all(Value::is_object) => match lm.keys_for(names) {
                Some(keys) => {
                    for item in items {
                        path.push(element_key(item, keys));
                        out.insert(path.clone());
                        walk(item, path, names, lm, out);
                        path.pop();
                    }
                }
                None => {
                    out.insert(path.clone());
                }
            },
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut Vec::new(), lm, &mut out);
    out.retain(|p| {
        let first = p.first().map(String::as_str);
        if matches!(first, Some("f:apiVersion" | "f:kind") | None) {
            return false;
        }
        if first == Some("f:metadata")
            && p.get(1)
                .is_some_and(|s| SERVER_FIELDS.contains(&s.as_str()))
        {
            return false;
        }
        match status {
            Some(true) => first == Some("f:status"),
            Some(false) => first != Some("f:status"),
            None => true,
        }
    });
    out
}

fn matches_key(item: &Value, seg: &str) -> bool {
    let Some(json) = seg.strip_prefix("k:") else {
        return false;
    };
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(json) else {
        return false;
    };
    want.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at `path` in `v`.
pub(crate) fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = if let Some(name) = seg.strip_prefix("f:") {
            cur.as_object()?.get(name)?
        } else {
            cur.as_array()?.iter().find(|i| matches_key(i, seg))?
        };
    }
    Some(cur)
}

/// Removes the field or list-map element at `path` from `v` (nothing when it is absent).
pub(crate) fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = if let Some(name) = seg.strip_prefix("f:") {
            cur.as_object_mut().and_then(|m| m.get_mut(name))
        } else {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| matches_key(i, seg)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(a) = cur.as_array_mut() {
        a.retain(|i| !matches_key(i, last));
    }
}

/// Merges an applied configuration into the live object the way server-side apply does.
pub(crate) fn merge_apply(live: &mut Value, applied: &Value, lm: &ListMaps) {
    fn walk(live: &mut Value, applied: &Value, names: &mut Vec<String>, lm: &ListMaps) {
        match (live, applied) {
            (Value::Object(l), Value::Object(a)) => {
                for (k, av) in a {
                    names.push(k.clone());
                    match l.get_mut(k) {
                        Some(lv) => walk(lv, av, names, lm),
                        None => {
                            l.insert(k.clone(), av.clone());
                        }
                    }
                    names.pop();
                }
            }
            (Value::Array(l), Value::Array(a)) if lm.keys_for(names).is_some() => {
                let keys = lm.keys_for(names).unwrap_or_default().to_vec();
                for ae in a {
                    let key = element_key(ae, &keys);
                    match l.iter_mut().find(|le| element_key(le, &keys) == key) {
                        Some(le) => walk(le, ae, names, lm),
                        None => l.push(ae.clone()),
                    }
                }
            }
            (l, a) => *l = a.clone(),
        }
    }
    walk(live, applied, &mut Vec::new(), lm);
}

/// A dotted rendering of a field path for messages: `.spec.parts[node="a"].x`.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(name) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(name);
        } else if let Some(Value::Object(m)) = seg
            .strip_prefix("k:")
            .and_then(|j| serde_json::from_str(j).ok())
        {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    s
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Owner {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub subresource: Option<String>,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

fn fields_from_v1(node: &Map<String, Value>, path: &mut FieldPath, out: &mut FieldSet) {
    for (k, v) in node {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        match v.as_object() {
            Some(m) if !m.is_empty() => fields_from_v1(m, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

fn fields_to_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for seg in path {
            node = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("FieldsV1 nodes are maps");
        }
        if path.last().is_some_and(|s| s.starts_with("k:")) {
            node.insert(".".into(), Value::Object(Map::new()));
        }
    }
    Value::Object(root)
}

/// The owners recorded in an object's `metadata.managedFields`.
pub(crate) fn owners(obj: &Value) -> Vec<Owner> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = FieldSet::new();
            if let Some(m) = e.get("fieldsV1").and_then(Value::as_object) {
                fields_from_v1(m, &mut Vec::new(), &mut fields);
            }
            Owner {
                manager: s("manager"),
                operation: s("operation"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

/// Writes `owners` into `obj`'s `metadata.managedFields` (removed when there are none).
pub(crate) fn set_owners(obj: &mut Value, owners: &[Owner]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries: Vec<Value> = owners
        .iter()
        .filter(|o| !o.fields.is_empty())
        .map(|o| {
            let mut e = serde_json::json!({
                "manager": o.manager,
                "operation": o.operation,
                "apiVersion": o.api_version,
                "time": o.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_to_v1(&o.fields),
            });
            if let Some(sub) = &o.subresource {
                e["subresource"] = Value::String(sub.clone());
            }
            e
        })
        .collect();
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_map_fields_round_trip() {
        let lm = ListMaps(vec![(
            vec!["spec".into(), "parts".into()],
            vec!["node".into()],
        )]);
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"parts": [{"node": "a", "n": 1}], "list": [1, 2]}});
        let fs = field_set(&obj, &lm, None);
        let want: FieldSet = [
            vec!["f:metadata", "f:labels", "f:a"],
            vec!["f:spec", "f:list"],
            vec!["f:spec", "f:parts", "k:{\"node\":\"a\"}"],
            vec!["f:spec", "f:parts", "k:{\"node\":\"a\"}", "f:n"],
            vec!["f:spec", "f:parts", "k:{\"node\":\"a\"}", "f:node"],
        ]
        .into_iter()
        .map(|p| p.into_iter().map(String::from).collect())
        .collect();
        assert_eq!(fs, want);
        let mut back = FieldSet::new();
        fields_from_v1(
            fields_to_v1(&fs).as_object().unwrap(),
            &mut Vec::new(),
            &mut back,
        );
        assert_eq!(back, fs);
        let el = &want.iter().nth(2).unwrap()[..];
        assert_eq!(get_path(&obj, el), Some(&json!({"node": "a", "n": 1})));
        let mut o = obj.clone();
        remove_path(&mut o, el);
        assert_eq!(o["spec"]["parts"], json!([]));
    }
}
