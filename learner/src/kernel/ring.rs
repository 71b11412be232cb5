//! The asynchronous ring-buffer reader.

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// Reads records from the kernel ring buffer as they arrive.
pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
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
        Ok(RingReader { fd, received: 0 })
    }

    /// Waits until records are available, then passes each to `f` (borrowed from the ring, so
    /// nothing is copied). Returns the number of records handled.
    pub async fn read_batch(&mut self, mut f: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let mut guard = self.fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        guard.clear_ready();
        self.received += n as u64;
        Ok(n)
    }

    /// Handles whatever is in the ring now without waiting (used at shutdown).
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let ring = self.fd.get_mut();
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        self.received += n as u64;
        n
    }
}
