//! The audit export of one profile: a self-describing JSON or YAML document with a content hash,
//! so a reviewed baseline can be stored, compared and re-imported unchanged.
//!
//! The hash is the SHA-256 (lowercase hex) of the canonical JSON of `schema`, `workload`,
//! `revision`, `profile` and, when present, `rates` (the windows of activity the rate model is
//! fitted to, which decide alerts as much as the entries do) and `approvals` (the reviewers'
//! approvals of entries that joined the profile): object keys sorted bytewise at
//! every level, profile entries in their sorted order, no insignificant whitespace. `learning`
//! is informational and not hashed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{
    diff::{DiffEntry, entries, protocol_name},
    event::{Family, Protocol},
    model::{NetEntry, Profile, Seen},
    rates::{MAX_SAMPLES, RateSamples},
    review::Approval,
};

/// Version of the export document format.
pub const EXPORT_SCHEMA: u32 = 1;

/// One exported profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileExport {
    /// Format version ([`EXPORT_SCHEMA`] when written by this build).
    pub schema: u32,
    /// The workload the profile belongs to.
    pub workload: String,
    /// The profile's revision, as named by the caller.
    pub revision: String,
    /// Learning state supplied by the caller (opaque; may be `null`); not covered by the hash.
    pub learning: Value,
    /// The behaviour profile.
    pub profile: Profile,
    /// Windows of activity learned beside the profile (absent in exports without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<RateSamples>,
    /// Reviewers' approvals of entries that joined the profile, in time order (absent in
    /// exports without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// SHA-256 of the canonical content (see the module docs).
    #[serde(default)]
    pub content_sha256: String,
}

/// Writing an export failed.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The YAML serialiser failed.
    #[error("cannot write the export as YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
}

/// Why an export document was rejected.
#[derive(Debug, Error)]
pub enum ImportError {
    /// Not well-formed JSON/YAML, or a field is missing or of the wrong type.
    #[error("malformed {format} export: {message}")]
    Parse {
        /// `JSON` or `YAML`.
        format: &'static str,
        /// 1-based line and column, when the parser reported one.
        location: Option<(usize, usize)>,
        /// The parser's message (including the position).
        message: String,
    },
    /// Written in a format version this build does not read.
    #[error("unsupported export schema {found}: this build reads schema {expected}")]
    Schema {
        /// The document's schema.
        found: u32,
        /// [`EXPORT_SCHEMA`].
        expected: u32,
    },
    /// The content does not match its hash.
    #[error(
        "content hash mismatch: the file was modified or corrupted; \
         expected {}, computed {computed}",
        or_missing(.expected)
    )]
    Hash {
        /// The hash stated in the document (empty when missing).
        expected: String,
        /// The hash of the content as read.
        computed: String,
    },
    /// The content hashes correctly but holds an invalid value.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The offending field or entry, e.g. `entry "file etc/passwd (read)"`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn or_missing(s: &str) -> &str {
    if s.is_empty() { "(missing)" } else { s }
}

/// Builds the export of `profile` and computes its content hash.
pub fn export(
    workload: impl Into<String>,
    revision: impl Into<String>,
    learning: Value,
    profile: &Profile,
) -> ProfileExport {
    let mut e = ProfileExport {
        schema: EXPORT_SCHEMA,
        workload: workload.into(),
        revision: revision.into(),
        learning,
        profile: profile.clone(),
        rates: None,
        approvals: Vec::new(),
        content_sha256: String::new(),
    };
    e.content_sha256 = e.computed_sha256();
    e
}

impl ProfileExport {
    /// The export with the profile's windows of activity (hashed with the rest).
    pub fn with_rates(mut self, rates: Option<RateSamples>) -> ProfileExport {
        self.rates = rates;
        self.content_sha256 = self.computed_sha256();
        self
    }

    /// The export with the reviewers' approvals of the workload (hashed with the rest).
    pub fn with_approvals(mut self, approvals: Vec<Approval>) -> ProfileExport {
        self.approvals = approvals;
        self.content_sha256 = self.computed_sha256();
        self
    }

