//! Keeping every event as evidence without slowing the event loop: events go through a bounded
//! channel to a writer thread that appends them to the evidence store, writes blocks, and applies
//! retention. A block write is a sled write that can stall for tens of milliseconds; here it
//! stalls only the writer. When the writer falls behind by a whole channel, events are counted
//! as dropped rather than held up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use profiles::Event;

use crate::{control::SharedEvidence, recorder::now_ns};

/// Events the channel holds before new ones are dropped.
const BACKLOG: usize = 8192;
/// How often buffered blocks old enough are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often evidence past its retention is removed.
const RETAIN_EVERY: Duration = Duration::from_secs(60);

/// The writer thread and the way to it.
pub struct EvidenceWriter {
    tx: Option<SyncSender<Event>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl EvidenceWriter {
    /// Starts the writer of `evidence`.
    pub fn start(evidence: SharedEvidence) -> std::io::Result<EvidenceWriter> {
        let (tx, rx) = sync_channel(BACKLOG);
        let failed = Arc::new(AtomicU64::new(0));
        let errors = failed.clone();
        let thread = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || write_loop(&evidence, &rx, &errors))?;
        Ok(EvidenceWriter {
            tx: Some(tx),
            thread: Some(thread),
            dropped: Arc::new(AtomicU64::new(0)),
            failed,
        })
    }

    /// Hands a copy of `event` to the writer; never waits.
    pub fn keep(&self, event: &Event) {
        let Some(tx) = &self.tx else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match tx.try_send(event.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("the evidence writer falls behind: events are dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events not kept because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events the store failed to take.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Writes everything sent so far, then stops the writer.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::warn!("the evidence writer panicked");
        }
    }
}

impl Drop for EvidenceWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_loop(evidence: &SharedEvidence, rx: &Receiver<Event>, failed: &AtomicU64) {
    let (mut last_flush, mut last_retain) = (Instant::now(), Instant::now());
    loop {
        let next = rx.recv_timeout(FLUSH_EVERY);
        let mut ev = evidence.lock().unwrap_or_else(|e| e.into_inner());
        let disconnected = match next {
            Ok(first) => {
                // Take what is waiting in one go, under one lock.
                for e in std::iter::once(first).chain(rx.try_iter().take(BACKLOG)) {
                    if let Err(err) = ev.append(&e)
                        && failed.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        tracing::warn!(error = %err, "an event was not kept as evidence");
                    }
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if disconnected {
            if let Err(e) = ev.flush_all() {
                tracing::warn!(error = %e, "writing the last evidence failed");
            }
            return;
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = ev.flush(now_ns()) {
                tracing::warn!(error = %e, "writing evidence failed");
            }
            last_flush = Instant::now();
        }
        if last_retain.elapsed() >= RETAIN_EVERY {
            match ev.retain(now_ns()) {
                Ok(r) if r.expired_blocks + r.evicted_blocks > 0 => {
                    tracing::info!(
                        expired = r.expired_events,
                        evicted = r.evicted_events,
                        "evidence past its retention removed"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "evidence retention failed"),
            }
            last_retain = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use profiles::{
        evidence::{EvidenceQuery, EvidenceStore, RetentionConfig},
        store::Store,
    };

    use super::*;

    fn exec(i: u64) -> Event {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "ts_ns": 1_000_000_000 + i, "kind": "exec",
            "workload": {"id": "/w", "cgroup_id": 1, "cgroup": "/w"},
            "pid": i, "tid": i, "ppid": 1, "uid": 0, "gid": 0, "comm": "true",
            "exe": "/bin/true", "filename": "/bin/true", "argv": ["/bin/true"],
            "argv_truncated": false,
        }))
        .unwrap()
    }

    #[test]
    fn every_event_sent_is_kept_once_the_writer_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ev = EvidenceStore::open(&store, RetentionConfig::default()).unwrap();
        let shared = Arc::new(Mutex::new(ev));
        let mut w = EvidenceWriter::start(shared.clone()).unwrap();
        for i in 0..1000 {
            w.keep(&exec(i));
        }
        w.finish();
        assert_eq!(w.dropped(), 0);
        assert_eq!(w.failed(), 0);
        let kept = shared
            .lock()
            .unwrap()
            .query(&EvidenceQuery::default())
            .unwrap();
        let pids: Vec<u32> = kept.iter().map(|e| e.pid).collect();
        assert_eq!(pids, (0..1000).collect::<Vec<u32>>(), "all, in order");
        assert_eq!(shared.lock().unwrap().stats().unwrap().buffered_events, 0);
        // Sending after the end neither blocks nor panics; it is counted.
        w.keep(&exec(1));
        assert_eq!(w.dropped(), 1);
    }
}
