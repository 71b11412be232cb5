//! `baseliner run`: the agent in host mode. Captures, attributes, and records learning
//! workloads into the embedded store; serves the API on a root-only unix socket.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use api::{AgentRuntime, CanaryReport, EnforceCounters, EnforcementStatus, Settings};
use learner::{
    alerting::Alerter,
    config::{Config, DEFAULT_CONFIG, LearnConfig},
    control::{Control, SharedRecorder},
    delivery::elasticsearch::{ElasticDelivery, ElasticExporter},
    delivery::{Delivery, Destination, Outbox, Webhook, alertmanager},
    enforce::{canary, enforcer::Enforcer},
    evidence::EvidenceWriter,
    kernel::{KernelStats, Probes},
    kubernetes::{
        attribute::{Attribution, DEFAULT_MAX_HOLD},
        respond::KubeResponder,
        watch::{self, WatchStats},
    },
    recorder::{Recorder, now_ns},
    respond::{NoKubernetes, Responder},
};
use profiles::{evidence::EvidenceStore, mode::Mode, redact::Redactor, store::Store};

use super::session::{CaptureArgs, Sink, drive};

/// Default location of the agent's store.
pub const DEFAULT_STORE: &str = "/var/lib/baseliner";

/// The API socket of the agent that owns `store`, unless one is given.
pub fn socket_path(store: &Path, socket: Option<&Path>) -> PathBuf {
    socket.map_or_else(|| store.join("api.sock"), Path::to_path_buf)
}

/// Options of `baseliner run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    watch: CaptureArgs,
    /// Directory of the embedded store (created when missing, mode 0700).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE, env = "BASELINER_STORE")]
    store: PathBuf,
    /// The API's unix socket (default: api.sock in the store directory).
    #[arg(long, value_name = "PATH", env = "BASELINER_SOCKET")]
    socket: Option<PathBuf>,
    /// Configuration file (TOML; default /etc/baseliner/config.toml when it exists).
    #[arg(long, value_name = "FILE", env = "BASELINER_CONFIG")]
    config: Option<PathBuf>,
    /// Mode of workloads that have none set [default: learn].
    #[arg(long, value_name = "MODE")]
    default_mode: Option<Mode>,
    /// A profile with no new entry for this long is stable, e.g. 90m [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    stable_after: Option<Duration>,
    /// Switch a learning workload to alert once its profile is complete and has had no new
    /// entry for this long, e.g. 24h [default: never; switch with `baseliner mode set`].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    auto_alert_after: Option<Duration>,
    /// Entries a profile may hold before its patterns are widened [default: 1000].
    #[arg(long, value_name = "N")]
    max_entries: Option<usize>,
    /// Also write each alert as one JSON line to this file (`-`: standard output); alerts are
    /// always kept in the store.
    #[arg(long, value_name = "PATH")]
    alerts_jsonl: Option<PathBuf>,
    /// Also POST each alert as JSON to this http(s) URL, signed with the secret in
    /// BASELINER_WEBHOOK_SECRET (or the configuration's); undelivered alerts are retried, also
    /// across restarts.
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// Also send each alert to this Alertmanager (base URL, e.g. http://127.0.0.1:9093; POSTed
    /// to /api/v2/alerts); undelivered alerts are retried, also across restarts.
    #[arg(long, value_name = "URL")]
    alertmanager_url: Option<String>,
    /// Also write each alert as one line of Falco's JSON output to this file (`-`: standard
    /// output), for falcosidekick.
    #[arg(long, value_name = "PATH")]
    falco_jsonl: Option<PathBuf>,
    /// Seconds between writes of changed profiles to the store.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    flush_interval: f64,
    /// Seconds between enforcement canary runs (one also runs at start); 0 turns it off.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    canary_interval: f64,
}

