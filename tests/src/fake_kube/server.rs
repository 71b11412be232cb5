//! The HTTP side: URL parsing, request records, failure injection, and the handlers for get,
//! list, watch, create, replace, patch and delete.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State as AxumState},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::{sync::watch, time::Instant};

use super::select::Selector;
use super::store::{ApiError, State};
use super::{ResourceType, Write};

/// State shared by the handle and the server.
pub(crate) struct Shared {
    pub state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake API server's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What a request addresses.
struct Target {
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(st: &State, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (ns, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && st
            .resolve(group, version, rest[2])
            .is_some_and(|t| t.namespaced)
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let rt = st.resolve(group, version, plural)?;
    let ns_ok = if rt.namespaced {
        ns.is_some() || name.is_none()
    } else {
        ns.is_none()
    };
    let sub_ok = sub
        .as_deref()
        .is_none_or(|s| s == "status" && rt.status_subresource);
    (ns_ok && sub_ok && name.as_deref().is_none_or(|n| !n.is_empty())).then_some(Target {
        rt,
        ns,
        name,
        sub,
    })
}

/// Where a watch starts.
enum From {
    /// Synthetic ADDED events for every current object first (`resourceVersion` "" or "0").
    Current,
    /// The initial objects, then a BOOKMARK marking their end (`sendInitialEvents=true`).
    Streaming,
    /// Changes after this resource version.
    After(u64),
}

/// A watch request, parsed.
struct WatchRequest {
    target: Target,
    sel: Selector,
    from: From,
    timeout: Duration,
    bookmarks: bool,
}

enum Reply {
    Json(u16, Value),
    Watch(Box<WatchRequest>),
}

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();

    let (reply, rx) = {
        let mut st = shared.lock();
        st.requests.push(match uri.query() {
            Some(q) => format!("{method} {path}?{q}"),
            None => format!("{method} {path}"),
        });
        let injected = st.failures.iter_mut().find(|f| {
            f.remaining > 0
                && (f.method == "*" || f.method.eq_ignore_ascii_case(method.as_str()))
                && path.starts_with(&f.prefix)
        });
        let result = match injected {
            Some(f) => {
                f.remaining -= 1;
                Err(ApiError::new(
                    f.status,
                    format!("injected failure of {method} {path}"),
                ))
            }
            None if !body.is_empty() && body_json.is_none() => Err(ApiError::new(
                400,
                "the request body is not JSON (the fake reads JSON only, also for apply)",
            )),
            None => route(
                &mut st,
                &method,
                &path,
                &query,
                content_type.as_deref(),
                body_json.clone(),
                &user_agent,
            ),
        };
        st.failures.retain(|f| f.remaining > 0);
        let code = match &result {
            Ok(Reply::Json(code, _)) => *code,
            Ok(Reply::Watch(_)) => 200,
            Err(e) => e.code,
        };
        if method != Method::GET {
            let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            st.writes.push(Write {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                content_type: content_type.clone(),
                field_manager: param("fieldManager"),
                body: body_json,
                status: code,
            });
        }
        (result, st.notify.subscribe())
    };
    match reply {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Err(e) => json_response(e.code, &e.status()),
        Ok(Reply::Watch(w)) => watch_response(shared, rx, *w),
    }
}

fn route(
    st: &mut State,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    content_type: Option<&str>,
    body: Option<Value>,
    user_agent: &str,
) -> Result<Reply, ApiError> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if path == "/version" && method == Method::GET {
        return Ok(Reply::Json(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"}),
        ));
    }
    let target = parse_path(st, path).ok_or_else(|| ApiError {
        details: Some(json!({})),
        ..ApiError::new(404, "the server could not find the requested resource")
    })?;
    let rt = target.rt.clone();
    let ns = target.ns.clone().unwrap_or_default();
    let manager = q("fieldManager").map(str::to_string).unwrap_or_else(|| {
        user_agent
            .split('/')
            .next()
            .unwrap_or("unknown")
            .to_string()
    });
    let dry_run = q("dryRun") == Some("All");
    let sub = target.sub.as_deref();
    let body = || {
        body.clone()
            .ok_or_else(|| ApiError::new(400, "a JSON body is required"))
    };
    let selector = || {
        Selector::parse(q("fieldSelector"), q("labelSelector")).map_err(|m| ApiError::new(400, m))
    };
    match (method.clone(), target.name.clone()) {
        (Method::GET, None) if matches!(q("watch"), Some("true" | "1")) => {
            let from = if q("sendInitialEvents") == Some("true") {
                From::Streaming
            } else {
                match q("resourceVersion").unwrap_or("") {
                    "" | "0" => From::Current,
                    rv => From::After(rv.parse().map_err(|_| {
                        ApiError::new(400, format!("invalid resourceVersion {rv:?}"))
                    })?),
                }
            };
            let timeout = q("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800);
            Ok(Reply::Watch(Box::new(WatchRequest {
                sel: selector()?,
                from,
                timeout: Duration::from_secs(timeout),
                bookmarks: q("allowWatchBookmarks") == Some("true"),
                target,
            })))
        }
        (Method::GET, None) => {
            let sel = selector()?;
            let items: Vec<Value> = st
                .list(&rt, target.ns.as_deref())
                .into_iter()
                .filter(|o| sel.matches(o))
                .collect();
            Ok(Reply::Json(200, list_body(&rt, st.rv, items)))
        }
        (Method::GET, Some(name)) => st
            .get(&rt, &ns, &name)
            .cloned()
            .map(|o| Reply::Json(200, o))
            .ok_or_else(|| ApiError::not_found(&rt, &name)),
        (Method::POST, None) if rt.namespaced && target.ns.is_none() => Err(ApiError::new(
            405,
            "the server does not allow this method on the requested resource",
        )),
        (Method::POST, None) => st
            .create(&rt, &ns, body()?, &manager, dry_run)
            .map(|o| Reply::Json(201, o)),
        (Method::PUT, Some(name)) => st
            .update(&rt, &ns, &name, body()?, &manager, sub, dry_run)
            .map(|o| Reply::Json(200, o)),
        (Method::PATCH, Some(name)) => {
            let ctype = content_type
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            let patch = body()?;
            match ctype {
                "application/apply-patch+yaml" => {
                    let force = q("force") == Some("true");
                    let field_manager = q("fieldManager");
                    st.apply(&rt, &ns, &name, patch, field_manager, force, sub, dry_run)
                        .map(|(o, created)| Reply::Json(if created { 201 } else { 200 }, o))
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let mut new = st
                        .get(&rt, &ns, &name)
                        .cloned()
                        .ok_or_else(|| ApiError::not_found(&rt, &name))?;
                    json_patch::merge(&mut new, &patch);
                    st.update(&rt, &ns, &name, new, &manager, sub, dry_run)
                        .map(|o| Reply::Json(200, o))
                }
                "application/json-patch+json" => {
                    let mut new = st
                        .get(&rt, &ns, &name)
                        .cloned()
                        .ok_or_else(|| ApiError::not_found(&rt, &name))?;
                    let ops: json_patch::Patch = serde_json::from_value(patch)
                        .map_err(|e| ApiError::new(400, format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut new, &ops)
                        .map_err(|e| ApiError::new(422, format!("JSON patch failed: {e}")))?;
                    st.update(&rt, &ns, &name, new, &manager, sub, dry_run)
                        .map(|o| Reply::Json(200, o))
                }
                other => Err(ApiError::new(
                    415,
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    ),
                )),
            }
        }
        (Method::DELETE, Some(name)) if sub.is_none() => {
            let gone = st.delete(&rt, &ns, &name, dry_run)?;
            Ok(Reply::Json(
                200,
                json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": gone.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    },
                }),
            ))
        }
        (Method::DELETE, None) => {
            let sel = selector()?;
            let names: Vec<(String, String)> = st
                .list(&rt, target.ns.as_deref())
                .into_iter()
                .filter(|o| sel.matches(o))
                .map(|o| {
                    let s = |p: &str| {
                        o.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    (s("/metadata/namespace"), s("/metadata/name"))
                })
                .collect();
            let mut gone = Vec::new();
            for (n, name) in names {
                gone.push(st.delete(&rt, &n, &name, dry_run)?);
            }
            Ok(Reply::Json(200, list_body(&rt, st.rv, gone)))
        }
        _ => Err(ApiError::new(
            405,
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// A `<Kind>List` body.
fn list_body(rt: &ResourceType, rv: u64, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": rt.api_version(),
        "kind": format!("{}List", rt.kind),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta}),
    )
}

/// An open watch.
struct Watch {
    shared: Arc<Shared>,
    rx: watch::Receiver<u64>,
    target: Target,
    sel: Selector,
    last: u64,
    epoch: u64,
    pending: VecDeque<Bytes>,
    deadline: Instant,
    bookmarks: bool,
    done: bool,
}

impl Watch {
    /// Queues the events of changes after `self.last` that this watch sees.
    fn scan(&mut self, st: &State) {
        let key = self.target.rt.key();
        let start = st.log.partition_point(|c| c.rv <= self.last);
        for ch in &st.log[start..] {
            if ch.key.0 != key || self.target.ns.as_ref().is_some_and(|ns| *ns != ch.key.1) {
                continue;
            }
            let before = ch.prev.as_ref().is_some_and(|p| self.sel.matches(p));
            let now = !ch.deleted && self.sel.matches(&ch.object);
            let kind = match (before, now) {
                (false, true) => "ADDED",
                (true, true) => "MODIFIED",
                (true, false) => "DELETED",
                (false, false) => continue,
            };
            self.pending.push_back(line(kind, &ch.object));
        }
        self.last = st.rv;
    }

    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Watch)> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some((Ok(b), self));
            }
            if self.done {
                return None;
            }
            self.rx.borrow_and_update();
            {
                let shared = self.shared.clone();
                let st = shared.lock();
                if st.epoch != self.epoch {
                    self.done = true;
                    continue;
                }
                self.scan(&st);
            }
            if !self.pending.is_empty() {
                continue;
            }
            match tokio::time::timeout_at(self.deadline, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => self.done = true,
                Err(_) => {
                    if self.bookmarks {
                        let rv = self.shared.lock().rv;
                        self.pending.push_back(bookmark(&self.target.rt, rv, false));
                    }
                    self.done = true;
                }
            }
        }
    }
}

