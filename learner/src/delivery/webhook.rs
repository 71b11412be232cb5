//! Sending one alert to a webhook: a JSON POST signed with HMAC-SHA256.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long one send may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Baseliner-Signature";
/// The header carrying the alert's key.
pub const KEY_HEADER: &str = "X-Baseliner-Alert-Key";

/// The webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not an http(s) URL.
    #[error("invalid webhook URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A webhook receiver of alerts.
#[derive(Debug)]
pub struct Webhook {
    url: reqwest::Url,
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook at `url` (http or https), signing with `secret` when given.
    pub fn new(url: &str, secret: Option<&[u8]>) -> Result<Webhook, WebhookError> {
        let bad = |reason: String| WebhookError::Url {
            url: url.to_string(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("only http and https URLs are supported".into()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()?;
        Ok(Webhook {
            url: parsed,
            secret: secret.map(<[u8]>::to_vec),
            client,
        })
    }

    /// The receiver's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// POSTs `payload` as JSON; succeeds on a 2xx answer only.
    pub async fn send(&self, key: &str, payload: &serde_json::Value) -> Result<(), String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(KEY_HEADER, key);
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let resp = req.body(body).send().await.map_err(|e| {
            // reqwest's top-level message hides the cause (connection refused, timeout).
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            msg
        })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`, the signature header's value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(Webhook::new("http://127.0.0.1:9000/hook", None).is_ok());
        assert!(Webhook::new("https://example.com/hook", Some(b"s")).is_ok());
        for bad in [
            "ftp://example.com/",
            "127.0.0.1:9000",
            "http://",
            "not a url",
        ] {
            let err = Webhook::new(bad, None).unwrap_err().to_string();
            assert!(err.contains("invalid webhook URL"), "{bad}: {err}");
        }
    }
}