impl Args {
    /// The settings: flags over the configuration file over the defaults.
    fn settings(&self, config: &Config) -> Settings {
        let c = &config.learn;
        LearnConfig {
            default_mode: self.default_mode.or(c.default_mode),
            stable_after: self.stable_after.or(c.stable_after),
            auto_alert_after: self.auto_alert_after.or(c.auto_alert_after),
            max_entries: self.max_entries.or(c.max_entries),
        }
        .settings()
    }
}

struct Learner {
    recorder: SharedRecorder,
    alerter: Alerter,
    runtime: Arc<Mutex<AgentRuntime>>,
    interval: Duration,
    last_flush: Instant,
    last_auto: Instant,
    errors: u64,
    delivery: Option<Delivery>,
    enforcer: Enforcer,
    cgroup_root: PathBuf,
    /// Time between canary runs; `None`: never.
    canary_interval: Option<Duration>,
    last_canary: Option<Instant>,
    canary: Option<CanaryReport>,
    canary_failures: u64,
    /// The enforcement links are pinned.
    pinned: bool,
    /// Keeps every event as evidence; `None` when turned off.
    evidence: Option<EvidenceWriter>,
    /// The evidence's export to Elasticsearch, when configured.
    elastic: Option<ElasticDelivery>,
    /// On Kubernetes: pod metadata for events, the watches' counters, diverging replicas.
    kube: Option<(Attribution, Arc<Mutex<WatchStats>>, watch::DivergentRef)>,
    /// Events ready to handle (reused buffer).
    ready: Vec<profiles::Event>,
}

impl Learner {
    /// Runs the enforcement canary when it is due; a failure is a critical alert.
    fn canary(&mut self, probes: &mut Probes) -> anyhow::Result<()> {
        let Some(every) = self.canary_interval else {
            return Ok(());
        };
        if self.last_canary.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        self.last_canary = Some(Instant::now());
        let report = match canary::run(probes, &self.cgroup_root) {
            Ok(r) => r,
            Err(e) => CanaryReport {
                at_ns: now_ns(),
                detail: format!("the canary could not run: {e:#}"),
                ..CanaryReport::default()
            },
        };
        if report.ok {
            tracing::info!("enforcement canary: {}", report.detail);
        } else {
            self.canary_failures += 1;
            tracing::error!("enforcement canary FAILED: {}", report.detail);
            let mut r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
            self.alerter
                .raise_alert(canary::alert(&report), &mut r)
                .context("raising the canary alert")?;
        }
        self.canary = Some(report);
        Ok(())
    }
}

impl Learner {
    /// Handles events attribution let go (in order).
    fn handle_ready(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        for e in ready.drain(..) {
            self.handle(e);
        }
        self.ready = ready;
    }

    /// Lets held events go whose pod is known now or that waited too long.
    fn release_held(&mut self, now: Instant) {
        if let Some((k, _, _)) = &mut self.kube {
            k.release(now, &mut self.ready);
            self.handle_ready();
        }
    }

    /// Records, scores and keeps one attributed event.
    fn handle(&mut self, e: profiles::Event) {
        let mut e = e;
        if e.workload.k8s.is_some() {
            // A pod's containers are the cgroups its workload is enforced in.
            self.enforcer
                .note_cgroup(&e.workload.id, e.workload.cgroup_id);
        }
        let mut r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        r.redact(&mut e);
        if let Some(w) = &self.evidence {
            w.keep(&e);
        }
        let result = match r.mode(&e.workload.id) {
            Ok(Mode::Learn) => r.learn_redacted(e).map(|_| false),
            Ok(mode) => {
                let list = self.enforcer.allow_list(&e.workload.id);
                self.alerter
                    .handle_redacted(e, &mut r, mode, list.as_deref())
                    .map(|a| !a.is_empty())
            }
            Err(err) => Err(err),
        };
        drop(r);
        if let Ok(true) = result
            && let Some(d) = &mut self.delivery
        {
            // Deliver the new alert now rather than at the next tick (a pass already running
            // sends it before it ends).
            d.poll();
        }
        if let Err(err) = result {
            // One bad event must not stop the agent; the store itself failing does (on flush).
            self.errors += 1;
            tracing::warn!(error = %format!("{err:#}"), "event not handled");
        }
    }
}

