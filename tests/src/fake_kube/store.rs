//! The fake's state: resource types, stored objects, the change log that feeds watches, the
//! request records and the failure rules, and the write operations of the API.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::fields::{self, FieldSet, ListMaps, Owner};
use super::{ResourceType, Write};

/// A stored object's identity: resource key (`plural` or `plural.group`), namespace ("" for
/// cluster-scoped), name.
pub(crate) type ObjKey = (String, String, String);

/// One change, in resource version order.
pub(crate) struct Change {
    pub rv: u64,
    pub key: ObjKey,
    /// The object before the change (None when it was created).
    pub prev: Option<Value>,
    /// The object after the change; for a deletion, the deleted object at the deletion's
    /// resource version.
    pub object: Value,
    pub deleted: bool,
}

/// An injected failure: the next `remaining` requests matching method and path prefix answer
/// `status`.
pub(crate) struct Failure {
    pub method: String,
    pub prefix: String,
    pub status: u16,
    pub remaining: usize,
}

/// An API error, answered as a `Status` object.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        let group = if rt.group.is_empty() {
            String::new()
        } else {
            format!(".{}", rt.group)
        };
        ApiError {
            details: Some(json!({"name": name, "group": rt.group, "kind": rt.plural})),
            ..ApiError::new(404, format!("{}{group} \"{name}\" not found", rt.plural))
        }
    }

    /// The `Status` body.
    pub(crate) fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `reason` the API server gives with an HTTP status.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// Now as RFC 3339 UTC with seconds, as Kubernetes writes timestamps.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The resource types every fake serves.