fn watch_response(shared: Arc<Shared>, rx: watch::Receiver<u64>, req: WatchRequest) -> Response {
    let WatchRequest {
        target,
        sel,
        from,
        timeout,
        bookmarks,
    } = req;
    let (pending, last, epoch) = {
        let st = shared.lock();
        let mut pending = VecDeque::new();
        let last = match from {
            From::After(rv) if rv < st.compacted => {
                let e = ApiError::new(
                    410,
                    format!("too old resource version: {rv} ({})", st.compacted),
                );
                pending.push_back(line("ERROR", &e.status()));
                u64::MAX
            }
            From::After(rv) => rv,
            From::Current | From::Streaming => {
                for o in st.list(&target.rt, target.ns.as_deref()) {
                    if sel.matches(&o) {
                        pending.push_back(line("ADDED", &o));
                    }
                }
                if matches!(from, From::Streaming) {
                    pending.push_back(bookmark(&target.rt, st.rv, true));
                }
                st.rv
            }
        };
        (pending, last, st.epoch)
    };
    let done = last == u64::MAX;
    let w = Watch {
        shared,
        rx,
        target,
        sel,
        last,
        epoch,
        pending,
        deadline: Instant::now() + timeout,
        bookmarks,
        done,
    };
    let stream = futures::stream::unfold(w, Watch::next);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
