//! Answers built once and served many times. A cached answer is keyed by the request's path and
//! query, and stays valid while the change counter of the resource it was built from
//! ([`crate::Versions`]) holds still, and for at most [`MAX_AGE`] (answers show times relative to
//! now, such as how long a profile has been stable). The body is kept serialised, so a hit costs
//! a map lookup and a reference count, and concurrent requests share one copy of it.
//!
//! A client that accepts gzip ([`AcceptEncoding`]) is sent a gzip copy of a cached body of
//! [`MIN_GZIP`] bytes or more, compressed once per cached answer and shared like the body: a
//! 120 kB review queue is 8 kB on the wire (a fifteenth), and loopback copies dominate the cost of
//! serving it.

use std::{
    collections::HashMap,
    convert::Infallible,
    io::Write as _,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::ApiError;

/// How long an answer is served from the cache at most.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Smallest body sent compressed: below, gzip's header and the work are not worth it.
pub const MIN_GZIP: usize = 1024;

/// The gzip level of cached bodies. A body is compressed once per cached answer, so at most once
/// per [`MAX_AGE`] per URL however many clients ask. On the API bench's 120 kB review queue,
/// level 9 gives 8.2 kB in 1.7 ms, the default 6 8.4 kB in 1.1 ms and 1 12.1 kB in 0.15 ms: at
/// 40,000 answers a second the 2% saved over level 6 is 7 MB/s less to copy, worth the 0.6 ms
/// once a second.
pub const GZIP_LEVEL: u32 = 9;

/// Most answers kept; beyond, the cache starts over.
const MAX_ENTRIES: usize = 256;

/// Largest body kept (bigger ones are built each time).
const MAX_BODY: usize = 4 << 20;

struct Entry {
    version: u64,
    built: Instant,
    content_type: &'static str,
    body: Bytes,
    /// The gzip copy of `body`, made by the first request that accepts gzip rather than when the
    /// answer is built: answers are rebuilt at least every [`MAX_AGE`] under load, and clients
    /// that never ask for gzip (the CLI over the unix socket, scripts) should not pay for it
    /// each time. Concurrent first requests wait for one compression. `None` inside: compressing
    /// failed (the identity body is served).
    gzip: OnceLock<Option<Bytes>>,
}

impl Entry {
    /// The gzip copy, compressed on first use.
    fn gzip(&self) -> Option<Bytes> {
        self.gzip.get_or_init(|| gzip(&self.body)).clone()
    }
}

/// Whether a request accepts a gzip-encoded answer (its `Accept-Encoding` header, RFC 9110
/// §12.5.3): `gzip` (or `x-gzip`) or `*` with a non-zero q-value. An explicit `gzip` entry
/// overrides `*`; no header means identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    /// gzip is acceptable.
    pub gzip: bool,
}

impl AcceptEncoding {
    /// Reads every `Accept-Encoding` header of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> AcceptEncoding {
        let mut gzip_q = None;
        let mut any_q = None;
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let q = quality(parts);
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    gzip_q = Some(gzip_q.map_or(q, |g: f32| g.max(q)));
                } else if coding == "*" {
                    any_q = Some(q);
                }
            }
        }
        AcceptEncoding {
            gzip: gzip_q.or(any_q).is_some_and(|q| q > 0.0),
        }
    }
}

/// The q-value among the parameters of one `Accept-Encoding` item: 1 when absent, 0 (not
/// acceptable) when malformed.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            return match value.trim().parse::<f32>() {
                Ok(q) if (0.0..=1.0).contains(&q) => q,
                _ => 0.0,
            };
        }
    }
    1.0
}

impl<S: Send + Sync> FromRequestParts<S> for AcceptEncoding {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AcceptEncoding::from_headers(&parts.headers))
    }
}

/// The cache of built answers.
#[derive(Default, Clone)]
pub struct ResponseCache {
    entries: Arc<Mutex<HashMap<String, Arc<Entry>>>>,
}

