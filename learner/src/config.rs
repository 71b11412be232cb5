//! The agent's configuration file (TOML). Every setting has a default, and command-line flags
//! override the file.
//!
//! ```toml
//! [learn]
//! default_mode = "learn"      # mode of workloads with none set
//! stable_after = "1h"         # no new entry for this long: the profile is stable
//! auto_alert_after = "24h"    # optional: switch a stable, complete profile to alert
//! max_entries = 1000          # entries per profile before patterns are widened
//!
//! [redact]                    # on top of the built-in secret rules
//! extra_patterns = ['sk_live_[0-9a-zA-Z]+']
//! secret_flags = ["--api-key"]
//!
//! [alerts]
//! jsonl = "/var/log/baseliner/alerts.jsonl"   # also write alerts here ("-": stdout)
//! webhook_url = "https://alerts.example/hook"  # also POST each alert here (http or https)
//! webhook_secret = "..."                       # HMAC-SHA256 key of X-Baseliner-Signature
//! webhook_secret_file = "/etc/baseliner/webhook.secret"  # or read it from this file
//! alertmanager_url = "http://127.0.0.1:9093"  # also send each alert to Alertmanager (API v2)
//! falco_jsonl = "/var/log/baseliner/falco.jsonl"  # also write alerts as Falco JSON ("-": stdout)
//!
//! [api]                       # the HTTP API on TCP (the unix socket is always served)
//! listen = "127.0.0.1:7878"   # address to serve on; loopback unless TLS is configured
//! tls_cert = "/etc/baseliner/api.crt"  # PEM certificate chain: serve HTTPS
//! tls_key = "/etc/baseliner/api.key"   # its PEM private key
//! [[api.tokens]]              # `baseliner token --name NAME --role ROLE` prints one
//! name = "alice"              # recorded in the audit log for every change made with it
//! role = "reviewer"           # viewer | reviewer | admin
//! sha256 = "9f86d0…"          # SHA-256 of the token (the token itself is never stored)
//!
//! [evidence]                  # events kept for investigation and reports
//! max_age = "7d"              # drop events older than this
//! max_size = "512MiB"         # and the oldest beyond this much disk
//! pci_paths = ["/srv/cardholder/**"]  # cardholder-data paths of the PCI-DSS access report
//!
//! [elasticsearch]             # also send the evidence to Elasticsearch (`_bulk` API)
//! url = "https://127.0.0.1:9200"
//! index_prefix = "baseliner-events"   # daily indices baseliner-events-YYYY.MM.DD
//! api_key = "..."             # or username + password
//!
//! [kubernetes]                # on Kubernetes (the DaemonSet in deploy/ turns it on)
//! enabled = true              # pod metadata, modes from baseliner.io/mode annotations
//! node_name = "node-a"        # default: the NODE_NAME environment variable
//! hold = "10s"                # events of a pod not reported yet wait this long for it
//! publish_every = "15s"       # how often changed profiles go to their WorkloadProfile
//!
//! [respond]                   # automated responses to new alerts (none by default)
//! max_per_minute = 20         # actions a minute at most, all workloads together
//! protected_cgroups = ["/system.slice/sshd.service"]  # never acted on (sub-cgroups too)
//! protected_namespaces = ["kube-system"]              # Kubernetes namespaces never acted on
//! [[respond.rules]]
//! action = "kill"             # kill | freeze | quarantine | delete-pod
//! min_severity = "critical"   # alerts at or above this severity
//! rules = ["crypto-miner"]    # optional: only alerts with a reason of these rules
//! modes = ["alert", "enforce"]  # optional: only workloads in these modes (default: all scoring)
//! ```

use std::{path::Path, time::Duration};

