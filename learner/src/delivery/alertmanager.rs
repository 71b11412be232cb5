//! Alerts for Prometheus Alertmanager: each alert is POSTed to `{url}/api/v2/alerts` as a
//! one-element array, through the same outbox as the webhook (at least once, with retries).

use scorer::alert::Alert;

use super::webhook::{Webhook, WebhookError};

/// The API path alerts are POSTed to, below the Alertmanager's base URL.
pub const ALERTS_PATH: &str = "/api/v2/alerts";

/// A sender of alerts to the Alertmanager at `base_url` (e.g. `http://127.0.0.1:9093`).
pub fn sender(base_url: &str) -> Result<Webhook, WebhookError> {
    let url = format!("{}{ALERTS_PATH}", base_url.trim_end_matches('/'));
    Webhook::new(&url, None)
}

/// `Baseliner` and the rule in upper camel case (`crypto-miner`: `BaselinerCryptoMiner`);
/// `BaselinerDeviation` for profile deviations (novelty, rarity) and alerts without reasons.
pub fn alert_name(rule: Option<&str>) -> String {
    match rule {
        None | Some("" | "novelty" | "rarity") => "BaselinerDeviation".to_string(),
        Some(rule) => {
            let mut name = String::from("Baseliner");
            for part in rule.split(|c: char| !c.is_ascii_alphanumeric()) {
                let mut chars = part.chars();
                if let Some(first) = chars.next() {
                    name.push(first.to_ascii_uppercase());
                    name.extend(chars);
                }
            }
            name
        }
    }
}

/// RFC 3339 (UTC, nanoseconds) of Unix-epoch nanoseconds.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

/// The Alertmanager API v2 body for `alert` raised on `node`.
pub fn payload(alert: &Alert, node: &str) -> serde_json::Value {
    let rule = alert.reasons.first().map(|r| r.rule.as_str());
    let description = alert
        .reasons
        .iter()
        .map(|r| format!("[{}] {}", r.rule, r.text))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::json!([{
        "labels": {
            "alertname": alert_name(rule),
            "severity": alert.severity.as_str(),
            "workload": alert.workload,
            "rule": rule.unwrap_or("none"),
            "key": alert.key,
            "node": node,
        },
        "annotations": {
            "summary": alert.summary,
            "description": description,
        },
        "startsAt": rfc3339(alert.first_ns),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(alert_name(Some("crypto-miner")), "BaselinerCryptoMiner");
        assert_eq!(
            alert_name(Some("shell-from-server")),
            "BaselinerShellFromServer"
        );
        assert_eq!(alert_name(Some("novelty")), "BaselinerDeviation");
        assert_eq!(alert_name(None), "BaselinerDeviation");
        assert_eq!(
            rfc3339(1_500_000_000_000_000_001),
            "2017-07-14T02:40:00.000000001Z"
        );
        assert_eq!(
            sender("http://127.0.0.1:9093/").unwrap().url().as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
    }
}
