//! A fake Kubernetes API server on loopback for tests without a cluster.
//!
//! [`FakeKube::start`] serves plain HTTP on `127.0.0.1:<port>` from its own thread and tokio
//! runtime, so async and sync tests can use it alike; [`FakeKube::client`] is a real
//! [`kube::Client`] pointed at it. It serves the resources of [`ResourceType`]'s defaults
//! (pods, namespaces, nodes, events in both groups, configmaps, network policies, replica sets,
//! deployments, jobs, cron jobs and `workloadprofiles.baseliner.io`) and any type
//! [`FakeKube::register`]ed: get, list and watch with field and label selectors, create,
//! replace, merge / strategic (as merge) / JSON patches, server-side apply with field managers
//! and list-maps, the status subresource, delete and delete-collection. Every change gets the
//! next global resource version. Writes are recorded ([`FakeKube::writes`]) and failures can be
//! injected ([`FakeKube::fail_next`]).
//!
//! Not emulated: authentication and RBAC, admission (a namespace need not exist), graceful
//! deletion and finalizers (deletes are immediate; deleting a namespace deletes its objects),
//! paging (`limit` and `continue` are ignored; every list is one page), YAML bodies, strategic
//! merge directives (`$patch`, `$retainKeys`), set-based lists in apply, defaulting and
//! validation.

mod fields;
mod select;
mod server;
mod store;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use self::server::Shared;
use self::store::State;

/// A resource type the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group ("" for the core group).
    pub group: String,
    /// API version ("v1").
    pub version: String,
    /// Kind ("Pod").
    pub kind: String,
    /// Plural resource name in URLs ("pods").
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `.status` is a subresource: the main resource's writes keep it and `/status`
    /// writes change only it.
    pub status_subresource: bool,
}

impl ResourceType {
    /// A resource type without a status subresource.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status_subresource: false,
        }
    }

    /// The same type with a status subresource.
    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// `apiVersion` of its objects: "v1" or "group/version".
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name tests use for it: the plural, qualified by the group outside the core group
    /// ("pods", "networkpolicies.networking.k8s.io"). Bare plurals are accepted too.
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn of<K: kube::Resource<DynamicType = ()>>(namespaced: bool) -> Self {
        ResourceType::new(
            &K::group(&()),
            &K::version(&()),
            &K::kind(&()),
            &K::plural(&()),
            namespaced,
        )
    }
}

