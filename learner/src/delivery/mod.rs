//! Alert delivery to a webhook and to Alertmanager through a durable outbox (one entry per
//! destination), and the Falco JSON rendering of alerts.
//!
//! An alert is put in the outbox in the same durable write that stores it (see
//! [`crate::alerting::Alerter`]); a delivery pass, spawned on the agent's runtime from its tick,
//! sends due entries and removes each only once the receiver answered 2xx. The agent also starts a
//! pass as soon as an alert is raised, so a new alert does not wait for the next tick. A failed send is
//! retried with exponential backoff; a restarted agent retries what is pending at once.

pub mod alertmanager;
pub mod elasticsearch;
pub mod falco;
pub mod outbox;
pub mod webhook;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

pub use outbox::{Destination, Outbox, OutboxEntry};
pub use webhook::Webhook;

use crate::{control::SharedRecorder, recorder::now_ns};

/// Entries sent by one delivery pass at most.
const BATCH: usize = 8;

/// The outbox as shared by the alerter and the delivery passes.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

/// Runs delivery passes, one at a time, on the current tokio runtime.
pub struct Delivery {
    recorder: SharedRecorder,
    outbox: SharedOutbox,
    senders: Senders,
    pass: Option<tokio::task::JoinHandle<()>>,
}

/// The sender of each destination.
type Senders = Arc<Vec<(Destination, Webhook)>>;

/// This machine's host name (empty when unknown), read once.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // (or truncates, which the search for NUL below handles).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
}

impl Delivery {
    /// Delivery of `outbox`'s entries to each destination's sender; the store is reached
    /// through `recorder`. The outbox should be set to the same destinations
    /// ([`Outbox::with_destinations`]).
    pub fn new(
        recorder: SharedRecorder,
        outbox: SharedOutbox,
        senders: Vec<(Destination, Webhook)>,
    ) -> Delivery {
        Delivery {
            recorder,
            outbox,
            senders: Arc::new(senders),
            pass: None,
        }
    }

    /// Delivery counts so far.
    pub fn stats(&self) -> DeliveryStats {
        let ob = lock(&self.outbox);
        DeliveryStats {
            delivered: ob.delivered,
            failed: ob.failed,
            pending: ob.pending(),
        }
    }

    /// Starts a delivery pass when none is running and an entry is due. Never waits on the
    /// network; must be called from within a tokio runtime.
    pub fn poll(&mut self) {
        if self.pass.as_ref().is_some_and(|p| !p.is_finished()) {
            return;
        }
        self.pass = None;
        let due = lock(&self.outbox).has_due(now_ns());
        if due {
            let (recorder, outbox, senders) = (
                self.recorder.clone(),
                self.outbox.clone(),
                self.senders.clone(),
            );
            self.pass = Some(tokio::spawn(pass(recorder, outbox, senders)));
        }
    }
}

/// Delivery counts for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStats {
    /// Alerts the receiver took (2xx) since the agent started.
    pub delivered: u64,
    /// Failed sends since the agent started (each is retried).
    pub failed: u64,
    /// Alerts waiting for delivery.
    pub pending: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends the due entries, a few at a time, until none is due (entries put in the outbox while a
/// pass runs go out in the same pass); locks are held only between sends. Each entry sent is
/// either removed or due only later (its retry), so the pass ends.
async fn pass(recorder: SharedRecorder, outbox: SharedOutbox, senders: Senders) {
    loop {
        let due = lock(&outbox).due(now_ns(), BATCH);
        if !send_batch(&recorder, &outbox, &senders, due).await {
            break;
        }
    }
}

/// Sends `due`; false when nothing was sent.
async fn send_batch(
    recorder: &SharedRecorder,
    outbox: &SharedOutbox,
    senders: &Senders,
    due: Vec<OutboxEntry>,
) -> bool {
    let mut sent = false;
    for entry in due {
        let Some((_, sender)) = senders.iter().find(|(d, _)| *d == entry.dest) else {
            continue;
        };
        sent = true;
        let dest = entry.dest.as_str();
        let result = sender.send(&entry.key, &entry.payload).await;
        // Lock order as in the event path: recorder, then outbox.
        let r = lock(recorder);
        let mut ob = lock(outbox);
        match result {
            Ok(()) => {
                tracing::debug!(key = %entry.key, dest, attempts = entry.attempts + 1, "alert delivered");
                if let Err(e) = ob.delivered(r.store(), entry.seq) {
                    tracing::warn!(key = %entry.key, error = %e, "delivered alert not removed from the outbox");
                }
            }
            Err(err) => match ob.retry(r.store(), entry.seq, now_ns()) {
                Ok(wait) => tracing::warn!(key = %entry.key, dest, error = %err,
                    retry_in = %humantime::format_duration(round(wait)), "alert delivery failed"),
                Err(e) => tracing::warn!(key = %entry.key, dest, error = %err, store_error = %e,
                    "alert delivery failed; retry not recorded"),
            },
        }
    }
    sent
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