impl Sink for Learner {
    fn event(&mut self, e: profiles::Event) -> anyhow::Result<()> {
        if e.workload.id.strip_prefix('/') == Some(canary::CANARY_CGROUP) {
            return Ok(()); // the agent's own canary
        }
        match &mut self.kube {
            Some((k, _, _)) => {
                k.admit(e, Instant::now(), &mut self.ready);
                self.handle_ready();
            }
            None => self.handle(e),
        }
        Ok(())
    }

    fn prompt(&self) -> bool {
        self.recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .any_alerting()
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        self.release_held(Instant::now());
        if let Some((k, watch, divergent)) = &self.kube {
            let mut stats = serde_json::to_value(k.stats()).unwrap_or_default();
            let w = serde_json::to_value(&*watch.lock().unwrap_or_else(|e| e.into_inner()));
            if let (Some(s), Ok(serde_json::Value::Object(w))) = (stats.as_object_mut(), w) {
                s.extend(w);
                let d = divergent.lock().unwrap_or_else(|e| e.into_inner()).clone();
                s.insert("divergent".into(), serde_json::json!(d));
            }
            self.runtime
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .kubernetes = Some(stats);
        }
        // Starts a delivery pass on the runtime (retries, and alerts of a restarted agent);
        // never waits on the network.
        if let Some(d) = &mut self.delivery {
            d.poll();
        }
        if let Some(e) = &mut self.elastic {
            e.poll();
            let stats = serde_json::to_value(e.stats()).ok();
            self.runtime
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elasticsearch = stats;
        }
        let mut r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = self.alerter.tick(now_ns(), &mut r) {
            self.errors += 1;
            tracing::warn!(error = %format!("{err:#}"), "closing rate windows");
        }
        if self.last_auto.elapsed() >= Duration::from_secs(5) {
            let now = now_ns();
            for w in r
                .auto_alert(now)
                .context("switching stable workloads to alert")?
            {
                let rec = api::AuditRecord::change(
                    "agent",
                    &w,
                    api::SET_MODE_ACTION,
                    "alert (was learn): the profile was stable for auto_alert_after".into(),
                    now,
                );
                learner::respond::audit::append(r.store(), &rec)
                    .context("auditing an automatic mode change")?;
            }
            self.last_auto = Instant::now();
        }
        if self.last_flush.elapsed() >= self.interval {
            self.alerter.flush_reviews(&r)?;
            let n = r.flush().context("writing profiles to the store")?;
            if n > 0 {
                tracing::debug!(profiles = n, "profiles written");
                // Give memory freed by the flush and by evicted profiles back to the system
                // (glibc keeps freed heap otherwise).
                // SAFETY: malloc_trim has no preconditions.
                unsafe { libc::malloc_trim(0) };
            }
            self.last_flush = Instant::now();
        }
        let mut rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        rt.recorded = r.recorded;
        rt.evidence_dropped = self
            .evidence
            .as_ref()
            .map_or(0, |w| w.dropped() + w.failed());
        rt.redactions = r.redactions;
        rt.not_recorded = self.errors;
        let a = &self.alerter;
        rt.alerts.scored = a.scored;
        rt.alerts.raised = a.raised;
        rt.alerts.repeats = a.repeats;
        if let Some(d) = &self.delivery {
            let s = d.stats();
            rt.alerts.delivered = s.delivered;
            rt.alerts.failed = s.failed;
            rt.alerts.pending = s.pending as u64;
        }
        Ok(())
    }