fn default_types() -> Vec<ResourceType> {
    let t = ResourceType::new;
    vec![
        t("", "v1", "Pod", "pods", true).with_status_subresource(),
        t("", "v1", "Namespace", "namespaces", false).with_status_subresource(),
        t("", "v1", "Node", "nodes", false).with_status_subresource(),
        t("", "v1", "Event", "events", true),
        t("", "v1", "ConfigMap", "configmaps", true),
        t("events.k8s.io", "v1", "Event", "events", true),
        t(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
        t("apps", "v1", "ReplicaSet", "replicasets", true).with_status_subresource(),
        t("apps", "v1", "Deployment", "deployments", true).with_status_subresource(),
        t("batch", "v1", "Job", "jobs", true).with_status_subresource(),
        t("batch", "v1", "CronJob", "cronjobs", true).with_status_subresource(),
        t(
            "baseliner.io",
            "v1alpha1",
            "WorkloadProfile",
            "workloadprofiles",
            true,
        )
        .with_status_subresource(),
    ]
}

/// List-maps of the built-in kinds that matter to server-side apply of pods.
fn default_list_maps() -> HashMap<String, ListMaps> {
    let split = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
    let mut m: HashMap<String, ListMaps> = HashMap::new();
    for path in [
        "spec.containers",
        "spec.initContainers",
        "spec.ephemeralContainers",
        "spec.volumes",
    ] {
        m.entry("pods".into())
            .or_default()
            .0
            .push((split(path), vec!["name".into()]));
    }
    m
}

/// Everything the fake holds.
pub(crate) struct State {
    pub types: Vec<ResourceType>,
    pub list_maps: HashMap<String, ListMaps>,
    pub objects: BTreeMap<ObjKey, Value>,
    pub log: Vec<Change>,
    /// The last resource version handed out.
    pub rv: u64,
    /// Watches from a resource version below this answer 410 Gone.
    pub compacted: u64,
    /// Bumped by `close_watches`; a watch ends when it changes.
    pub epoch: u64,
    seq: u64,
    pub writes: Vec<Write>,
    pub requests: Vec<String>,
    pub failures: Vec<Failure>,
    /// Carries the last resource version (and epoch changes) to open watches.
    pub notify: watch::Sender<u64>,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            types: default_types(),
            list_maps: default_list_maps(),
            objects: BTreeMap::new(),
            log: Vec::new(),
            rv: 1,
            compacted: 0,
            epoch: 0,
            seq: 0,
            writes: Vec::new(),
            requests: Vec::new(),
            failures: Vec::new(),
            notify: watch::channel(1).0,
        }
    }

    /// The resource type served at `group/version/plural`.
    pub(crate) fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The resource type named `plural` or `plural.group` (the core group wins a bare plural).
    pub(crate) fn by_name(&self, name: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.key() == name)
            .or_else(|| self.types.iter().find(|t| t.plural == name))
            .cloned()
    }

    /// The resource type of an object's `apiVersion` and `kind`.
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
    }

    /// Adds a resource type (replacing one with the same group, version and plural).
    pub(crate) fn register(&mut self, rt: ResourceType) {
        self.types
            .retain(|t| !(t.group == rt.group && t.version == rt.version && t.plural == rt.plural));
        self.types.push(rt);
    }

    pub(crate) fn list_maps(&self, rt: &ResourceType) -> ListMaps {
        self.list_maps.get(&rt.key()).cloned().unwrap_or_default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Fills what the server sets on creation: apiVersion, kind, namespace, uid,
    /// creationTimestamp, generation.
    pub(crate) fn stamp_new(&mut self, rt: &ResourceType, ns: &str, obj: &mut Value) {
        let seq = self.next_seq();
        obj["apiVersion"] = Value::String(rt.api_version());
        obj["kind"] = Value::String(rt.kind.clone());
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let meta = obj["metadata"].as_object_mut().expect("metadata is a map");
        if rt.namespaced {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        } else {
            meta.remove("namespace");
        }
        meta.entry("uid")
            .or_insert_with(|| format!("00000000-0000-4000-8000-{seq:012x}").into());
        meta.entry("creationTimestamp")
            .or_insert_with(|| now_rfc3339().into());
        meta.entry("generation").or_insert_with(|| 1.into());
    }

    /// Stores (or, with `None`, deletes) the object at `key` under a new resource version,
    /// logs the change and wakes watches. Returns the stored (or deleted) object.
    pub(crate) fn commit(&mut self, key: ObjKey, new: Option<Value>) -> Option<Value> {
        let prev = self.objects.get(&key).cloned();
        let (mut object, deleted) = match new {
            Some(o) => (o, false),
            None => (prev.clone()?, true),
        };
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        if deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        self.log.push(Change {
            rv: self.rv,
            key,
            prev,
            object: object.clone(),
            deleted,
        });
        self.notify.send_replace(self.rv);
        Some(object)
    }

    fn key_of(rt: &ResourceType, ns: &str, name: &str) -> ObjKey {
        let ns = if rt.namespaced { ns } else { "" };
        (rt.key(), ns.to_string(), name.to_string())
    }

    pub(crate) fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&Self::key_of(rt, ns, name))
    }

    /// Objects of `rt` in `ns` (all namespaces when `None`), in namespace and name order.
    pub(crate) fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        let key = rt.key();
        self.objects
            .iter()
            .filter(|((k, n, _), _)| *k == key && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores `obj` as given (test setup), filling server fields; no field ownership changes.
    pub(crate) fn upsert(&mut self, rt: &ResourceType, mut obj: Value) -> Value {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let key = Self::key_of(rt, &ns, &name);
        if let Some(old) = self.objects.get(&key) {
            let meta = obj["metadata"].as_object_mut().expect("metadata is a map");
            for k in ["uid", "creationTimestamp", "generation", "managedFields"] {
                if let (false, Some(v)) = (meta.contains_key(k), old["metadata"].get(k)) {
                    meta.insert(k.into(), v.clone());
                }
            }
        }
        self.stamp_new(rt, &ns, &mut obj);
        self.commit(key, Some(obj)).expect("stored")
    }

    /// POST: creates an object; 409 AlreadyExists when it exists.
    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object"));
        }
        if !body.get("metadata").is_some_and(Value::is_object) {
            body["metadata"] = json!({});
        }
        let meta = body["metadata"].as_object_mut().expect("metadata is a map");
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && rt.namespaced
            && body_ns != ns
        {
            return Err(ApiError::new(
                400,
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => {
                    let prefix = prefix.to_string();
                    let mut n = self.next_seq() * 7_919 + 12_345;
                    let mut suffix = String::new();
                    for _ in 0..5 {
                        suffix.push(b"bcdfghjklmnpqrstvwxz2456789"[(n % 27) as usize] as char);
                        n /= 27;
                    }
                    format!("{prefix}{suffix}")
                }
                None => {
                    return Err(ApiError::new(
                        422,
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        body["metadata"]["name"] = Value::String(name.clone());
        let key = Self::key_of(rt, ns, &name);
        if self.objects.contains_key(&key) {
            let mut e = ApiError::new(409, format!("{} \"{name}\" already exists", rt.plural));
            e.reason = "AlreadyExists";
            e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
            return Err(e);
        }
        if rt.status_subresource
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            body["metadata"].as_object_mut().map(|m| m.remove(k));
        }
        self.stamp_new(rt, ns, &mut body);
        let status = rt.status_subresource.then_some(false);
        let fields = fields::field_set(&body, &self.list_maps(rt), status);
        let owners = vec![Owner {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: None,
            api_version: rt.api_version(),
            time: now_rfc3339(),
            fields,
        }];
        fields::set_owners(&mut body, &owners);
        if dry_run {
            return Ok(body);
        }
        Ok(self.commit(key, Some(body)).expect("stored"))
    }

    /// The stored object at `key`, or 404.
    fn existing(&self, rt: &ResourceType, key: &ObjKey) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, &key.2))
    }

    /// PUT, a merge patch or a JSON patch: the new object `new` replaces `old` (only `.status`
    /// on the status subresource, everything else otherwise), with a resourceVersion
    /// precondition when `new` carries one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        manager: &str,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Self::key_of(rt, ns, name);
        let old = self.existing(rt, &key)?;
        if !new.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object"));
        }
        if let Some(body_name) = new.pointer("/metadata/name").and_then(Value::as_str)
            && body_name != name
        {
            return Err(ApiError::new(
                400,
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            let mut e = ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.plural
                ),
            );
            e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
            return Err(e);
        }
        let new = scope_to(rt, &old, new, subresource);
        let lm = self.list_maps(rt);
        let scope = rt
            .status_subresource
            .then_some(subresource == Some("status"));
        let mut owners = fields::owners(&old);
        let changed: FieldSet = fields::field_set(&new, &lm, scope)
            .into_iter()
            .filter(|p| fields::get_path(&old, p) != fields::get_path(&new, p))
            .collect();
        if !changed.is_empty() {
            for o in &mut owners {
                o.fields.retain(|p| !changed.contains(p));
            }
            let entry = owner_entry(&mut owners, rt, manager, "Update", subresource);
            entry.fields.extend(changed);
            entry.time = now_rfc3339();
        }
        self.finish(rt, key, &old, new, owners, dry_run)
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        applied: Value,
        manager: Option<&str>,
        force: bool,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let manager = manager.filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::new(
                400,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })?;
        let Some(applied_map) = applied.as_object() else {
            return Err(ApiError::new(
                400,
                "the applied configuration must be a map",
            ));
        };
        if applied_map.get("apiVersion").and_then(Value::as_str) != Some(&rt.api_version())
            || applied_map.get("kind").and_then(Value::as_str) != Some(&rt.kind)
        {
            return Err(ApiError::new(
                400,
                format!(
                    "the applied configuration must have apiVersion {:?} and kind {:?}",
                    rt.api_version(),
                    rt.kind
                ),
            ));
        }
        if let Some(n) = applied.pointer("/metadata/name").and_then(Value::as_str)
            && n != name
        {
            return Err(ApiError::new(
                400,
                "the name of the object does not match the name on the URL",
            ));
        }
        let key = Self::key_of(rt, ns, name);
        let old = self.objects.get(&key).cloned();
        if old.is_none() && subresource.is_some() {
            return Err(ApiError::not_found(rt, name));
        }
        let base = old.clone().unwrap_or_else(|| {
            let mut b = json!({"metadata": {"name": name}});
            if rt.namespaced {
                b["metadata"]["namespace"] = Value::String(ns.to_string());
            }
            b
        });
        let mut applied = applied;
        if rt.status_subresource {
            let m = applied.as_object_mut().expect("checked above");
            if subresource == Some("status") {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "status"));
            } else {
                m.remove("status");
            }
        }
        let lm = self.list_maps(rt);
        let scope = rt
            .status_subresource
            .then_some(subresource == Some("status"));
        let mine_new = fields::field_set(&applied, &lm, scope);
        let mut owners = fields::owners(&base);
        let is_mine = |o: &Owner| {
            o.manager == manager
                && o.operation == "Apply"
                && o.subresource.as_deref() == subresource
        };

        // Conflicts: a field another manager owns whose live value the apply would change.
        let mut conflicts: Vec<(String, fields::FieldPath)> = Vec::new();
        for p in mine_new.iter().filter(|p| {
            p.last().is_some_and(|s| s.starts_with("f:"))
                && fields::get_path(&base, p)
                    .is_some_and(|live| Some(live) != fields::get_path(&applied, p))
        }) {
            for o in owners
                .iter()
                .filter(|o| o.manager != manager && o.fields.contains(p))
            {
                conflicts.push((o.manager.clone(), p.clone()));
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|(m, p)| format!("conflict with \"{m}\": {}", fields::display_path(p)))
                    .collect();
                let mut e = ApiError::new(
                    409,
                    format!(
                        "Apply failed with {} conflict{}: {}",
                        list.len(),
                        if list.len() == 1 { "" } else { "s" },
                        list.join("; ")
                    ),
                );
                e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
                return Err(e);
            }
            for o in owners.iter_mut().filter(|o| o.manager != manager) {
                o.fields.retain(|p| !conflicts.iter().any(|(_, c)| c == p));
            }
        }

        let mut merged = base.clone();
        fields::merge_apply(&mut merged, &applied, &lm);
        // Fields this manager applied before but omits now go, unless someone else owns them
        // (or owns something inside them).
        let mine_old = owners
            .iter()
            .find(|o| is_mine(o))
            .map(|o| o.fields.clone())
            .unwrap_or_default();
        let mut dropped: Vec<&fields::FieldPath> = mine_old.difference(&mine_new).collect();
        dropped.sort_by_key(|p| p.len());
        for p in dropped {
            let kept = owners
                .iter()
                .filter(|o| !is_mine(o))
                .any(|o| o.fields.iter().any(|q| q.starts_with(p)));
            if !kept {
                fields::remove_path(&mut merged, p);
            }
        }
        let entry = owner_entry(&mut owners, rt, manager, "Apply", subresource);
        if entry.fields != mine_new {
            entry.time = now_rfc3339();
        }
        entry.fields = mine_new;

        match old {
            Some(old) => {
                let new = scope_to(rt, &old, merged, subresource);
                Ok((self.finish(rt, key, &old, new, owners, dry_run)?, false))
            }
            None => {
                self.stamp_new(rt, ns, &mut merged);
                for o in &mut owners {
                    o.time = now_rfc3339();
                }
                fields::set_owners(&mut merged, &owners);
                if dry_run {
                    return Ok((merged, true));
                }
                Ok((self.commit(key, Some(merged)).expect("stored"), true))
            }
        }
    }

    /// Common end of an update: keeps server fields, drops ownership of fields that no longer
    /// exist, bumps generation on a spec change, and stores the object unless nothing changed.
    fn finish(
        &mut self,
        rt: &ResourceType,
        key: ObjKey,
        old: &Value,
        mut new: Value,
        mut owners: Vec<Owner>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        new["apiVersion"] = Value::String(rt.api_version());
        new["kind"] = Value::String(rt.kind.clone());
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = json!({});
        }
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => new["metadata"][k] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().map(|m| m.remove(k));
                }
            }
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        if strip(old) != strip(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = (g + 1).into();
        }
        for o in &mut owners {
            o.fields.retain(|p| fields::get_path(&new, p).is_some());
        }
        fields::set_owners(&mut new, &owners);
        let no_times = |v: &Value| {
            let mut v = v.clone();
            if let Some(entries) = v
                .pointer_mut("/metadata/managedFields")
                .and_then(Value::as_array_mut)
            {
                for e in entries {
                    e.as_object_mut().map(|m| m.remove("time"));
                }
            }
            v
        };
        if no_times(old) == no_times(&new) || dry_run {
            return Ok(if dry_run { new } else { old.clone() });
        }
        Ok(self.commit(key, Some(new)).expect("stored"))
    }

    /// DELETE of one object; deleting a namespace deletes what it holds too.
    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Self::key_of(rt, ns, name);
        let old = self.existing(rt, &key)?;
        if dry_run {
            return Ok(old);
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|(_, n, _)| n == name)
                .cloned()
                .collect();
            for k in inside {
                self.commit(k, None);
            }
        }
        Ok(self.commit(key, None).expect("existed"))
    }
}