use profiles::{mode::Mode, redact::RedactConfig};
use serde::Deserialize;

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/baseliner/config.toml";

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Learning settings.
    pub learn: LearnConfig,
    /// Extra redaction rules.
    pub redact: RedactConfig,
    /// Alert output.
    pub alerts: AlertsConfig,
    /// Automated responses.
    pub respond: crate::respond::RespondConfig,
    /// The HTTP API on TCP.
    pub api: ApiConfig,
    /// The evidence store.
    pub evidence: EvidenceConfig,
    /// Export the evidence to Elasticsearch.
    pub elasticsearch: Option<crate::delivery::elasticsearch::ElasticConfig>,
    /// The Kubernetes integration.
    pub kubernetes: KubernetesConfig,
}

/// `[kubernetes]`: pod metadata, modes from annotations, shared profiles. The API server is
/// reached as kube-rs finds it: in a pod, its service account; else `KUBECONFIG` or
/// `~/.kube/config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Turn the integration on (default false: a plain host).
    pub enabled: bool,
    /// This node's name (default: the `NODE_NAME` environment variable, which the DaemonSet
    /// sets from `spec.nodeName`).
    pub node_name: Option<String>,
    /// How long an event of a pod the watch has not reported yet waits for it ("10s").
    #[serde(with = "opt_duration")]
    pub hold: Option<Duration>,
    /// How often this node publishes changed profiles to their `WorkloadProfile` ("15s").
    #[serde(with = "opt_duration")]
    pub publish_every: Option<Duration>,
}

impl KubernetesConfig {
    /// The node name: configured, else `NODE_NAME`.
    pub fn node(&self) -> Result<String, String> {
        self.node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                "[kubernetes]: no node name: set node_name, or NODE_NAME (the DaemonSet sets it \
                 from spec.nodeName)"
                    .to_string()
            })
    }
}

/// `[evidence]`: every event kept for investigation and reports, within an age and a size.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Keep events at all (default true).
    pub enabled: bool,
    /// Drop events older than this ("7d").
    #[serde(with = "opt_duration")]
    pub max_age: Option<Duration>,
    /// Drop the oldest events beyond this much stored data ("512MiB", "2GB", bytes).
    #[serde(deserialize_with = "de_opt_size")]
    pub max_size: Option<u64>,
    /// Cardholder-data path patterns of the PCI-DSS access report (`/srv/pan/**`).
    pub pci_paths: Vec<String>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            enabled: true,
            max_age: None,
            max_size: None,
            pci_paths: Vec::new(),
        }
    }
}

impl EvidenceConfig {
    /// The evidence store's retention: what is set here over its defaults.
    pub fn retention(&self) -> profiles::evidence::RetentionConfig {
        let d = profiles::evidence::RetentionConfig::default();
        profiles::evidence::RetentionConfig {
            max_age: self.max_age.unwrap_or(d.max_age),
            max_bytes: self.max_size.unwrap_or(d.max_bytes),
            ..d
        }
    }

    /// Checks the PCI path patterns: absolute, non-empty.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.pci_paths {
            if !p.starts_with('/') {
                return Err(format!(
                    "[evidence]: pci_paths entry {p:?} is not an absolute path pattern"
                ));
            }
        }
        if self.max_size == Some(0) {
            return Err("[evidence]: max_size must be above 0".into());
        }
        Ok(())
    }
}

/// A byte count: a number, or a string with a unit (`"5MiB"`, `"512 KiB"`, `"1MB"`, `"800B"`).
pub(crate) fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Number(n) => Ok(n),
        Size::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// Parses `"5MiB"`, `"512 KiB"`, `"1MB"`, `"800"`, `"800B"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. \"5MiB\" or a number of bytes)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// An optional byte count (see [`de_size`]); absent is `None` through `#[serde(default)]`.
fn de_opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

/// `[api]`: the HTTP API on TCP, with bearer-token roles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the API on this TCP address too.
    pub listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain: serve HTTPS.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Who may call, and as what.
    pub tokens: Vec<api::auth::TokenConfig>,
}

