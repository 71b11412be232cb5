//! Enforce mode: allow-lists compiled from profiles ([`allow`]) and kept in the kernel's maps
//! for every workload in enforce mode ([`enforcer`]).

pub mod allow;
pub mod enforcer;