    fn sync_kernel(&mut self, probes: &mut Probes) -> anyhow::Result<()> {
        self.canary(probes)?;
        let r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        // Blocking must follow the modes: a failure here stops the agent rather than leave
        // stale allow-lists in force.
        self.enforcer
            .sync(&r, probes)
            .context("updating the enforcement maps")?;
        drop(r);
        if !self.pinned {
            // This agent's allow-lists are loaded: its programs take over from a previous
            // agent's pinned ones, and stay in force if this agent stops.
            let n = probes
                .pin_enforcement()
                .context("pinning the enforcement programs")?;
            tracing::info!(
                links = n,
                dir = learner::kernel::enforce_maps::PIN_DIR,
                "enforcement programs pinned: blocking stays in force across agent restarts"
            );
            self.pinned = true;
        }
        let k = probes.enforce_stats()?;
        let mut rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        rt.enforcement = EnforcementStatus {
            kernel: EnforceCounters {
                exec_checked: k.exec_checked,
                exec_killed: k.exec_killed,
                exec_unchecked: k.exec_unchecked,
                connect_checked: k.connect_checked,
                connect_denied: k.connect_denied,
            },
            workloads: self.enforcer.report().to_vec(),
            canary: self.canary.clone(),
            canary_failures: self.canary_failures,
        };
        Ok(())
    }

    fn kernel_stats(&mut self, stats: &KernelStats, ring: api::RingUse) {
        let mut rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        rt.kernel = stats.to_json();
        rt.ring = ring;
    }
}

/// Creates the store directory readable by root only, and opens the store.
fn open_store(dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the store directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {} to its owner", dir.display()))?;
    // A previous agent that just stopped releases the store within a second or two.
    Store::open_waiting(dir, Duration::from_secs(5)).with_context(|| {
        format!(
            "opening the store at {} (is another agent running?)",
            dir.display()
        )
    })
}

/// The webhook's signing key: BASELINER_WEBHOOK_SECRET, else the configuration's secret file,
/// else its secret.
/// How often memory freed after API calls is given back to the system.
const API_TRIM_EVERY: Duration = Duration::from_secs(2);

/// Threads serving the API.
const API_THREADS: usize = 2;

/// How long API calls in flight may take to finish when the agent stops.
const API_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// New alerts the live stream holds for a slow client before it tells the client it lagged.
const ALERT_STREAM_BACKLOG: usize = 1024;

fn webhook_secret(config: &Config) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(s) = std::env::var_os("BASELINER_WEBHOOK_SECRET").filter(|s| !s.is_empty()) {
        return Ok(Some(s.into_encoded_bytes()));
    }
    if let Some(p) = &config.alerts.webhook_secret_file {
        let text = std::fs::read(p)
            .with_context(|| format!("reading the webhook secret {}", p.display()))?;
        let trimmed = text.trim_ascii_end().to_vec();
        anyhow::ensure!(
            !trimmed.is_empty(),
            "the webhook secret {} is empty",
            p.display()
        );
        return Ok(Some(trimmed));
    }
    Ok(config
        .alerts
        .webhook_secret
        .as_ref()
        .map(|s| s.as_bytes().to_vec()))
}

/// An append-mode output at `path` (`-`: standard output), if given; `what` names it in errors.
fn open_output(
    path: Option<&PathBuf>,
    what: &str,
) -> anyhow::Result<Option<Box<dyn std::io::Write + Send>>> {
    Ok(match path {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening the {what} {}", p.display()))?,
        )),
    })
}

