//! Everything that touches the kernel: mounts, loading and attaching the eBPF programs, the
//! ring-buffer reader and the statistics map.

pub mod caps;
pub mod diagnose;
pub mod enforce_maps;
pub mod layout;
pub mod load;
pub mod mounts;
pub mod ring;
pub mod stats;

pub use load::{LoadOptions, Probes};
pub use stats::KernelStats;
