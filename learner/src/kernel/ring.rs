//! The asynchronous ring-buffer reader.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// How often the reader drains the ring without being woken. The kernel side wakes it only once
/// enough data waits, so this bounds the delay of a lone event.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The drain period while events must be handled promptly (alerting workloads): a lone event
/// waits at most this long, and the workload pays nothing for it (no wake-up per event, which
/// would cost every event a wake-up of the reader).
pub const PROMPT_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Reads records from the kernel ring buffer as they arrive.
pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
    /// The drain period.
    poll: Duration,
    /// Records handed to the caller so far.
    pub received: u64,
}

impl RingReader {
    /// Wraps a ring buffer taken from [`super::Probes::take_ring`].
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the AsyncFd
        // (and the RingBuf inside it) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(RingReader {
            fd,
            poll: POLL_INTERVAL,
            received: 0,
        })
    }

    /// Sets the drain period ([`POLL_INTERVAL`] or [`PROMPT_POLL_INTERVAL`]).
    pub fn set_poll_interval(&mut self, poll: Duration) {
        self.poll = poll;
    }

    /// Waits until the kernel wakes the reader or the drain period passes, then passes each
    /// waiting record to `f` (borrowed from the ring, so nothing is copied). Returns the number
    /// of records handled (possibly 0).
    pub async fn read_batch(&mut self, f: impl FnMut(&[u8])) -> std::io::Result<usize> {
        match tokio::time::timeout(self.poll, self.fd.readable_mut()).await {
            Ok(guard) => {
                let mut guard = guard?;
                let n = Self::drain_ring(guard.get_inner_mut(), f);
                guard.clear_ready();
                self.received += n as u64;
                Ok(n)
            }
            Err(_elapsed) => Ok(self.drain(f)),
        }
    }

    fn drain_ring(ring: &mut RingBuf<MapData>, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        n
    }

    /// Handles whatever is in the ring now without waiting (used at shutdown).
    pub fn drain(&mut self, f: impl FnMut(&[u8])) -> usize {
        let n = Self::drain_ring(self.fd.get_mut(), f);
        self.received += n as u64;
        n
    }
}