impl ApiConfig {
    /// Checks the section: tokens well-formed and uniquely named; TLS files in pairs; a
    /// listener on a non-loopback address only with TLS, and only with tokens.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tokens {
            t.validate()?;
            if !names.insert(t.name.as_str()) {
                return Err(format!("[api]: two tokens are named {:?}", t.name));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("[api]: tls_cert and tls_key go together".into());
        }
        if let Some(addr) = self.listen {
            if self.tokens.is_empty() {
                return Err(format!(
                    "[api]: listen = \"{addr}\" but no [[api.tokens]]: nobody could call it"
                ));
            }
            if !addr.ip().is_loopback() && self.tls_cert.is_none() {
                return Err(format!(
                    "[api]: listen = \"{addr}\" is not a loopback address; bearer tokens \
                     would cross the network in clear: set tls_cert and tls_key"
                ));
            }
        }
        Ok(())
    }
}

/// `[alerts]`: where alerts go besides the store. Its `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Write each alert as one JSON line to this file (`-`: standard output).
    pub jsonl: Option<std::path::PathBuf>,
    /// POST each alert as JSON to this http(s) URL (delivered through the store's outbox).
    pub webhook_url: Option<String>,
    /// Key of the webhook's HMAC-SHA256 signature.
    pub webhook_secret: Option<String>,
    /// Read the webhook's key from this file (trailing newline trimmed) instead.
    pub webhook_secret_file: Option<std::path::PathBuf>,
    /// Send each alert to this Alertmanager (its base URL; alerts are POSTed to
    /// `/api/v2/alerts`, delivered through the store's outbox).
    pub alertmanager_url: Option<String>,
    /// Write each alert as one line of Falco's JSON output to this file (`-`: standard output).
    pub falco_jsonl: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("jsonl", &self.jsonl)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field("alertmanager_url", &self.alertmanager_url)
            .field("falco_jsonl", &self.falco_jsonl)
            .finish()
    }
}

impl LearnConfig {
    /// The learning settings: what is set here over the built-in defaults.
    pub fn settings(&self) -> api::Settings {
        let d = crate::recorder::default_settings(Mode::Learn);
        api::Settings {
            default_mode: self.default_mode.unwrap_or(d.default_mode),
            stable_after: self.stable_after.unwrap_or(d.stable_after),
            auto_alert_after: self.auto_alert_after.or(d.auto_alert_after),
            max_entries: self.max_entries.unwrap_or(d.max_entries),
        }
    }
}

/// `[learn]`: each field unset means the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnConfig {
    /// Mode of workloads with none set.
    pub default_mode: Option<Mode>,
    /// A profile with no new entry for this long is stable ("90m", "1h").
    #[serde(with = "opt_duration")]
    pub stable_after: Option<Duration>,
    /// Switch a stable, complete profile to alert after this long without change.
    #[serde(with = "opt_duration")]
    pub auto_alert_after: Option<Duration>,
    /// Entries per profile before patterns are widened.
    pub max_entries: Option<usize>,
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("invalid configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        message: String,
    },
}