/// Keeps what a write may not change: through the status subresource only `.status` changes;
/// through the main resource `.status` stays (for kinds with a status subresource).
fn scope_to(rt: &ResourceType, old: &Value, mut new: Value, subresource: Option<&str>) -> Value {
    if !rt.status_subresource {
        return new;
    }
    if subresource == Some("status") {
        let mut out = old.clone();
        match new.as_object_mut().and_then(|m| m.remove("status")) {
            Some(s) => out["status"] = s,
            None => {
                out.as_object_mut().map(|m| m.remove("status"));
            }
        }
        out
    } else {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
        new
    }
}

/// The managed-fields entry of (manager, operation, subresource), added when missing.
fn owner_entry<'a>(
    owners: &'a mut Vec<Owner>,
    rt: &ResourceType,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
) -> &'a mut Owner {
    let pos = owners.iter().position(|o| {
        o.manager == manager && o.operation == operation && o.subresource.as_deref() == subresource
    });
    let i = match pos {
        Some(i) => i,
        None => {
            owners.push(Owner {
                manager: manager.to_string(),
                operation: operation.to_string(),
                subresource: subresource.map(str::to_string),
                api_version: rt.api_version(),
                time: now_rfc3339(),
                fields: FieldSet::new(),
            });
            owners.len() - 1
        }
    };
    &mut owners[i]
}