impl ResponseCache {
    /// The answer to `key` built at `version` (any version when `None`: nothing is cached, and
    /// the answer is never compressed), or a fresh one from `build` (a content type and a
    /// body), kept for the next caller. A cached answer of [`MIN_GZIP`] bytes or more is sent
    /// gzip-encoded when `accept` allows, and carries `Vary: Accept-Encoding` either way (as
    /// does a body too large to keep, which is sent as built).
    pub fn serve(
        &self,
        key: &str,
        version: Option<u64>,
        accept: AcceptEncoding,
        build: impl FnOnce() -> Result<(&'static str, Vec<u8>), ApiError>,
    ) -> Result<Response, ApiError> {
        let Some(version) = version else {
            let (ct, body) = build()?;
            return Ok(answer(ct, Bytes::from(body)));
        };
        let hit = self
            .lock()
            .get(key)
            .filter(|e| e.version == version && e.built.elapsed() < MAX_AGE)
            .cloned();
        let entry = match hit {
            Some(e) => e,
            None => {
                let built = Instant::now();
                let (content_type, body) = build()?;
                let entry = Arc::new(Entry {
                    version,
                    built,
                    content_type,
                    body: Bytes::from(body),
                    gzip: OnceLock::new(),
                });
                if entry.body.len() > MAX_BODY {
                    // Not kept, so a gzip copy would be made for every request: sent as built.
                    return Ok(encoded(&entry, AcceptEncoding::default()));
                }
                let mut entries = self.lock();
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(key.to_string(), entry.clone());
                drop(entries);
                entry
            }
        };
        // The map's lock is not held here: a compression holds up only the requests that wait
        // for this answer's gzip copy.
        Ok(encoded(&entry, accept))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer of `entry` in the encoding `accept` allows.
fn encoded(entry: &Entry, accept: AcceptEncoding) -> Response {
    if entry.body.len() < MIN_GZIP {
        return answer(entry.content_type, entry.body.clone());
    }
    let gz = if accept.gzip { entry.gzip() } else { None };
    let mut resp = match gz {
        Some(gz) => {
            let mut r = answer(entry.content_type, gz);
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => answer(entry.content_type, entry.body.clone()),
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// `body` compressed with gzip at [`GZIP_LEVEL`]; `None` when compressing fails. Only
/// [`encoded`] calls it, for bodies of [`MIN_GZIP`] bytes or more.
fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    match enc.write_all(body).and_then(|()| enc.finish()) {
        Ok(gz) => Some(Bytes::from(gz)),
        Err(e) => {
            tracing::warn!(error = %e, bytes = body.len(), "compressing an answer with gzip; serving it uncompressed");
            None
        }
    }
}

fn answer(content_type: &'static str, body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A JSON body for [`ResponseCache::serve`].
pub fn json<T: serde::Serialize>(value: &T) -> Result<(&'static str, Vec<u8>), ApiError> {
    serde_json::to_vec(value)
        .map(|b| ("application/json", b))
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const NONE: AcceptEncoding = AcceptEncoding { gzip: false };

    #[test]
    fn an_answer_is_built_again_only_when_its_version_moves() {
        let cache = ResponseCache::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            json(&builds.get())
        };
        for _ in 0..3 {
            cache.serve("/a", Some(1), NONE, build).unwrap();
        }
        assert_eq!(builds.get(), 1, "served from the cache");
        cache.serve("/a", Some(2), NONE, build).unwrap();
        assert_eq!(builds.get(), 2, "the version moved");
        cache.serve("/b", Some(2), NONE, build).unwrap();
        assert_eq!(builds.get(), 3, "another key");
        cache.serve("/b", None, NONE, build).unwrap();
        cache.serve("/b", None, NONE, build).unwrap();
        assert_eq!(builds.get(), 5, "no version: never cached");
    }

    #[test]
    fn an_answer_expires() {
        let cache = ResponseCache::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            json(&1)
        };
        cache.serve("/a", Some(1), NONE, build).unwrap();
        std::thread::sleep(MAX_AGE + Duration::from_millis(20));
        cache.serve("/a", Some(1), NONE, build).unwrap();
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn an_error_is_not_cached() {
        let cache = ResponseCache::default();
        let err = cache.serve("/a", Some(1), NONE, || Err(ApiError::not_found("no")));
        assert!(err.is_err());
        let ok = cache.serve("/a", Some(1), NONE, || json(&1)).unwrap();
        assert_eq!(ok.status(), axum::http::StatusCode::OK);
    }

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        AcceptEncoding::from_headers(&h).gzip
    }

    #[test]
    fn accept_encoding_is_read_with_its_q_values() {
        assert!(!accepts(&[]), "no header: identity");
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["GZip"]), "codings are case-insensitive");
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["gzip, deflate, br"]));
        assert!(accepts(&["br;q=1.0, gzip;q=0.5"]));
        assert!(accepts(&["deflate", "gzip"]), "several headers");
        assert!(accepts(&["*"]), "any coding");
        assert!(accepts(&["gzip ; Q=0.001"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0.000"]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["deflate, br"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=0, *"]), "gzip named overrides *");
        assert!(accepts(&["gzip, *;q=0"]), "gzip named overrides *");
        assert!(!accepts(&["gzip;q=zero"]), "a malformed q-value is no");
        assert!(!accepts(&["gzip;q=2"]), "a q-value out of range is no");
        assert!(!accepts(&["gzipped"]));
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out).unwrap();
        out
    }

    async fn parts(resp: Response) -> (HeaderMap, Bytes) {
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (headers, body)
    }

    #[tokio::test]
    async fn a_large_cached_answer_is_compressed_once_for_gzip_clients() {
        let cache = ResponseCache::default();
        let big: Vec<String> = (0..500).map(|i| format!("entry {i}")).collect();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            json(&big)
        };
        let gz = AcceptEncoding { gzip: true };
        let (h, plain) = parts(cache.serve("/a", Some(1), NONE, build).unwrap()).await;
        assert!(plain.len() >= MIN_GZIP);
        assert_eq!(h.get(header::CONTENT_ENCODING), None);
        assert_eq!(h[header::VARY], "accept-encoding");
        let (h, first) = parts(cache.serve("/a", Some(1), gz, build).unwrap()).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::VARY], "accept-encoding");
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert!(first.len() < plain.len() / 2, "{} bytes", first.len());
        assert_eq!(gunzip(&first), plain);
        let (_, second) = parts(cache.serve("/a", Some(1), gz, build).unwrap()).await;
        assert_eq!(
            second.as_ptr(),
            first.as_ptr(),
            "the compressed copy is shared"
        );
        assert_eq!(builds.get(), 1);

        // Uncached answers are sent as built.
        let (h, body) = parts(cache.serve("/a", None, gz, build).unwrap()).await;
        assert_eq!(h.get(header::CONTENT_ENCODING), None);
        assert_eq!(h.get(header::VARY), None);
        assert_eq!(body, plain);
    }

    #[tokio::test]
    async fn a_small_answer_is_never_compressed() {
        let cache = ResponseCache::default();
        let gz = AcceptEncoding { gzip: true };
        let (h, body) = parts(cache.serve("/a", Some(1), gz, || json(&[1, 2, 3])).unwrap()).await;
        assert_eq!(h.get(header::CONTENT_ENCODING), None);
        assert_eq!(h.get(header::VARY), None);
        assert_eq!(&body[..], b"[1,2,3]");
    }
}