impl Config {
    /// Reads `path`; with `required` false a missing file is the default configuration.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                });
            }
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: shown,
            message,
        })
    }

    /// Parses configuration text, checking the redaction patterns and the response rules too.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        profiles::redact::Redactor::new(&c.redact).map_err(|e| e.to_string())?;
        c.respond.validate()?;
        c.api.validate()?;
        c.evidence.validate()?;
        if let Some(e) = &c.elasticsearch {
            e.validate()?;
        }
        Ok(c)
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_setting() {
        let c = Config::parse(
            "[learn]\ndefault_mode = \"alert\"\nstable_after = \"90m\"\nauto_alert_after = \"1day\"\n\
             max_entries = 500\n[redact]\nsecret_flags = [\"--api-key\"]\n",
        )
        .unwrap();
        assert_eq!(c.learn.default_mode, Some(Mode::Alert));
        assert_eq!(c.learn.stable_after, Some(Duration::from_secs(5400)));
        assert_eq!(c.learn.auto_alert_after, Some(Duration::from_secs(86400)));
        assert_eq!(c.learn.max_entries, Some(500));
        assert_eq!(c.redact.secret_flags, ["--api-key"]);
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:9000/hook\"\nwebhook_secret = \"s\"\n",
        )
        .unwrap();
        assert_eq!(
            c.alerts.webhook_url.as_deref(),
            Some("http://127.0.0.1:9000/hook")
        );
        assert_eq!(c.alerts.webhook_secret.as_deref(), Some("s"));
        let c = Config::parse(
            "[alerts]\nalertmanager_url = \"http://127.0.0.1:9093\"\nfalco_jsonl = \"-\"\n",
        )
        .unwrap();
        assert_eq!(
            c.alerts.alertmanager_url.as_deref(),
            Some("http://127.0.0.1:9093")
        );
        assert_eq!(c.alerts.falco_jsonl.as_deref(), Some(Path::new("-")));
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the secret stays out of Debug"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (text, needle) in [
            ("[learn]\nstable_after = \"soon\"", "stable_after"),
            ("[learn]\ndefault_mode = \"block\"", "default_mode"),
            ("[learn]\nmax_entry = 5", "max_entry"),
            (
                "[redact]\nextra_patterns = [\"(\"]",
                "invalid redaction pattern",
            ),
            (
                "[[respond.rules]]\naction = \"kill\"\nmin_severity = \"high\"\nrules = [\"miner\"]",
                "unknown alert rule \"miner\"; known rules: crypto-miner,",
            ),
            (
                "[[respond.rules]]\naction = \"nuke\"\nmin_severity = \"high\"",
                "unknown variant `nuke`",
            ),
            ("[api]\nlisten = \"127.0.0.1:7878\"", "no [[api.tokens]]"),
            (
                "[api]\nlisten = \"0.0.0.0:7878\"\n[[api.tokens]]\nname = \"a\"\nrole = \"admin\"\n\
                 sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
                "set tls_cert and tls_key",
            ),
            (
                "[[api.tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"00\"",
                "unknown variant `root`",
            ),
            (
                "[[api.tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"00\"",
                "64 hex digits",
            ),
            ("[api]\ntls_cert = \"/x.pem\"", "go together"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn evidence_settings_parse() {
        let c = Config::parse(
            "[evidence]\nmax_age = \"2d\"\nmax_size = \"64MiB\"\npci_paths = [\"/srv/pan/**\"]\n",
        )
        .unwrap();
        let r = c.evidence.retention();
        assert_eq!(r.max_age, Duration::from_secs(2 * 86400));
        assert_eq!(r.max_bytes, 64 << 20);
        assert_eq!(c.evidence.pci_paths, ["/srv/pan/**"]);
        assert!(c.evidence.enabled);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for (text, needle) in [
            ("[evidence]\nmax_size = \"lots\"", "invalid size"),
            ("[evidence]\nmax_size = \"5XB\"", "unknown unit"),
            ("[evidence]\npci_paths = [\"pan/*\"]", "not an absolute"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn api_tokens_and_listener_parse() {
        let hash = api::auth::token_sha256("t");
        let c = Config::parse(&format!(
            "[api]\nlisten = \"127.0.0.1:7878\"\n[[api.tokens]]\nname = \"alice\"\n\
             role = \"reviewer\"\nsha256 = \"{hash}\"\n"
        ))
        .unwrap();
        assert_eq!(c.api.listen, Some("127.0.0.1:7878".parse().unwrap()));
        assert_eq!(c.api.tokens[0].role, api::auth::Role::Reviewer);
        assert!(
            !format!("{c:?}").contains(&hash),
            "hashes stay out of Debug"
        );
        let twice = format!(
            "[[api.tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"{hash}\"\n\
             [[api.tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"{hash}\"\n"
        );
        assert!(Config::parse(&twice).unwrap_err().contains("two tokens"));
    }

    #[test]
    fn a_missing_default_file_is_the_default() {
        let missing = Path::new("/nonexistent/baseliner.toml");
        assert_eq!(Config::load(missing, false).unwrap(), Config::default());
        assert!(Config::load(missing, true).is_err());
    }
}
