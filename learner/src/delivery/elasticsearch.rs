//! Export of the evidence store to Elasticsearch (or OpenSearch) through the `_bulk` API.
//!
//! Every event the evidence store has written goes out once, in write order, as a JSON document
//! in a daily index `<index_prefix>-YYYY.MM.DD` (the UTC day of the event's `ts_ns`), with an
//! `@timestamp` (RFC 3339) and `host.name` added. Before the first batch the exporter installs
//! an index template (`PUT _index_template/<index_prefix>`) so those indices get proper field
//! types; it is retried with backoff until Elasticsearch takes it (it may start after the agent).
//!
//! # Delivery guarantees
//!
//! The exporter keeps a durable cursor ([`BlockCursor`]) in the store (tree
//! [`CURSOR_TREE`], key [`CURSOR_KEY`]). One [`ElasticExporter::step`] reads up to
//! `batch_events` events after the cursor (the evidence lock is held only for that read, never
//! across the HTTP call), POSTs them as one NDJSON bulk request of `create` actions, and advances
//! and flushes the cursor only once the batch is *settled*:
//!
//! - HTTP 429 / 5xx (or any non-2xx answer), a transport failure or an unreadable answer: the
//!   whole batch is retried later with exponential backoff ([`super::outbox::backoff`]); the
//!   cursor does not move. (413: the batch is halved, and grows back after successes.)
//! - An item answered 2xx is delivered; an item answered 409 (the document exists) is too: it
//!   was sent before, by an attempt whose answer was lost or whose cursor was not saved.
//! - An item answered 429 or 5xx: the batch is retried (its delivered items then answer 409).
//! - An item answered another 4xx (a mapping error, say) is *rejected*: counted, logged once with
//!   Elasticsearch's reason, and skipped, so one bad document never blocks the pipeline.
//!
//! Each document's `_id` is derived from its content (128 bits of the SHA-256 of the event's
//! JSON and the host name), so a batch sent twice creates no duplicates whatever the batch
//! boundaries: the evidence store's reader gives the position after a batch, not each event's
//! position, and content ids stay stable even if `batch_events` changes between two runs.
//! Events equal in every field (time to the nanosecond, pid, tid, ...) share an id: they are one
//! document.
//!
//! # Driving it
//!
//! [`ElasticDelivery`] mirrors the alert [`super::Delivery`]: the agent calls
//! [`ElasticDelivery::poll`] from its tick; when the exporter is due (every `flush_interval`,
//! at once while full batches keep coming, after the backoff following a failure) it spawns a
//! pass on the current tokio runtime that runs steps until the evidence is drained or an
//! attempt fails. `poll` never waits on the network. [`ElasticDelivery::stats`] gives the
//! counters for the agent's status.

