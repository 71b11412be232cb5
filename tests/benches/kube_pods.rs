//! What the node's pod cache costs: heap bytes held for 1,000 pods of this node, served by the
//! fake API server on loopback to the real watches (`kube::Client`, list + watch with the field
//! selector `spec.nodeName`), beside 1,000 pods of another node that must not be kept.
//! Target: ≤ 10 MB.
//!
//! Heap use is counted exactly by this binary's allocator, so the figure does not depend on the
//! machine's load. Printed: the heap the watches hold once the cache is full (cache, watch
//! buffers, client), and the cache's own share (the same pods put into a fresh cache).
//!
//! `cargo bench -p baseliner-tests --bench kube_pods`; `BENCH_PODS` (default 1000).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use baseliner_tests::{bench_main, env_num, fake_kube::FakeKube};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use learner::{
    kubernetes::{identity::PodInfo, pods::PodCache, watch},
    recorder::Recorder,
};
use profiles::{mode::Mode, redact::Redactor, store::Store};
use serde_json::json;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TARGET_MB: f64 = 10.0;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn mb(bytes: isize) -> f64 {
    bytes as f64 / 1e6
}

/// A pod as a Deployment's ReplicaSet makes it: two containers, the usual labels and
/// annotations, status with IPs, conditions and container statuses.
fn pod(i: usize, node: &str) -> Pod {
    let app = format!("app-{}", i % 50);
    let hash = format!("{:010x}", i * 7919);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{app}-{hash}-{i:05}"), "namespace": format!("team-{}", i % 10),
            "uid": format!("{:08x}-0000-4000-8000-{:012x}", i, i),
            "labels": { "app": app, "pod-template-hash": hash, "tier": "backend",
                        "version": "v1.2.3", "team": format!("team-{}", i % 10) },
            "annotations": { "baseliner.io/mode": "alert",
                             "prometheus.io/scrape": "true", "prometheus.io/port": "9090" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{app}-{hash}"), "uid": "rs", "controller": true }]
        },
        "spec": {
            "nodeName": node,
            "containers": [
                { "name": "app", "image": format!("registry.example/{app}:1.2.3"),
                  "ports": [{ "containerPort": 8080 }],
                  "env": [{ "name": "LOG_LEVEL", "value": "info" }] },
                { "name": "proxy", "image": "registry.example/envoy:1.31.0" }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
            "podIPs": [{ "ip": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256) }],
            "conditions": [{ "type": "Ready", "status": "True" },
                           { "type": "ContainersReady", "status": "True" }],
            "containerStatuses": [
                { "name": "app", "image": format!("registry.example/{app}:1.2.3"),
                  "ready": true, "restartCount": 0,
                  "imageID": format!("registry.example/{app}@sha256:{:064x}", i),
                  "containerID": format!("containerd://{:064x}", i * 2) },
                { "name": "proxy", "image": "registry.example/envoy:1.31.0",
                  "ready": true, "restartCount": 0,
                  "imageID": format!("registry.example/envoy@sha256:{:064x}", 7),
                  "containerID": format!("containerd://{:064x}", i * 2 + 1) }
            ]
        }
    }))
    .expect("a valid pod")
}

fn bench() -> Result<()> {
    let n: usize = env_num("BENCH_PODS", 1000)?;
    let fake = FakeKube::start();
    for t in 0..10 {
        fake.upsert::<Namespace>(&serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": format!("team-{t}") }
        }))?);
    }
    let pods: Vec<Pod> = (0..n).map(|i| pod(i, "node-a")).collect();
    for (i, p) in pods.iter().enumerate() {
        fake.upsert(p);
        fake.upsert(&pod(n + i, "node-b"));
    }
    let dir = tempfile_dir()?;
    let recorder = Arc::new(Mutex::new(Recorder::new(
        Store::open(&dir)?,
        Redactor::default(),
        Mode::Learn,
    )));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = fake.client();
    std::thread::sleep(Duration::from_millis(200));
    let before = live() as isize;
    let shared = watch::Shared::new();
    {
        let _guard = rt.enter();
        watch::spawn(
            client,
            "node-a",
            &shared,
            recorder.clone(),
            Duration::from_secs(3600),
        );
    }
    let started = Instant::now();
    while shared.cache.read().map(|c| c.len()).unwrap_or(0) < n {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the cache never held {n} pods"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let synced = started.elapsed();
    // Let list buffers go and the mode controller finish.
    std::thread::sleep(Duration::from_secs(2));
    let watching = live() as isize - before;
    let held = shared.cache.read().map(|c| c.len()).unwrap_or(0);
    ensure!(
        held == n,
        "the cache holds {held} pods, not {n}: another node's pods leaked in"
    );

    // The cache's own share: the same pods into a fresh cache.
    let before_cache = live() as isize;
    let mut cache = PodCache::new();
    for p in pods.iter().filter_map(PodInfo::from_pod) {
        cache.apply_pod(p);
    }
    let cache_bytes = live() as isize - before_cache;
    drop(pods);
    println!(
        "pod cache, {n} pods of this node (and {n} of another node, not kept), synced in {} ms:",
        synced.as_millis()
    );
    println!(
        "  heap held by the watches once synced (cache, watch state, client): {:.2} MB",
        mb(watching)
    );
    println!(
        "  of which the cache itself: {:.2} MB ({} bytes a pod)",
        mb(cache_bytes),
        cache_bytes / n as isize
    );
    println!(
        "  target ≤ {TARGET_MB} MB: {}",
        if mb(watching) <= TARGET_MB {
            "met"
        } else {
            "missed"
        }
    );
    drop(cache);
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("baseliner-kube-pods-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn main() -> ExitCode {
    bench_main("kube_pods bench", bench)
}
