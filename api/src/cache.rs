//! Answers built once and served many times. A cached answer is keyed by the request's path and
//! query, and stays valid while the change counter of the resource it was built from
//! ([`crate::Versions`]) holds still, and for at most [`MAX_AGE`] (answers show times relative to
//! now, such as how long a profile has been stable). The body is kept serialised, so a hit costs
//! a map lookup and a reference count, and concurrent requests share one copy of it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::header,
    response::{IntoResponse, Response},
};

use crate::ApiError;

/// How long an answer is served from the cache at most.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Most answers kept; beyond, the cache starts over.
const MAX_ENTRIES: usize = 256;

/// Largest body kept (bigger ones are built each time).
const MAX_BODY: usize = 4 << 20;

struct Entry {
    version: u64,
    built: Instant,
    content_type: &'static str,
    body: Bytes,
}

/// The cache of built answers.
#[derive(Default, Clone)]
pub struct ResponseCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl ResponseCache {
    /// The answer to `key` built at `version` (any version when `None`: nothing is cached), or
    /// a fresh one from `build` (a content type and a body), kept for the next caller.
    pub fn serve(
        &self,
        key: &str,
        version: Option<u64>,
        build: impl FnOnce() -> Result<(&'static str, Vec<u8>), ApiError>,
    ) -> Result<Response, ApiError> {
        let Some(version) = version else {
            let (ct, body) = build()?;
            return Ok(answer(ct, Bytes::from(body)));
        };
        if let Some(e) = self.lock().get(key)
            && e.version == version
            && e.built.elapsed() < MAX_AGE
        {
            return Ok(answer(e.content_type, e.body.clone()));
        }
        let built = Instant::now();
        let (content_type, body) = build()?;
        let body = Bytes::from(body);
        if body.len() <= MAX_BODY {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key.to_string(),
                Entry {
                    version,
                    built,
                    content_type,
                    body: body.clone(),
                },
            );
        }
        Ok(answer(content_type, body))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
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

    #[test]
    fn an_answer_is_built_again_only_when_its_version_moves() {
        let cache = ResponseCache::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            json(&builds.get())
        };
        for _ in 0..3 {
            cache.serve("/a", Some(1), build).unwrap();
        }
        assert_eq!(builds.get(), 1, "served from the cache");
        cache.serve("/a", Some(2), build).unwrap();
        assert_eq!(builds.get(), 2, "the version moved");
        cache.serve("/b", Some(2), build).unwrap();
        assert_eq!(builds.get(), 3, "another key");
        cache.serve("/b", None, build).unwrap();
        cache.serve("/b", None, build).unwrap();
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
        cache.serve("/a", Some(1), build).unwrap();
        std::thread::sleep(MAX_AGE + Duration::from_millis(20));
        cache.serve("/a", Some(1), build).unwrap();
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn an_error_is_not_cached() {
        let cache = ResponseCache::default();
        let err = cache.serve("/a", Some(1), || Err(ApiError::not_found("no")));
        assert!(err.is_err());
        let ok = cache.serve("/a", Some(1), || json(&1)).unwrap();
        assert_eq!(ok.status(), axum::http::StatusCode::OK);
    }
}