/// One recorded non-GET request.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// HTTP method ("POST", "PUT", "PATCH", "DELETE").
    pub method: String,
    /// URL path.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header as sent.
    pub content_type: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl Write {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake API server; stopped on drop.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts a fake on 127.0.0.1 with an ephemeral port and no objects.
    pub fn start() -> FakeKube {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fake-kube".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-kube-rt")
                    .enable_all()
                    .build()
                    .expect("building the fake's runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("binding 127.0.0.1");
                    let addr = listener.local_addr().expect("local address");
                    let _ = ready_tx.send((addr, tokio::runtime::Handle::current()));
                    tokio::select! {
                        r = axum::serve(listener, app) => r.expect("serving"),
                        _ = shutdown_rx => {}
                    }
                });
                rt.shutdown_background();
            })
            .expect("spawning the fake's thread");
        let (addr, handle) = ready_rx.recv().expect("the fake started");
        FakeKube {
            shared,
            addr,
            handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client configuration for the fake: no auth, default namespace "default".
    pub fn config(&self) -> kube::Config {
        kube::Config::new(self.url().parse().expect("the fake's URL parses"))
    }

    /// A real [`kube::Client`] talking to the fake. Its background task runs on the caller's
    /// tokio runtime, or on the fake's when called outside one.
    pub fn client(&self) -> kube::Client {
        let build = || kube::Client::try_from(self.config()).expect("building a kube client");
        if tokio::runtime::Handle::try_current().is_ok() {
            build()
        } else {
            let _guard = self.handle.enter();
            build()
        }
    }

    /// A kubeconfig (JSON, which is YAML) for a process started by the test: one cluster at
    /// the fake's URL, namespace "default", no credentials.
    pub fn kubeconfig(&self) -> String {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
        })
        .to_string()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Serves another resource type (replacing one with the same group, version and plural).
    pub fn register(&self, rt: ResourceType) {
        self.state().register(rt);
    }

    /// Makes the list at `path` (dotted field names from the object root, e.g. "spec.parts")
    /// of `resource` a list-map for server-side apply, its elements keyed by `keys`
    /// (comma-separated field names, e.g. "node").
    pub fn list_map(&self, resource: &str, path: &str, keys: &str) {
        let mut st = self.state();
        let key = st
            .by_name(resource)
            .map_or_else(|| resource.to_string(), |rt| rt.key());
        let entry = st.list_maps.entry(key).or_default();
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        entry.0.retain(|(p, _)| *p != path);
        entry.0.push((
            path,
            keys.split(',').map(|k| k.trim().to_string()).collect(),
        ));
    }

    fn type_of<K>(&self) -> ResourceType
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let mut st = self.state();
        let (group, version, plural) = (K::group(&()), K::version(&()), K::plural(&()));
        if let Some(rt) = st.resolve(&group, &version, &plural) {
            return rt;
        }
        let cluster = std::any::TypeId::of::<K::Scope>()
            == std::any::TypeId::of::<k8s_openapi::ClusterResourceScope>();
        let rt = ResourceType::of::<K>(!cluster);
        st.register(rt.clone());
        rt
    }

    fn type_named(&self, resource: &str) -> ResourceType {
        self.state()
            .by_name(resource)
            .unwrap_or_else(|| panic!("the fake serves no resource {resource:?}"))
    }

    /// Stores a typed object as given (creating or replacing it, namespace "default" when it
    /// has none), filling uid, creationTimestamp and the next resourceVersion, and notifies
    /// watches. Returns the stored object. An unknown type is registered on the fly.
    pub fn upsert<K>(&self, obj: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
        K::Scope: 'static,
    {
        let rt = self.type_of::<K>();
        let v = serde_json::to_value(obj).expect("serialising the object");
        let stored = self.state().upsert(&rt, v);
        serde_json::from_value(stored).expect("the stored object deserialises")
    }

    /// Stores a JSON object of a served type (found by `apiVersion` and `kind`) as given; see
    /// [`FakeKube::upsert`].
    pub fn upsert_value(&self, obj: Value) -> Value {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let rt = self
            .state()
            .by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("the fake serves no {api_version} {kind}"));
        self.state().upsert(&rt, obj)
    }

    /// A typed object (`ns` is ignored for cluster-scoped kinds).
    pub fn get<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
        K::Scope: 'static,
    {
        let rt = self.type_of::<K>();
        let v = self.state().get(&rt, ns, name).cloned()?;
        Some(serde_json::from_value(v).expect("the stored object deserialises"))
    }

    /// Typed objects in `ns` ("" for all namespaces), in namespace and name order.
    pub fn list<K>(&self, ns: &str) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
        K::Scope: 'static,
    {
        let rt = self.type_of::<K>();
        let ns = (!ns.is_empty()).then_some(ns);
        self.state()
            .list(&rt, ns)
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("the stored object deserialises"))
            .collect()
    }

    /// Deletes a typed object (watches see DELETED); false when it did not exist.
    pub fn delete<K>(&self, ns: &str, name: &str) -> bool
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let rt = self.type_of::<K>();
        self.state().delete(&rt, ns, name, false).is_ok()
    }

    /// An object of `resource` ("pods", "workloadprofiles", "events.events.k8s.io", ...) as
    /// JSON.
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let rt = self.type_named(resource);
        self.state().get(&rt, ns, name).cloned()
    }

    /// Objects of `resource` in `ns` ("" for all namespaces) as JSON.
    pub fn objects(&self, resource: &str, ns: &str) -> Vec<Value> {
        let rt = self.type_named(resource);
        let ns = (!ns.is_empty()).then_some(ns);
        self.state().list(&rt, ns)
    }

    /// Deletes an object of `resource`; false when it did not exist.
    pub fn delete_object(&self, resource: &str, ns: &str, name: &str) -> bool {
        let rt = self.type_named(resource);
        self.state().delete(&rt, ns, name, false).is_ok()
    }

    /// Every non-GET request so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.state().writes.clone()
    }

    /// Forgets the recorded writes and requests.
    pub fn clear_writes(&self) {
        let mut st = self.state();
        st.writes.clear();
        st.requests.clear();
    }

    /// Every request so far as "METHOD /path?query", GETs and watches included.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// The next request with `method` ("*" for any) whose path starts with `path_prefix`
    /// answers `status` with a Kubernetes `Status` body. kube's client retries 429, 503 and
    /// 504 by itself.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16) {
        self.fail_times(method, path_prefix, status, 1);
    }

    /// Like [`FakeKube::fail_next`] for the next `times` matching requests.
    pub fn fail_times(&self, method: &str, path_prefix: &str, status: u16, times: usize) {
        self.state().failures.push(store::Failure {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            status,
            remaining: times,
        });
    }

    /// The last resource version handed out.
    pub fn resource_version(&self) -> u64 {
        self.state().rv
    }

    /// Forgets history: every resource version handed out so far becomes too old, so a watch
    /// from one gets a 410 Gone ERROR event (as after an etcd compaction), which makes kube's
    /// watcher list again. Combine with [`FakeKube::close_watches`] to force that on open
    /// watchers.
    pub fn compact(&self) {
        let mut st = self.state();
        st.compacted = st.rv + 1;
        st.log.clear();
    }

    /// Ends every open watch stream (clients see the stream end and re-watch).
    pub fn close_watches(&self) {
        let mut st = self.state();
        st.epoch += 1;
        let rv = st.rv;
        st.notify.send_replace(rv);
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