use std::{
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use profiles::{
    Event,
    evidence::{BlockCursor, EvidenceStore},
    store::{Store, StoreError},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::outbox::backoff;
use crate::recorder::Recorder;

/// The store tree holding the exporter's cursor.
pub const CURSOR_TREE: &str = "elasticsearch";
/// The key of the cursor in [`CURSOR_TREE`].
pub const CURSOR_KEY: &[u8] = b"cursor";
/// The default index prefix.
pub const DEFAULT_INDEX_PREFIX: &str = "baseliner-events";

/// Longest error text kept from an Elasticsearch answer.
const MAX_ERROR_TEXT: usize = 300;

/// `[elasticsearch]`: export the evidence store to Elasticsearch. Its `Debug` never shows the
/// password or the API key.
///
/// ```toml
/// [elasticsearch]
/// url = "https://es.example:9200"   # base URL (http or https)
/// index_prefix = "baseliner-events" # daily indices <prefix>-YYYY.MM.DD
/// username = "baseliner"            # basic authentication (with password) ...
/// password = "..."
/// api_key = "..."                   # ... or an API key (the base64 "encoded" value)
/// ca_file = "/etc/baseliner/es-ca.pem"  # also trust this PEM CA (self-signed clusters)
/// batch_events = 1000               # events per bulk request at most
/// max_batch_bytes = "5MiB"          # bytes per bulk request at most (or a number)
/// flush_interval = "2s"             # look for new evidence this often
/// timeout = "30s"                   # one request at most this long
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Base URL of the cluster (http or https), e.g. `https://127.0.0.1:9200`. Required.
    pub url: String,
    /// Indices are named `<index_prefix>-YYYY.MM.DD`; the index template is named
    /// `<index_prefix>`.
    pub index_prefix: String,
    /// Basic authentication user (with `password`).
    pub username: Option<String>,
    /// Basic authentication password.
    pub password: Option<String>,
    /// API key, sent as `Authorization: ApiKey <api_key>` (instead of basic authentication).
    pub api_key: Option<String>,
    /// A PEM file of CA certificates to trust besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Events per bulk request at most.
    pub batch_events: usize,
    /// Bytes of a bulk request body at most (a single larger event still goes alone).
    #[serde(deserialize_with = "crate::config::de_size")]
    pub max_batch_bytes: u64,
    /// How often to look for new evidence ("2s").
    #[serde(deserialize_with = "de_duration")]
    pub flush_interval: Duration,
    /// How long one request may take ("30s").
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        ElasticConfig {
            url: String::new(),
            index_prefix: DEFAULT_INDEX_PREFIX.into(),
            username: None,
            password: None,
            api_key: None,
            ca_file: None,
            batch_events: 1000,
            max_batch_bytes: 5 << 20,
            flush_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ElasticConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("ElasticConfig")
            .field("url", &self.url)
            .field("index_prefix", &self.index_prefix)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("api_key", &hidden(&self.api_key))
            .field("ca_file", &self.ca_file)
            .field("batch_events", &self.batch_events)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ElasticConfig {
    /// Checks the section: an http(s) URL with a host and without credentials, a valid index
    /// prefix, authentication either basic (user and password) or an API key, credentials
    /// only over https (or to a loopback host), and positive sizes and intervals.
    pub fn validate(&self) -> Result<(), String> {
        self.parsed_url().map(|_| ())?;
        validate_prefix(&self.index_prefix)?;
        match (&self.username, &self.password, &self.api_key) {
            (Some(_), None, _) => {
                return Err("[elasticsearch]: username is set but password is not".into());
            }
            (None, Some(_), _) => {
                return Err("[elasticsearch]: password is set but username is not".into());
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(
                    "[elasticsearch]: set either username and password or api_key, not both".into(),
                );
            }
            _ => {}
        }
        if self.api_key.as_deref() == Some("") {
            return Err("[elasticsearch]: api_key is empty".into());
        }
        if self.username.as_deref() == Some("") {
            return Err("[elasticsearch]: username is empty".into());
        }
        if self.batch_events == 0 {
            return Err("[elasticsearch]: batch_events must be at least 1".into());
        }
        if self.max_batch_bytes == 0 {
            return Err("[elasticsearch]: max_batch_bytes must be more than 0".into());
        }
        if self.flush_interval.is_zero() {
            return Err("[elasticsearch]: flush_interval must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("[elasticsearch]: timeout must be more than 0".into());
        }
        Ok(())
    }

    /// The base URL, checked (see [`ElasticConfig::validate`]).
    fn parsed_url(&self) -> Result<reqwest::Url, String> {
        let bad = |why: &str| Err(format!("[elasticsearch]: url {:?} {why}", self.url));
        if self.url.is_empty() {
            return Err("[elasticsearch]: url is required (e.g. \"http://127.0.0.1:9200\")".into());
        }
        let url = match reqwest::Url::parse(&self.url) {
            Ok(u) => u,
            Err(e) => {
                return bad(&format!(
                    "is not a valid URL ({e}): expected an http or https URL such as \
                     \"http://127.0.0.1:9200\""
                ));
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            return bad("must be an http or https URL");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return bad("has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad(
                "holds credentials: set username and password (or api_key) instead, so they \
                 are never logged",
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return bad("must not have a query or a fragment");
        }
        let has_credentials = self.password.is_some() || self.api_key.is_some();
        if has_credentials && url.scheme() == "http" && !is_loopback(&url) {
            return bad(
                "is plain http to a remote host: the credentials would cross the network in \
                 clear; use https",
            );
        }
        Ok(url)
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Elasticsearch's index name rules, for `<prefix>-YYYY.MM.DD`: lower case letters, digits,
/// `-`, `_`, `.`; not starting with `-`, `_`, `+` or `.` (hidden indices).
fn validate_prefix(prefix: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("[elasticsearch]: index_prefix {prefix:?} {why}"));
    if prefix.is_empty() {
        return bad("is empty");
    }
    if prefix.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if prefix.starts_with(['-', '_', '+', '.']) {
        return bad("must not start with '-', '_', '+' or '.'");
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return bad(&format!(
            "holds {c:?}: index names take lower-case letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ElasticError {
    /// The configuration is not valid.
    #[error("{0}")]
    Config(String),
    /// The CA file could not be used.
    #[error("[elasticsearch]: cannot use ca_file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the Elasticsearch client: {0}")]
    Client(#[from] reqwest::Error),
    /// The cursor could not be read.
    #[error("cannot read the Elasticsearch export cursor: {0}")]
    Store(#[from] StoreError),
}

/// Export counters, for the agent's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticStats {
    /// Events Elasticsearch holds since the agent started (created, or already there).
    pub sent: u64,
    /// Of `sent`, those that were already there (answered 409: sent before).
    pub duplicates: u64,
    /// Events Elasticsearch refused (a 4xx item, e.g. a mapping error), skipped.
    pub rejected: u64,
    /// Failed attempts (each retried with backoff): template or bulk requests.
    pub failed_attempts: u64,
    /// The last failed attempt's error, if any.
    pub last_error: Option<String>,
    /// The last rejection's reason, if any.
    pub last_rejection: Option<String>,
    /// The index template is installed.
    pub template_installed: bool,
    /// The durable cursor (`seq:offset`): every event before it is settled.
    pub cursor: Option<String>,
    /// When a batch was last settled (Unix-epoch nanoseconds).
    pub last_success_ns: Option<u64>,
}

/// Where the exporter reads events: an [`EvidenceStore`], or a `Mutex` of one (locked only for
/// the read).
pub trait EvidenceSource {
    /// Events written after `cursor`, at most `max_events`, and the cursor after them (see
    /// [`EvidenceStore::read_after`]).
    fn read_after(
        &self,
        cursor: Option<BlockCursor>,
        max_events: usize,
    ) -> Result<(Vec<Event>, Option<BlockCursor>), StoreError>;
}

impl EvidenceSource for EvidenceStore {
    fn read_after(
        &self,
        cursor: Option<BlockCursor>,
        max_events: usize,
    ) -> Result<(Vec<Event>, Option<BlockCursor>), StoreError> {
        EvidenceStore::read_after(self, cursor, max_events)
    }
}

impl<T: EvidenceSource> EvidenceSource for Mutex<T> {
    fn read_after(
        &self,
        cursor: Option<BlockCursor>,
        max_events: usize,
    ) -> Result<(Vec<Event>, Option<BlockCursor>), StoreError> {
        lock(self).read_after(cursor, max_events)
    }
}

impl<T: EvidenceSource + ?Sized> EvidenceSource for Arc<T> {
    fn read_after(
        &self,
        cursor: Option<BlockCursor>,
        max_events: usize,
    ) -> Result<(Vec<Event>, Option<BlockCursor>), StoreError> {
        (**self).read_after(cursor, max_events)
    }
}

/// Where the exporter keeps its cursor: a [`Store`], or the agent's recorder (`Mutex<Recorder>`,
/// locked only while the cursor is written).
pub trait CursorStore {
    /// Runs `f` on the store.
    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T;
}

impl CursorStore for Store {
    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(self)
    }
}

impl CursorStore for Mutex<Recorder> {
    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(lock(self).store())
    }
}

impl<S: CursorStore + ?Sized> CursorStore for Arc<S> {
    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        (**self).with_store(f)
    }
}

/// The durable cursor kept in `store`, if any.
pub fn load_cursor(store: &Store) -> Result<Option<BlockCursor>, StoreError> {
    store.get_json(CURSOR_TREE, CURSOR_KEY)
}

/// Writes `cursor` to `store` and flushes it.
pub fn save_cursor(store: &Store, cursor: BlockCursor) -> Result<(), StoreError> {
    store.put_json(CURSOR_TREE, CURSOR_KEY, &cursor)?;
    store.flush()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one [`ElasticExporter::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No new evidence.
    Idle,
    /// A batch was settled and the cursor advanced past it.
    Sent {
        /// Events in the batch.
        events: usize,
        /// Of those, created by this request.
        created: usize,
        /// Of those, already there (409).
        duplicates: usize,
        /// Of those, refused by Elasticsearch and skipped.
        rejected: usize,
        /// More evidence may be waiting (the batch was full).
        more: bool,
    },
    /// The attempt failed; the batch (or the template) is retried after `retry_in`.
    Failed {
        /// Why.
        error: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
}

/// Exports the evidence store to Elasticsearch, one batch per [`ElasticExporter::step`].
pub struct ElasticExporter {
    config: ElasticConfig,
    client: reqwest::Client,
    bulk_url: reqwest::Url,
    template_url: reqwest::Url,
    authorization: Option<reqwest::header::HeaderValue>,
    host: String,
    cursor: Option<BlockCursor>,
    template_installed: bool,
    /// Events per request: `batch_events`, halved after a 413.
    limit: usize,
    /// Failed attempts in a row.
    attempts: u32,
    next_attempt: Instant,
    stats: Arc<Mutex<ElasticStats>>,
}

impl fmt::Debug for ElasticExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticExporter")
            .field("config", &self.config)
            .field("cursor", &self.cursor)
            .field("template_installed", &self.template_installed)
            .finish_non_exhaustive()
    }
}

impl ElasticExporter {
    /// An exporter for `config` (validated here), resuming after the cursor kept in `store`.
    pub fn new(config: ElasticConfig, store: &Store) -> Result<ElasticExporter, ElasticError> {
        config.validate().map_err(ElasticError::Config)?;
        let base = config.parsed_url().map_err(ElasticError::Config)?;
        let base = base.as_str().trim_end_matches('/').to_string();
        let join = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| {
                ElasticError::Config(format!("[elasticsearch]: url {:?}: {e}", config.url))
            })
        };
        let bulk_url = join("/_bulk")?;
        let template_url = join(&format!("/_index_template/{}", config.index_prefix))?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &config.ca_file {
            let ca_error = |reason: String| ElasticError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build()?;
        let authorization = authorization(&config)?;
        let cursor = load_cursor(store)?;
        let stats = ElasticStats {
            cursor: cursor.map(|c| c.to_string()),
            ..ElasticStats::default()
        };
        Ok(ElasticExporter {
            limit: config.batch_events,
            config,
            client,
            bulk_url,
            template_url,
            authorization,
            host: super::hostname().to_string(),
            cursor,
            template_installed: false,
            attempts: 0,
            next_attempt: Instant::now(),
            stats: Arc::new(Mutex::new(stats)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ElasticConfig {
        &self.config
    }

    /// The cursor: every event before it is settled (and durably recorded as such).
    pub fn cursor(&self) -> Option<BlockCursor> {
        self.cursor
    }

    /// The counters so far.
    pub fn stats(&self) -> ElasticStats {
        lock(&self.stats).clone()
    }

    /// The counters, shared: they stay readable while a step runs.
    pub fn stats_handle(&self) -> Arc<Mutex<ElasticStats>> {
        self.stats.clone()
    }

    /// The host name put in each document's `host.name` (this machine's by default).
    pub fn with_host(mut self, host: impl Into<String>) -> ElasticExporter {
        self.host = host.into();
        self
    }

    /// True when the next step should run at `now`: `flush_interval` after a step that found
    /// no more evidence, at once after a full batch, after the backoff after a failure.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_attempt
    }

    /// The index template installed at start: daily indices `<prefix>-*` with typed fields.
    pub fn index_template(&self) -> serde_json::Value {
        index_template(&self.config.index_prefix)
    }

    /// One attempt: installs the index template if that is not done yet, then reads up to
    /// `batch_events` events after the cursor, sends them and, once the batch is settled,
    /// advances the cursor and writes it durably to `store`. Never sleeps: after a failure,
    /// [`ElasticExporter::due`] says when to try again.
    pub async fn step<E, S>(&mut self, evidence: &E, store: &S) -> Step
    where
        E: EvidenceSource + ?Sized,
        S: CursorStore + ?Sized,
    {
        if !self.template_installed {
            if let Err(e) = self.put_template().await {
                return self.fail(format!("installing the index template: {e}"));
            }
            self.template_installed = true;
            lock(&self.stats).template_installed = true;
            tracing::info!(template = %self.config.index_prefix, "Elasticsearch index template installed");
        }
        let limit = self.limit;
        let (events, mut end) = match evidence.read_after(self.cursor, limit) {
            Ok(r) => r,
            Err(e) => return self.fail(format!("reading the evidence: {e}")),
        };
        if events.is_empty() {
            self.attempts = 0;
            self.next_attempt = Instant::now() + self.config.flush_interval;
            return Step::Idle;
        }
        let batch = match Batch::build(
            &self.config.index_prefix,
            &self.host,
            &events,
            self.config.max_batch_bytes,
        ) {
            Ok(b) => b,
            Err(e) => return self.fail(format!("encoding the events: {e}")),
        };
        let n = batch.ids.len();
        if n < events.len() {
            // The byte limit cut the batch: the cursor after its first `n` events.
            end = match evidence.read_after(self.cursor, n) {
                Ok((again, c)) if again.len() == n => c,
                Ok(_) => return self.fail("the evidence changed while being read".into()),
                Err(e) => return self.fail(format!("reading the evidence: {e}")),
            };
        }
        let more = events.len() >= limit || n < events.len();
        drop(events);
        let settled = match self.send_bulk(batch.body, &batch.ids).await {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        if let Some(end) = end
            && Some(end) != self.cursor
            && let Err(e) = store.with_store(|s| save_cursor(s, end))
        {
            // Sent but not recorded: the batch is sent again and answered 409.
            return self.fail(format!("saving the cursor: {e}"));
        }
        self.cursor = end.or(self.cursor);
        self.attempts = 0;
        self.limit = self.config.batch_events.min(self.limit.saturating_mul(2));
        self.next_attempt = if more {
            Instant::now()
        } else {
            Instant::now() + self.config.flush_interval
        };
        if !settled.rejected.is_empty() {
            log_rejections(&settled.rejected);
        }
        let rejected = settled.rejected.len();
        let delivered = n - rejected;
        let mut st = lock(&self.stats);
        st.sent += delivered as u64;
        st.duplicates += settled.duplicates as u64;
        st.rejected += rejected as u64;
        if let Some(r) = settled.rejected.last() {
            st.last_rejection = Some(r.to_string());
        }
        st.cursor = self.cursor.map(|c| c.to_string());
        st.last_success_ns = Some(crate::recorder::now_ns());
        drop(st);
        tracing::debug!(events = n, duplicates = settled.duplicates, rejected,
            cursor = ?self.cursor, "evidence batch sent to Elasticsearch");
        Step::Sent {
            events: n,
            created: delivered - settled.duplicates,
            duplicates: settled.duplicates,
            rejected,
            more,
        }
    }

    /// Records a failed attempt and schedules the next after the backoff.
    fn fail(&mut self, error: String) -> Step {
        self.attempts = self.attempts.saturating_add(1);
        let retry_in = backoff(self.attempts, fastrand::f64());
        self.next_attempt = Instant::now() + retry_in;
        let mut st = lock(&self.stats);
        st.failed_attempts += 1;
        st.last_error = Some(error.clone());
        drop(st);
        tracing::warn!(error = %error, attempts = self.attempts,
            retry_in = %humantime::format_duration(Duration::from_millis(retry_in.as_millis() as u64)),
            "Elasticsearch export failed");
        Step::Failed { error, retry_in }
    }

    fn request(&self, method: reqwest::Method, url: &reqwest::Url) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, url.clone());
        if let Some(auth) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        req
    }

    async fn put_template(&self) -> Result<(), String> {
        let body = serde_json::to_vec(&self.index_template()).map_err(|e| e.to_string())?;
        let resp = self
            .request(reqwest::Method::PUT, &self.template_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "Elasticsearch answered {status}: {}",
            answer_error(&text)
        ))
    }

    /// Sends `batch`; `Err` when it must be retried whole.
    async fn send_bulk(&mut self, body: Vec<u8>, ids: &[String]) -> Result<Settled, String> {
        let bytes = body.len();
        let resp = self
            .request(reqwest::Method::POST, &self.bulk_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("sending a bulk request: {}", error_chain(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("reading the bulk answer: {}", error_chain(&e)))?;
        if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            self.limit = (ids.len() / 2).max(1);
            return Err(format!(
                "Elasticsearch answered {status} to a bulk request of {} bytes; next batches \
                 hold at most {} events (lower max_batch_bytes)",
                bytes, self.limit
            ));
        }
        if !status.is_success() {
            return Err(format!(
                "Elasticsearch answered {status} to a bulk request: {}",
                answer_error(&text)
            ));
        }
        settle(&text, ids)
    }
}

/// The `Authorization` header value of `config`'s credentials, marked sensitive.
fn authorization(
    config: &ElasticConfig,
) -> Result<Option<reqwest::header::HeaderValue>, ElasticError> {
    use base64_lite::encode;
    let value = match (&config.username, &config.password, &config.api_key) {
        (Some(u), Some(p), _) => format!("Basic {}", encode(format!("{u}:{p}").as_bytes())),
        (_, _, Some(k)) => format!("ApiKey {k}"),
        _ => return Ok(None),
    };
    let mut v = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
        ElasticError::Config(
            "[elasticsearch]: the credentials hold characters an HTTP header cannot carry".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(Some(v))
}

/// Standard base64 with padding (for basic authentication).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// reqwest's message with its causes (connection refused, timeout).
fn error_chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// The `error.type: error.reason` of an Elasticsearch error answer, else its text (shortened).
fn answer_error(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(e) = v.get("error")
    {
        return shorten(&error_reason(e));
    }
    shorten(text.trim())
}

/// `type: reason` of an Elasticsearch error object (or its text), with its first cause.
fn error_reason(e: &serde_json::Value) -> String {
    let Some(obj) = e.as_object() else {
        return e.as_str().map_or_else(|| e.to_string(), str::to_string);
    };
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let mut out = match (s("type"), s("reason")) {
        ("", "") => e.to_string(),
        (t, "") => t.to_string(),
        ("", r) => r.to_string(),
        (t, r) => format!("{t}: {r}"),
    };
    if let Some(cause) = obj.get("caused_by") {
        out = format!("{out} (caused by {})", error_reason(cause));
    }
    out
}

fn shorten(s: &str) -> String {
    if s.len() <= MAX_ERROR_TEXT {
        return s.to_string();
    }
    let mut end = MAX_ERROR_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// One event Elasticsearch refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rejection {
    id: String,
    status: u16,
    reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {}): {}", self.status, self.id, self.reason)
    }
}

/// A bulk answer where every item is final.
#[derive(Debug, Default)]
struct Settled {
    duplicates: usize,
    rejected: Vec<Rejection>,
}

/// Reads a 2xx bulk answer for the documents `ids`; `Err` when the batch must be retried (an
/// item answered 429 or 5xx, or the answer does not match the request).
fn settle(text: &str, ids: &[String]) -> Result<Settled, String> {
    #[derive(Deserialize)]
    struct Answer {
        // `errors` says whether any item failed; the items say which, and are what counts.
        items: Vec<std::collections::BTreeMap<String, Item>>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default, rename = "_id")]
        id: Option<String>,
        status: u16,
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    let answer: Answer = serde_json::from_str(text)
        .map_err(|e| format!("unreadable bulk answer ({e}): {}", shorten(text.trim())))?;
    if answer.items.len() != ids.len() {
        return Err(format!(
            "the bulk answer has {} items for {} documents",
            answer.items.len(),
            ids.len()
        ));
    }
    let mut settled = Settled::default();
    let mut retry: Option<String> = None;
    let mut retries = 0;
    for (i, (item, id)) in answer.items.into_iter().zip(ids).enumerate() {
        let Some(item) = item.into_values().next() else {
            return Err(format!("bulk answer item {i} is empty"));
        };
        if item.id.as_deref().is_some_and(|got| got != id) {
            return Err(format!(
                "bulk answer item {i} is for document {:?}, not {id:?}",
                item.id.unwrap_or_default()
            ));
        }
        let reason = || {
            item.error
                .as_ref()
                .map_or_else(|| "no reason given".to_string(), error_reason)
        };
        match item.status {
            200..=299 => {}
            409 => settled.duplicates += 1,
            429 | 500..=599 => {
                retries += 1;
                retry.get_or_insert_with(|| format!("{}: {}", item.status, shorten(&reason())));
            }
            status => settled.rejected.push(Rejection {
                id: id.clone(),
                status,
                reason: shorten(&reason()),
            }),
        }
    }
    if let Some(first) = retry {
        return Err(format!(
            "{retries} of {} bulk items must be retried (first: {first})",
            ids.len()
        ));
    }
    Ok(settled)
}

/// Logs a batch's rejections: one line per kind of error, with its count.
fn log_rejections(rejected: &[Rejection]) {
    let mut by_reason: Vec<(&str, usize, &Rejection)> = Vec::new();
    for r in rejected {
        let kind = r.reason.split(':').next().unwrap_or("");
        match by_reason.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(e) => e.1 += 1,
            None => by_reason.push((kind, 1, r)),
        }
    }
    for (_, count, first) in by_reason {
        tracing::warn!(count, first = %first,
            "Elasticsearch rejected evidence events; they are skipped");
    }
}

/// One bulk request body and its documents' ids, in order.
#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    ids: Vec<String>,
}

impl Batch {
    /// The NDJSON body of `create` actions for the first events of `events` that fit in
    /// `max_bytes` (at least one).
    fn build(
        prefix: &str,
        host: &str,
        events: &[Event],
        max_bytes: u64,
    ) -> Result<Batch, serde_json::Error> {
        let mut body = Vec::new();
        let mut ids = Vec::new();
        let mut line = Vec::new();
        for event in events {
            line.clear();
            let id = bulk_lines(prefix, host, event, &mut line)?;
            if !ids.is_empty() && (body.len() + line.len()) as u64 > max_bytes {
                break;
            }
            body.extend_from_slice(&line);
            ids.push(id);
        }
        Ok(Batch { body, ids })
    }
}

/// The index of an event at `ts_ns`: `<prefix>-YYYY.MM.DD` of its UTC day.
pub fn index_name(prefix: &str, ts_ns: u64) -> String {
    let secs = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(ts_ns / 1_000_000_000),
    )
    .to_string();
    format!("{prefix}-{}", secs[..10].replace('-', "."))
}

/// The document of `event` as sent: the event's JSON with `@timestamp` (RFC 3339, UTC) and
/// `host.name` first; and its `_id`: the hex of the first 16 bytes of the SHA-256 of the
/// event's JSON and the host name.
pub fn document(host: &str, event: &Event) -> Result<(String, Vec<u8>), serde_json::Error> {
    let json = serde_json::to_vec(event)?;
    let mut h = Sha256::new();
    h.update(host.as_bytes());
    h.update([0]);
    h.update(&json);
    let digest = h.finalize();
    let mut id = String::with_capacity(32);
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    let head = serde_json::json!({
        "@timestamp": super::alertmanager::rfc3339(event.ts_ns),
        "host": { "name": host },
    });
    let mut doc = serde_json::to_vec(&head)?;
    // `{"@timestamp":…,"host":{…}}` + `{…event…}` → `{"@timestamp":…,"host":{…},…event…}`.
    doc.pop();
    if json.len() > 2 {
        doc.push(b',');
        doc.extend_from_slice(&json[1..]);
    } else {
        doc.push(b'}');
    }
    Ok((id, doc))
}

/// Appends the action line and the document line of `event`; returns its `_id`.
fn bulk_lines(
    prefix: &str,
    host: &str,
    event: &Event,
    out: &mut Vec<u8>,
) -> Result<String, serde_json::Error> {
    let (id, doc) = document(host, event)?;
    let action = serde_json::json!({
        "create": { "_index": index_name(prefix, event.ts_ns), "_id": id }
    });
    serde_json::to_writer(&mut *out, &action)?;
    out.push(b'\n');
    out.extend_from_slice(&doc);
    out.push(b'\n');
    Ok(id)
}

/// The composable index template for `<prefix>-*`.
pub fn index_template(prefix: &str) -> serde_json::Value {
    use serde_json::json;
    let keyword = json!({ "type": "keyword" });
    let long = json!({ "type": "long" });
    let boolean = json!({ "type": "boolean" });
    json!({
        "index_patterns": [format!("{prefix}-*")],
        // Above the built-in templates (priority 100), so an overlapping pattern never clashes.
        "priority": 200,
        "template": {
            "mappings": {
                "dynamic": true,
                "properties": {
                    "@timestamp": { "type": "date" },
                    "host": { "properties": { "name": keyword } },
                    "schema": long,
                    "ts_ns": long,
                    "kind": keyword,
                    "workload": { "properties": {
                        "id": keyword,
                        "cgroup_id": long,
                        "cgroup": keyword,
                        "runtime": keyword,
                        "container_id": keyword,
                        "pod_uid": keyword,
                        "unit": keyword,
                    }},
                    "pid": long,
                    "tid": long,
                    "ppid": long,
                    "uid": long,
                    "gid": long,
                    "comm": keyword,
                    "exe": keyword,
                    "parent_exe": keyword,
                    "existing": boolean,
                    "blocked": boolean,
                    "filename": keyword,
                    "argv": {
                        "type": "text",
                        "fields": { "keyword": { "type": "keyword", "ignore_above": 8191 } },
                    },
                    "argv_truncated": boolean,
                    "argv_unknown": boolean,
                    "path": keyword,
                    "flags": long,
                    "access": keyword,
                    "path_truncated": boolean,
                    "family": keyword,
                    "protocol": keyword,
                    "addr": keyword,
                    "port": long,
                    "request": long,
                    "request_name": keyword,
                    "target_pid": long,
                    "call": keyword,
                    "ids": long,
                }
            }
        },
        "_meta": { "managed_by": "baseliner" },
    })
}

/// Runs export passes, one at a time, on the current tokio runtime, like the alert
/// [`super::Delivery`]. The defaults are the agent's: the evidence store in a `Mutex`, the
/// store reached through the recorder.
pub struct ElasticDelivery<E = Mutex<EvidenceStore>, S = Mutex<Recorder>> {
    exporter: Arc<tokio::sync::Mutex<ElasticExporter>>,
    stats: Arc<Mutex<ElasticStats>>,
    evidence: Arc<E>,
    store: Arc<S>,
    pass: Option<tokio::task::JoinHandle<()>>,
}

impl<E, S> ElasticDelivery<E, S>
where
    E: EvidenceSource + Send + Sync + 'static,
    S: CursorStore + Send + Sync + 'static,
{
    /// Export by `exporter` of `evidence`, keeping the cursor in `store`.
    pub fn new(exporter: ElasticExporter, evidence: Arc<E>, store: Arc<S>) -> Self {
        ElasticDelivery {
            stats: exporter.stats_handle(),
            exporter: Arc::new(tokio::sync::Mutex::new(exporter)),
            evidence,
            store,
            pass: None,
        }
    }

    /// Export counts so far.
    pub fn stats(&self) -> ElasticStats {
        lock(&self.stats).clone()
    }

    /// Starts an export pass when none is running and the exporter is due. Never waits on the
    /// network; must be called from within a tokio runtime.
    pub fn poll(&mut self) {
        if self.pass.as_ref().is_some_and(|p| !p.is_finished()) {
            return;
        }
        self.pass = None;
        let due = match self.exporter.try_lock() {
            Ok(x) => x.due(Instant::now()),
            Err(_) => false,
        };
        if due {
            let (x, e, s) = (
                self.exporter.clone(),
                self.evidence.clone(),
                self.store.clone(),
            );
            self.pass = Some(tokio::spawn(async move {
                let mut x = x.lock().await;
                // Full batches back to back; stop when drained or after a failure.
                while let Step::Sent { more: true, .. } = x.step(&*e, &*s).await {}
            }));
        }
    }
}

#[cfg(test)]
mod tests;