    /// The hash of the current content (what [`ProfileExport::content_sha256`] should be).
    pub fn computed_sha256(&self) -> String {
        format!("{:x}", Sha256::digest(canonical(self).as_bytes()))
    }
}

/// Serialising an export to JSON cannot fail: every map has string keys, and the only floats
/// are in the caller's `serde_json::Value`, which holds finite numbers only.
const ALWAYS_JSON: &str = "an export always serialises to JSON";

/// The canonical JSON text that is hashed.
fn canonical(e: &ProfileExport) -> String {
    let mut content = serde_json::json!({
        "schema": e.schema,
        "workload": e.workload,
        "revision": e.revision,
        "profile": serde_json::to_value(&e.profile).expect(ALWAYS_JSON),
    });
    if let Some(r) = &e.rates {
        content["rates"] = serde_json::to_value(r).expect(ALWAYS_JSON);
    }
    if !e.approvals.is_empty() {
        content["approvals"] = serde_json::to_value(&e.approvals).expect(ALWAYS_JSON);
    }
    sorted(content).to_string()
}

/// Rebuilds every object with its keys inserted in bytewise order, so the compact text is
/// canonical whether or not serde_json preserves insertion order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut fields: Vec<_> = m.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(fields.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        scalar => scalar,
    }
}

/// Pretty JSON with a trailing newline; the same export always gives the same bytes.
pub fn to_json(e: &ProfileExport) -> String {
    serde_json::to_string_pretty(e).expect(ALWAYS_JSON) + "\n"
}

/// The export as a YAML document.
pub fn to_yaml(e: &ProfileExport) -> Result<String, ExportError> {
    Ok(yaml_serde::to_string(e)?)
}

/// Only the schema, read before the rest so a newer format is reported as such.
#[derive(Deserialize)]
struct SchemaOnly {
    schema: Option<u32>,
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str, json: bool) -> Result<T, ImportError> {
    if json {
        serde_json::from_str(text).map_err(|e| ImportError::Parse {
            format: "JSON",
            location: (e.line() > 0).then(|| (e.line(), e.column())),
            message: e.to_string(),
        })
    } else {
        yaml_serde::from_str(text).map_err(|e| ImportError::Parse {
            format: "YAML",
            location: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        })
    }
}

