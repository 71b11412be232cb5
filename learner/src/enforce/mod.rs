//! Enforce mode: allow-lists compiled from profiles ([`allow`]) and kept in the kernel's maps
//! for every workload in enforce mode ([`enforcer`]), and the canary that proves blocking works
//! ([`canary`]).

pub mod allow;
pub mod canary;
pub mod enforcer;
