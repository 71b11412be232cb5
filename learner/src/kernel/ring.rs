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
    /// The ring's positions, to tell how full it is.
    fill: Option<RingFill>,
    /// Bytes waiting when the latest drain started.
    pub pending_bytes: u64,
    /// The most bytes seen waiting.
    pub max_pending_bytes: u64,
    /// The ring's size.
    pub capacity_bytes: u64,
}

/// A read-only view of a BPF ring buffer's consumer and producer positions (its first two
/// pages), so the fill can be read without consuming anything.
struct RingFill {
    base: *mut libc::c_void,
    len: usize,
    page: usize,
}

// SAFETY: the mapping is only read, with atomic loads, and unmapped once on drop.
unsafe impl Send for RingFill {}

impl RingFill {
    fn new(fd: std::os::fd::RawFd) -> std::io::Result<RingFill> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = 2 * page;
        // SAFETY: a fresh shared read-only mapping of the ring map's first two pages (consumer
        // and producer positions), which the kernel allows for ring buffer maps.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RingFill { base, len, page })
    }

    /// Bytes the producer wrote that the consumer has not read.
    fn pending(&self) -> u64 {
        // SAFETY: both positions are u64s at the start of their page, inside the mapping, and
        // updated by the kernel and the consumer atomically.
        let (consumer, producer) = unsafe {
            let c = &*(self.base as *const std::sync::atomic::AtomicU64);
            let p = &*(self.base.byte_add(self.page) as *const std::sync::atomic::AtomicU64);
            (
                c.load(std::sync::atomic::Ordering::Acquire),
                p.load(std::sync::atomic::Ordering::Acquire),
            )
        };
        producer.saturating_sub(consumer)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

impl RingReader {
    /// Wraps a ring buffer of `capacity_bytes` taken from [`super::Probes::take_ring`].
    pub fn new(ring: RingBuf<MapData>, capacity_bytes: u64) -> std::io::Result<Self> {
        let fill = match RingFill::new(std::os::fd::AsRawFd::as_raw_fd(&ring)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(error = %e, "the ring buffer's fill cannot be read");
                None
            }
        };
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the AsyncFd
        // (and the RingBuf inside it) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(RingReader {
            fd,
            poll: POLL_INTERVAL,
            received: 0,
            fill,
            pending_bytes: 0,
            max_pending_bytes: 0,
            capacity_bytes,
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
                if let Some(fill) = &self.fill {
                    self.pending_bytes = fill.pending();
                    self.max_pending_bytes = self.max_pending_bytes.max(self.pending_bytes);
                }
                // Readiness is cleared before draining, not after: a wake-up that lands while
                // the ring drains then makes the next wait return at once instead of being lost
                // (the kernel side wakes the reader at most every couple of milliseconds).
                guard.clear_ready();
                let n = Self::drain_ring(guard.get_inner_mut(), f);
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
        if let Some(fill) = &self.fill {
            self.pending_bytes = fill.pending();
            self.max_pending_bytes = self.max_pending_bytes.max(self.pending_bytes);
        }
        let n = Self::drain_ring(self.fd.get_mut(), f);
        self.received += n as u64;
        n
    }
}