/// Connects to the Kubernetes API server and starts the pod and namespace watches and the
/// annotation modes on `rt`; returns their shared state and how long events may wait for
/// their pod.
fn start_kubernetes(
    config: &learner::config::KubernetesConfig,
    rt: &tokio::runtime::Runtime,
    recorder: &SharedRecorder,
) -> anyhow::Result<(watch::Shared, Duration, kube::Client)> {
    let node = config.node().map_err(anyhow::Error::msg)?;
    let client = rt
        .block_on(kube::Client::try_default())
        .context("connecting to the Kubernetes API server (in a pod: its service account; else KUBECONFIG or ~/.kube/config)")?;
    let shared = watch::Shared::new();
    let _guard = rt.enter();
    let publish_every = config
        .publish_every
        .unwrap_or(learner::kubernetes::share::PUBLISH_EVERY);
    watch::spawn(
        client.clone(),
        &node,
        &shared,
        recorder.clone(),
        publish_every,
    );
    let hold = config.hold.unwrap_or(DEFAULT_MAX_HOLD);
    tracing::info!(%node, hold = %humantime::format_duration(hold),
        "Kubernetes: watching this node's pods and the namespaces");
    Ok((shared, hold, client))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut opts, duration) = args.watch.options()?;
    let cgroup_root = learner::attribution::cgroup::cgroup2_mount()
        .context("finding the cgroup2 hierarchy (enforcement attaches there)")?;
    opts.load.enforce_root = Some(cgroup_root.clone());
    let interval = Duration::try_from_secs_f64(args.flush_interval).map_err(|_| {
        anyhow::anyhow!("--flush-interval must be a non-negative number of seconds")
    })?;
    let config = match &args.config {
        Some(p) => Config::load(p, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    let settings = args.settings(&config);
    let redactor = Redactor::new(&config.redact)?;
    let webhook = match args
        .webhook_url
        .as_ref()
        .or(config.alerts.webhook_url.as_ref())
    {
        None => None,
        Some(url) => {
            let secret = webhook_secret(&config)?;
            if secret.is_none() {
                tracing::warn!("no webhook secret: alerts are sent unsigned");
            }
            Some(Webhook::new(url, secret.as_deref())?)
        }
    };
    let alertmanager = match args
        .alertmanager_url
        .as_ref()
        .or(config.alerts.alertmanager_url.as_ref())
    {
        None => None,
        Some(url) => Some(alertmanager::sender(url)?),
    };
    let store = open_store(&args.store)?;
    let socket = socket_path(&args.store, args.socket.as_deref());
    tracing::info!(store = %args.store.display(), socket = %socket.display(),
        default_mode = %settings.default_mode,
        stable_after = %humantime::format_duration(settings.stable_after), "agent starting");
    let mut recorder = Recorder::with_settings(store, redactor, settings);
    // Down for longer than a few flushes: what was still learning may have missed behaviour.
    let threshold = Duration::from_secs(30).max(interval * 3);
    recorder
        .note_downtime(now_ns(), threshold)
        .context("checking for downtime")?;
    let recorder: SharedRecorder = Arc::new(Mutex::new(recorder));
    let runtime = Arc::new(Mutex::new(AgentRuntime {
        pid: std::process::id(),
        started_ns: now_ns(),
        store: args.store.display().to_string(),
        recorded: 0,
        redactions: 0,
        not_recorded: 0,
        kernel: serde_json::Value::Null,
        alerts: Default::default(),
        enforcement: Default::default(),
        ring: Default::default(),
        evidence_dropped: 0,
        elasticsearch: None,
        kubernetes: None,
    }));
    let (alert_stream, _) = tokio::sync::broadcast::channel(ALERT_STREAM_BACKLOG);
    let evidence = if config.evidence.enabled {
        let r = recorder.lock().unwrap_or_else(|e| e.into_inner());
        let ev = EvidenceStore::open(r.store(), config.evidence.retention())
            .context("opening the evidence store")?;
        Some(Arc::new(Mutex::new(ev)))
    } else {
        None
    };
    let elastic = match (&config.elasticsearch, &evidence) {
        (Some(c), Some(ev)) => {
            let exporter = {
                let r = recorder.lock().unwrap_or_else(|e| e.into_inner());
                ElasticExporter::new(c.clone(), r.store()).context("the Elasticsearch export")?
            };
            tracing::info!(url = %c.url, "exporting the evidence to Elasticsearch");
            Some(ElasticDelivery::new(exporter, ev.clone(), recorder.clone()))
        }
        (Some(_), None) => {
            anyhow::bail!("[elasticsearch] exports the evidence store, which [evidence] turns off")
        }
        _ => None,
    };
    // The API (and the Kubernetes watches) have their own runtime and threads: a burst of API calls never holds
    // up the event loop, and the event loop never holds up an API answer served from the cache.
    let api_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .thread_name("api")
        .enable_all()
        .build()?;
    let kube = match &config.kubernetes {
        k if k.enabled => Some(start_kubernetes(k, &api_rt, &recorder)?),
        _ => None,
    };
    let mut control = Control::new(recorder.clone(), Some(runtime.clone()))
        .with_alert_stream(alert_stream.clone());
    if let Some(ev) = &evidence {
        control = control.with_evidence(ev.clone(), config.evidence.pci_paths.clone());
    }
    if let Some((shared, _, client)) = &kube {
        control = control
            .with_mode_sources(shared.mode_sources.clone())
            .with_kubernetes(learner::control::KubeContext {
                cache: shared.cache.clone(),
                client: client.clone(),
            });
    }
    let control = Arc::new(control);
    let tcp_tls = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(cert), Some(key)) => Some(api::serve::tls_config(&api::serve::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })?),
        _ => None,
    };
    let alerts_out = open_output(
        args.alerts_jsonl.as_ref().or(config.alerts.jsonl.as_ref()),
        "alert output",
    )?;
    let falco_out = open_output(
        args.falco_jsonl
            .as_ref()
            .or(config.alerts.falco_jsonl.as_ref()),
        "Falco output",
    )?;
    let mut alerter = Alerter::new(alerts_out).with_stream(alert_stream);
    if !config.respond.rules.is_empty() {
        tracing::info!(
            rules = config.respond.rules.len(),
            "automated responses configured"
        );
        let hooks: Box<dyn learner::respond::KubeHooks> = match &kube {
            Some((_, _, client)) => {
                let mut r = KubeResponder::new(client.clone(), api_rt.handle(), recorder.clone());
                if let (Ok(ns), Ok(pod)) =
                    (std::env::var("POD_NAMESPACE"), std::env::var("POD_NAME"))
                {
                    r = r.protecting(&ns, &pod);
                }
                Box::new(r)
            }
            None => Box::new(NoKubernetes),
        };
        alerter = alerter.with_responder(Responder::new(config.respond.clone(), hooks));
    }
    if let Some(out) = falco_out {
        alerter = alerter.with_falco(out);
    }
    let mut senders = Vec::new();
    if let Some(webhook) = webhook {
        tracing::info!(url = %webhook.url(), "delivering alerts to a webhook");
        senders.push((Destination::Webhook, webhook));
    }
    if let Some(am) = alertmanager {
        tracing::info!(url = %am.url(), "delivering alerts to Alertmanager");
        senders.push((Destination::Alertmanager, am));
    }
    let mut delivery = None;
    if !senders.is_empty() {
        let outbox = {
            let r = recorder.lock().unwrap_or_else(|e| e.into_inner());
            Outbox::load(r.store(), now_ns()).context("reading the alert outbox")?
        }
        .with_destinations(senders.iter().map(|(d, _)| *d).collect());
        tracing::info!(pending = outbox.pending(), "alert outbox loaded");
        let outbox = Arc::new(Mutex::new(outbox));
        alerter = alerter.with_outbox(outbox.clone());
        delivery = Some(Delivery::new(recorder.clone(), outbox, senders));
    }
    let mut learner = Learner {
        recorder: recorder.clone(),
        alerter,
        runtime,
        interval,
        last_flush: Instant::now(),
        last_auto: Instant::now(),
        errors: 0,
        delivery,
        enforcer: Enforcer::new(&cgroup_root),
        cgroup_root,
        canary_interval: (args.canary_interval > 0.0)
            .then(|| Duration::try_from_secs_f64(args.canary_interval))
            .transpose()
            .map_err(|_| anyhow::anyhow!("--canary-interval must be a number of seconds"))?,
        last_canary: None,
        canary: None,
        canary_failures: 0,
        pinned: false,
        evidence: evidence
            .clone()
            .map(EvidenceWriter::start)
            .transpose()
            .context("starting the evidence writer")?,
        elastic,
        kube: kube.map(|(shared, hold, _)| {
            (
                Attribution::new(shared.cache.clone(), hold),
                shared.stats.clone(),
                shared.divergent.clone(),
            )
        }),
        ready: Vec::new(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = api_rt.block_on(api::serve::ApiSocket::bind(&socket))?;
    let mut servers =
        vec![api_rt.spawn(api.serve(api::app(control.clone()), stop_signal(stopped.clone())))];
    // Bursts of API calls leave freed buffers that glibc keeps: give them back now and then.
    api_rt.spawn(async {
        let mut every = tokio::time::interval(API_TRIM_EVERY);
        loop {
            every.tick().await;
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    });
    if let Some(addr) = config.api.listen {
        let listener = api_rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot serve the API on {addr}"))?;
        let auth = api::auth::Auth::Tokens(Arc::new(config.api.tokens.clone()));
        let app = api::app_with(control.clone(), auth);
        tracing::info!(%addr, tls = tcp_tls.is_some(), tokens = config.api.tokens.len(),
            "serving the API on TCP");
        servers.push(api_rt.spawn(api::serve::serve_tcp(
            listener,
            tcp_tls.clone(),
            app,
            stop_signal(stopped.clone()),
        )));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let r = drive(&opts, duration, &mut learner).await;
        // Events still waiting for their pod go on as they are.
        if let Some((k, _, _)) = &mut learner.kube {
            k.drain(&mut learner.ready);
            learner.handle_ready();
        }
        // A final flush, whatever the interval, with every buffered event.
        if let Some(w) = &mut learner.evidence {
            w.finish();
            if w.dropped() + w.failed() > 0 {
                tracing::warn!(
                    dropped = w.dropped(),
                    failed = w.failed(),
                    "events not kept as evidence"
                );
            }
        }
        learner.last_flush = Instant::now() - learner.interval;
        learner.tick().and(r)
    });
    let _ = stop.send(true);
    api_rt.block_on(async {
        for server in servers {
            // Open live streams would hold a graceful shutdown forever: give calls in flight a
            // moment, then drop the rest with the runtime.
            match tokio::time::timeout(API_SHUTDOWN_GRACE, server).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "API server stopped with an error"),
                Err(_) => tracing::debug!("API connections still open at shutdown: dropped"),
                _ => {}
            }
        }
    });
    api_rt.shutdown_timeout(API_SHUTDOWN_GRACE);
    // Dropping the runtime drops the API server's tasks and their handles on the recorder.
    drop(rt);
    let (stats, mut cap) = result?;
    if learner.pinned && !learner.enforcer.enforcing() {
        // Nothing to keep in force after this agent: leave no programs behind.
        cap.probes_mut()
            .unpin_enforcement()
            .context("removing the enforcement pins")?;
    }
    let errors = learner.errors;
    let (scored, raised) = (learner.alerter.scored, learner.alerter.raised);
    if let Some(d) = &learner.delivery {
        let s = d.stats();
        eprintln!(
            "alert delivery: {} alerts delivered, {} failed sends, {} pending",
            s.delivered, s.failed, s.pending
        );
    }
    drop(learner);
    let r = recorder.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "recorded {} events into {} profiles ({} secrets redacted, {errors} events not handled); \
         scored {scored} events, raised {raised} alerts; kernel: {}",
        r.recorded,
        r.profile_keys()?.len(),
        r.redactions,
        stats.to_json()["total"]
    );
    // Release the store before detaching the probes, which takes a while: a CLI command run
    // right after the agent stops finds the store free.
    drop(r);
    drop(recorder);
    drop(cap);
    Ok(ExitCode::SUCCESS)
}
