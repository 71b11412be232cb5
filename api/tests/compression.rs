//! Cached answers sent gzip-encoded to clients that accept it: the compressed answer is the
//! identity answer, `Accept-Encoding` is honoured with its q-values, `Vary` is set, and a change
//! of the state is compressed afresh.

mod common;

use std::{io::Read as _, sync::Arc};

use api::Versions;
use axum::{
    Router,
    body::{Body, Bytes},
    http::{Method, header},
};
use common::*;

/// The review queue of nginx, URL-encoded.
fn queue_uri() -> String {
    format!("/v1/reviews?workload={}", api::workload_segment(NGINX))
}

/// The usual fake with change counters (so answers are cached) and 30 pending proposals for
/// nginx; its router.
fn cached() -> (Arc<Fake>, Router) {
    let fake = Fake {
        versions: Some(Versions::default()),
        ..Fake::new()
    };
    for i in 0..30 {
        fake.propose(&exec(NGINX, 9_000 + i, &[&format!("/tmp/tool{i}"), "-x"]));
    }
    let fake = Arc::new(fake);
    let app = app(&fake);
    (fake, app)
}

/// GET `uri` with these `Accept-Encoding` headers.
async fn get_with(app: &Router, uri: &str, accept: &[&str]) -> Answer {
    let mut req = request(Method::GET, uri, None, Body::empty());
    for a in accept {
        req.headers_mut()
            .append(header::ACCEPT_ENCODING, a.parse().unwrap());
    }
    let a = call(app, req).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a
}

fn encoding(a: &Answer) -> Option<&str> {
    a.headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap())
}

fn vary(a: &Answer) -> Option<&str> {
    a.headers.get(header::VARY).map(|v| v.to_str().unwrap())
}

fn gunzip(body: &Bytes) -> Bytes {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut out)
        .expect("a gzip body");
    out.into()
}

#[tokio::test]
async fn a_gzip_answer_decompresses_to_the_identity_answer() {
    let (_fake, app) = cached();
    for uri in [profile_uri(NGINX, "profile"), queue_uri()] {
        let plain = get_with(&app, &uri, &[]).await.ok(JSON);
        assert_eq!(encoding(&plain), None, "{uri}");
        assert!(plain.body.len() >= api::cache::MIN_GZIP, "{uri}");
        let gz = get_with(&app, &uri, &["gzip, deflate, br"]).await.ok(JSON);
        assert_eq!(encoding(&gz), Some("gzip"), "{uri}");
        assert!(
            gz.body.len() < plain.body.len() / 2,
            "{uri}: {} bytes of {}",
            gz.body.len(),
            plain.body.len()
        );
        assert_eq!(
            gz.headers[header::CONTENT_LENGTH],
            gz.body.len().to_string()
        );
        assert_eq!(gunzip(&gz.body), plain.body, "{uri}");
        // Both encodings say the answer depends on Accept-Encoding.
        assert_eq!(vary(&plain), Some("accept-encoding"), "{uri}");
        assert_eq!(vary(&gz), Some("accept-encoding"), "{uri}");
    }
}

#[tokio::test]
async fn accept_encoding_is_honoured() {
    let (_fake, app) = cached();
    let uri = queue_uri();
    let plain = get_with(&app, &uri, &[]).await.body;
    for (accept, gzip) in [
        (&[][..], false),
        (&["gzip;q=0"][..], false),
        (&["gzip;q=0, *"][..], false),
        (&["identity"][..], false),
        (&["deflate, br"][..], false),
        (&["*;q=0"][..], false),
        (&["gzip"][..], true),
        (&["br;q=1, gzip;q=0.2"][..], true),
        (&["*"][..], true),
        (&["identity", "x-gzip"][..], true),
    ] {
        let a = get_with(&app, &uri, accept).await.ok(JSON);
        assert_eq!(encoding(&a), gzip.then_some("gzip"), "{accept:?}");
        let body = if gzip { gunzip(&a.body) } else { a.body };
        assert_eq!(body, plain, "{accept:?}");
    }
}

#[tokio::test]
async fn an_answer_after_a_change_is_compressed_afresh() {
    let (fake, app) = cached();
    let uri = queue_uri();
    let before = gunzip(&get_with(&app, &uri, &["gzip"]).await.ok(JSON).body);

    // A new proposal; the agent bumps the queue's counter.
    let added = fake.propose(&exec(NGINX, 9_500, &["/tmp/newcomer"]));
    Versions::bump(&fake.versions.as_ref().unwrap().reviews);

    let gz = get_with(&app, &uri, &["gzip"]).await.ok(JSON);
    assert_eq!(encoding(&gz), Some("gzip"));
    let after = gunzip(&gz.body);
    assert_ne!(after, before, "a stale compressed answer");
    let proposals: Vec<profiles::review::Proposal> = serde_json::from_slice(&after).unwrap();
    assert_eq!(proposals.len(), 31);
    assert!(proposals.iter().any(|p| p.id == added.id));
    assert_eq!(after, get_with(&app, &uri, &[]).await.body);

    // The profile too.
    let uri = profile_uri(NGINX, "profile");
    let before = gunzip(&get_with(&app, &uri, &["gzip"]).await.body);
    fake.profiles
        .lock()
        .unwrap()
        .get_mut(&key(NGINX, "r1"))
        .unwrap()
        .profile
        .files
        .insert(
            profiles::model::FileEntry {
                path: "/srv/new".into(),
                access: profiles::Access::Read,
            },
            profiles::model::Seen {
                count: 1,
                first_ns: NOW,
                last_ns: NOW,
            },
        );
    Versions::bump(&fake.versions.as_ref().unwrap().profiles);
    let after = gunzip(&get_with(&app, &uri, &["gzip"]).await.body);
    assert_ne!(after, before, "a stale compressed profile");
    assert!(String::from_utf8_lossy(&after).contains("/srv/new"));
    assert_eq!(after, get_with(&app, &uri, &[]).await.body);
}

#[tokio::test]
async fn uncached_answers_are_sent_as_built() {
    // No change counters (the CLI's in-process router): nothing is cached or compressed.
    let fake = Fake::new();
    for i in 0..30 {
        fake.propose(&exec(NGINX, 9_000 + i, &[&format!("/tmp/tool{i}"), "-x"]));
    }
    let app = app(&Arc::new(fake));
    let a = get_with(&app, &queue_uri(), &["gzip"]).await.ok(JSON);
    assert_eq!(encoding(&a), None);
    assert_eq!(vary(&a), None);
    assert_eq!(a.decode::<Vec<serde_json::Value>>().len(), 30);
}