/// Reads an export written by [`to_json`] or [`to_yaml`] (JSON when the first non-blank
/// character is `{`, YAML otherwise), checking the schema, the content hash and every entry.
pub fn import(text: &str) -> Result<ProfileExport, ImportError> {
    let json = text.trim_start().starts_with('{');
    if let Some(found) = parse::<SchemaOnly>(text, json)?.schema
        && found != EXPORT_SCHEMA
    {
        return Err(ImportError::Schema {
            found,
            expected: EXPORT_SCHEMA,
        });
    }
    let e: ProfileExport = parse(text, json)?;
    let computed = e.computed_sha256();
    if e.content_sha256 != computed {
        return Err(ImportError::Hash {
            expected: e.content_sha256,
            computed,
        });
    }
    validate(&e)?;
    Ok(e)
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Checks the workload and every entry of the profile.
fn validate(e: &ProfileExport) -> Result<(), ImportError> {
    if e.workload.trim().is_empty() {
        return Err(invalid("workload", "is empty"));
    }
    for (entry, seen) in entries(&e.profile) {
        if let Some(reason) = entry_problem(&entry, seen) {
            return Err(invalid(format!("entry \"{entry}\""), reason));
        }
    }
    if let Some(r) = &e.rates {
        if r.window_ns == 0 {
            return Err(invalid("rates", "the window length is 0"));
        }
        if r.samples.len() > MAX_SAMPLES {
            let n = r.samples.len();
            return Err(invalid(
                "rates",
                format!("{n} samples, at most {MAX_SAMPLES}"),
            ));
        }
        if (r.samples.len() as u64) > r.seen {
            return Err(invalid("rates", "more samples than windows seen"));
        }
    }
    e.approvals
        .iter()
        .try_for_each(|a| approval_problem(a, &e.workload))
}

/// An approval must belong to the export's workload, name its proposal and reviewer, and
/// approve a valid entry that covers the proposal's entry.
fn approval_problem(a: &Approval, workload: &str) -> Result<(), ImportError> {
    let what = || format!("approval {:?}", a.proposal_id);
    let reason = if a.proposal_id.trim().is_empty() {
        Some("the proposal id is empty".to_string())
    } else if a.workload != workload {
        Some(format!("belongs to workload {:?}", a.workload))
    } else if a.reviewer.trim().is_empty() {
        Some("the reviewer is empty".to_string())
    } else if let Some(r) = entry_problem(&a.entry, &Seen::at(a.at_ns)) {
        Some(format!("entry \"{}\": {r}", a.entry))
    } else if !a.entry.covers(&a.exact) {
        Some(format!("\"{}\" does not cover \"{}\"", a.entry, a.exact))
    } else {
        None
    };
    reason.map_or(Ok(()), |r| Err(invalid(what(), r)))
}

/// What is wrong with an entry: a record that was never seen or ends before it starts, or a bad
/// network entry. Paths are not checked: a recorded path stays relative when the process was
/// gone before it could be resolved, and such a profile must still import.
fn entry_problem(entry: &DiffEntry, s: &Seen) -> Option<String> {
    if s.count == 0 {
        return Some("seen count is 0".into());
    }
    if s.first_ns > s.last_ns {
        let (first, last) = (s.first_ns, s.last_ns);
        return Some(format!("first seen ({first}) is after last seen ({last})"));
    }
    match entry {
        DiffEntry::Connect(n) | DiffEntry::Listen(n) => net_problem(n),
        DiffEntry::File(_) | DiffEntry::Exec(_) | DiffEntry::Lineage(_) => None,
    }
}

/// IP entries need an IP transport and an address (or CIDR) of their family; unix entries a
/// unix transport and port 0.
fn net_problem(n: &NetEntry) -> Option<String> {
    use Protocol::*;
    let ip = n.family != Family::Unix;
    if n.protocol != Unknown && ip != matches!(n.protocol, Tcp | Udp | Raw) {
        let proto = protocol_name(n.protocol);
        return Some(format!("protocol {proto} does not belong to the family"));
    }
    if !ip {
        return (n.port != 0).then(|| "a unix socket entry must have port 0".into());
    }
    let (addr, prefix) = n.addr.split_once('/').unwrap_or((&n.addr, "0"));
    let v6 = n.family == Family::Inet6;
    let ok = addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6() == v6)
        && prefix
            .parse::<u8>()
            .is_ok_and(|p| p <= if v6 { 128 } else { 32 });
    (!ok).then(|| format!("{:?} is not an IP address or CIDR", n.addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::tests::insert;
    use serde_json::json;

    /// A small profile with entries of every kind.
    const TINY: &str = r#"{
        "execs": [[{"path": "/usr/bin/curl",
                    "args": ["-s", "<num>", "yes", "~", "a: b #c", "", "1e3"]},
                   {"count": 2, "first_ns": 10, "last_ns": 20}]],
        "lineage": [[{"parent": "/bin/sh", "child": "/usr/bin/curl"},
                     {"count": 2, "first_ns": 10, "last_ns": 20}]],
        "files": [[{"path": "/etc/shadow", "access": "read"},
                   {"count": 1, "first_ns": 15, "last_ns": 15}],
                  [{"path": "/proc/*/status", "access": "read"},
                   {"count": 3, "first_ns": 11, "last_ns": 30}]],
        "connects": [[{"family": "inet", "protocol": "tcp", "addr": "127.0.0.1", "port": 5432},
                      {"count": 4, "first_ns": 12, "last_ns": 40}]],
        "listens": [[{"family": "inet6", "protocol": "udp", "addr": "::", "port": 53},
                     {"count": 1, "first_ns": 5, "last_ns": 5}]]
    }"#;

    fn tiny() -> Profile {
        serde_json::from_str(TINY).unwrap()
    }

    fn sample() -> ProfileExport {
        let learning = json!({"state": "learning", "events": 42});
        export("/system.slice/app.service", "r1", learning, &tiny())
    }

    fn tampered(f: impl FnOnce(&mut Value)) -> Result<ProfileExport, ImportError> {
        let mut v: Value = serde_json::from_str(&to_json(&sample())).unwrap();
        f(&mut v);
        import(&serde_json::to_string_pretty(&v).unwrap())
    }

    #[test]
    fn round_trips_through_json_and_yaml() {
        let e = sample();
        for text in [to_json(&e), to_yaml(&e).unwrap()] {
            assert_eq!(import(&text).unwrap(), e, "{text}");
        }
        let empty = export("w", "", Value::Null, &Profile::default());
        assert_eq!(import(&to_yaml(&empty).unwrap()).unwrap(), empty);
        assert_eq!(import(&format!("\n  {}", to_json(&empty))).unwrap(), empty);
    }

    #[test]
    fn rate_samples_travel_hashed_and_checked() {
        let mut rates = RateSamples::new(10_000_000_000);
        for i in 0..20 {
            rates.add([i, 30, 2, 0, 0, 0, 1]);
        }
        let plain = sample();
        let e = sample().with_rates(Some(rates.clone()));
        assert_ne!(
            e.content_sha256, plain.content_sha256,
            "the windows are hashed"
        );
        for text in [to_json(&e), to_yaml(&e).unwrap()] {
            assert_eq!(import(&text).unwrap().rates, Some(rates.clone()));
        }
        assert!(
            !to_json(&plain).contains("rates"),
            "absent when there are none"
        );
        // A raised learned maximum would hide a burst: the hash catches it.
        let mut v: Value = serde_json::from_str(&to_json(&e)).unwrap();
        v["rates"]["samples"][0][2] = json!(500);
        let edited = import(&v.to_string());
        assert!(
            matches!(edited, Err(ImportError::Hash { .. })),
            "{edited:?}"
        );
        // Hashed correctly but impossible.
        let mut bad = rates.clone();
        bad.seen = 3;
        let err = import(&to_json(&sample().with_rates(Some(bad)))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid rates: more samples than windows seen"
        );
    }

    fn approval(reviewer: &str, pattern: &str, exact: &str, at_ns: u64) -> Approval {
        let file = |path: &str| {
            DiffEntry::File(crate::model::FileEntry {
                path: path.into(),
                access: crate::event::Access::Read,
            })
        };
        Approval {
            proposal_id: format!("{at_ns:016x}"),
            workload: "/system.slice/app.service".into(),
            entry: file(pattern),
            exact: file(exact),
            reviewer: reviewer.into(),
            at_ns,
            comment: "reviewed".into(),
        }
    }

    #[test]
    fn approvals_travel_hashed_and_checked() {
        let approvals = vec![
            approval("alice", "/opt/app/**", "/opt/app/data/x", 10),
            approval("bob", "/etc/app.conf", "/etc/app.conf", 20),
        ];
        let plain = sample();
        let e = sample().with_approvals(approvals.clone());
        assert_ne!(
            e.content_sha256, plain.content_sha256,
            "approvals are hashed"
        );
        for text in [to_json(&e), to_yaml(&e).unwrap()] {
            let back = import(&text).unwrap();
            assert_eq!(back.approvals, approvals);
            assert_eq!(back, e);
        }
        assert!(
            !to_json(&plain).contains("approvals"),
            "absent when there are none"
        );
        assert_eq!(sample().with_approvals(Vec::new()), plain);
        // Who approved what is part of the audited content.
        for (pointer, value) in [
            ("/approvals/0/reviewer", json!("mallory")),
            ("/approvals/1/entry/path", json!("/**")),
            ("/approvals/1/comment", json!("edited")),
        ] {
            let mut v: Value = serde_json::from_str(&to_json(&e)).unwrap();
            *v.pointer_mut(pointer).unwrap() = value;
            let r = import(&v.to_string());
            assert!(
                matches!(r, Err(ImportError::Hash { .. })),
                "{pointer}: {r:?}"
            );
        }
        let mut v: Value = serde_json::from_str(&to_json(&e)).unwrap();
        v["approvals"].as_array_mut().unwrap().pop();
        assert!(matches!(
            import(&v.to_string()),
            Err(ImportError::Hash { .. })
        ));
        // Hashed correctly but impossible.
        let cases = [
            (approval("", "/a", "/a", 1), "the reviewer is empty"),
            (
                approval("x", "/etc/*", "/opt/y", 1),
                "\"file /etc/* (read)\" does not cover \"file /opt/y (read)\"",
            ),
            (
                Approval {
                    workload: "/other".into(),
                    ..approval("x", "/a", "/a", 1)
                },
                "belongs to workload \"/other\"",
            ),
        ];
        for (a, reason) in cases {
            let err = import(&to_json(&sample().with_approvals(vec![a.clone()]))).unwrap_err();
            let want = format!("invalid approval {:?}: {reason}", a.proposal_id);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let count = tampered(|v| v["profile"]["connects"][0][1]["count"] = json!(5));
        assert!(matches!(count, Err(ImportError::Hash { .. })), "{count:?}");
        let path = tampered(|v| v["profile"]["files"][0][0]["path"] = json!("/etc/passwd"));
        let msg = path.unwrap_err().to_string();
        let start = "content hash mismatch: the file was modified or corrupted; expected ";
        assert!(msg.starts_with(start), "{msg}");
        assert!(msg.contains(&sample().content_sha256), "{msg}");
        let gone = tampered(|v| _ = v.as_object_mut().unwrap().remove("content_sha256"));
        match gone {
            Err(e @ ImportError::Hash { .. }) => assert!(e.to_string().contains("(missing)")),
            other => panic!("{other:?}"),
        }
        let schema = tampered(|v| v["schema"] = json!(2)).unwrap_err();
        let msg = "unsupported export schema 2: this build reads schema 1";
        assert_eq!(schema.to_string(), msg);
        assert!(matches!(schema, ImportError::Schema { found: 2, .. }));
        let yaml = to_yaml(&sample()).unwrap().replace("count: 4", "count: 40");
        assert!(matches!(import(&yaml), Err(ImportError::Hash { .. })));
        // The learning state is informational, outside the hash.
        assert!(tampered(|v| v["learning"] = json!("edited")).is_ok());
    }

    #[test]
    fn truncated_and_malformed_files_are_rejected() {
        let json = to_json(&sample());
        let body = json.trim_end();
        for cut in 0..body.len() {
            let r = import(&body[..cut]);
            assert!(matches!(r, Err(ImportError::Parse { .. })), "{cut}: {r:?}");
        }
        let yaml = to_yaml(&sample()).unwrap();
        let lines: Vec<&str> = yaml.lines().collect();
        for n in 0..lines.len() {
            assert!(import(&lines[..n].join("\n")).is_err(), "{n} lines");
        }
        let cases = [
            ("{\n  \"schema\": 1,\n  \"workload\": }", "JSON"),
            ("schema: 1\nworkload: [\n", "YAML"),
            ("schema: 1\nworkload: w\nprofile: 7\n", "YAML"),
        ];
        for (text, format) in cases {
            let e = import(text).unwrap_err();
            let ImportError::Parse { location, .. } = &e else {
                panic!("{e:?}")
            };
            let msg = e.to_string();
            assert_eq!(location.map(|l| l.0), Some(3), "{msg}");
            let start = format!("malformed {format} export: ");
            assert!(msg.starts_with(&start) && msg.contains("line 3"), "{msg}");
        }
    }

    /// [`TINY`] with the value at a JSON pointer replaced, exported with a matching hash.
    fn edited(pointer: &str, value: Value) -> String {
        let mut v = serde_json::to_value(tiny()).unwrap();
        *v.pointer_mut(pointer).unwrap() = value;
        let p: Profile = serde_json::from_value(v).unwrap();
        to_json(&export("w", "r", Value::Null, &p))
    }

    #[test]
    fn invalid_content_is_rejected_even_with_a_matching_hash() {
        // JSON pointer into TINY | new value | expected part of the message
        let cases = r#"
            /files/1/1/count     | 0             | "file /proc/*/status (read)": seen count is 0
            /execs/0/1/first_ns  | 21            | first seen (21) is after last seen (20)
            /connects/0/0/addr   | "localhost"   | "connect tcp localhost:5432": "localhost" is
            /listens/0/0/addr    | "0.0.0.0"     | "listen udp [0.0.0.0]:53": "0.0.0.0" is not an IP
            /connects/0/0/addr   | "10.0.0.0/33" | "10.0.0.0/33" is not an IP address or CIDR
            /connects/0/0/family | "unix"        | protocol tcp does not belong to the family
            /listens/0/0/family  | "unix"        | protocol udp does not belong to the family
        "#;
        for case in cases.lines().filter(|l| !l.trim().is_empty()) {
            let [pointer, value, needle] =
                [0, 1, 2].map(|i| case.split('|').nth(i).unwrap().trim());
            match import(&edited(pointer, serde_json::from_str(value).unwrap())) {
                Err(e @ ImportError::Invalid { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with("invalid entry \"") && msg.contains(needle),
                        "{msg}"
                    );
                }
                other => panic!("{case}: {other:?}"),
            }
        }
        let unix = json!({"family": "unix", "protocol": "dgram", "addr": "@a", "port": 53});
        let port = import(&edited("/listens/0/0", unix)).unwrap_err();
        assert!(port.to_string().ends_with("must have port 0"), "{port}");
        let empty = import(&to_json(&export(" ", "r", Value::Null, &tiny())));
        assert_eq!(empty.unwrap_err().to_string(), "invalid workload: is empty");
        // Patterns, CIDRs and unix sockets are fine.
        let cidr = json!({"family": "inet6", "protocol": "tcp", "addr": "fd00::/8", "port": 443});
        let unix = json!({"family": "unix", "protocol": "dgram", "addr": "@a", "port": 0});
        import(&edited("/files/0/0/path", json!("*/relative/<num>"))).unwrap();
        import(&edited("/connects/0/0", cidr)).unwrap();
        import(&edited("/listens/0/0", unix)).unwrap();
    }

    #[test]
    fn golden_content_hash() {
        let text = r#"{"execs": [], "lineage": [], "connects": [], "listens": [], "files": [
            [{"path": "/etc/hosts", "access": "read"}, {"count": 3, "first_ns": 10, "last_ns": 20}]
        ]}"#;
        let p: Profile = serde_json::from_str(text).unwrap();
        let e = export("web", "1", json!({"ignored": true}), &p);
        let canonical_text = concat!(
            r#"{"profile":{"connects":[],"execs":[],"#,
            r#""files":[[{"access":"read","path":"/etc/hosts"},"#,
            r#"{"count":3,"first_ns":10,"last_ns":20}]],"lineage":[],"listens":[]},"#,
            r#""revision":"1","schema":1,"workload":"web"}"#
        );
        assert_eq!(canonical(&e), canonical_text);
        let golden = "25dfc4c617fc45b3c943e2009238fae2dff9be9d27e451026d111f09b529e344";
        assert_eq!(e.content_sha256, golden);
    }

    #[test]
    fn output_is_stable() {
        // The same profile built independently, inserting its entries in reverse order.
        let a = tiny();
        let mut b = Profile::default();
        let entries: Vec<_> = crate::diff::entries(&a).map(|(e, s)| (e, *s)).collect();
        for (e, s) in entries.into_iter().rev() {
            insert(&mut b, e, s);
        }
        let ea = export("w", "r", json!({"b": 1, "a": 2}), &a);
        let eb = export("w", "r", json!({"a": 2, "b": 1}), &b);
        assert_eq!(ea.content_sha256, eb.content_sha256);
        assert_eq!(ea.content_sha256, ea.computed_sha256());
        assert_eq!(to_json(&ea), to_json(&eb));
        assert_eq!(to_yaml(&ea).unwrap(), to_yaml(&eb).unwrap());
        assert!(to_json(&ea).ends_with("}\n"));
        let back = import(&to_yaml(&ea).unwrap()).unwrap();
        assert_eq!(to_json(&back), to_json(&ea));
    }
}
