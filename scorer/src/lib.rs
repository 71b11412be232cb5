//! Baseliner's scorer: turns an event of a workload in alert mode into an explained alert, or
//! nothing, by comparing it with the workload's learned profile.
//!
//! Scoring model ([`score::Scorer::score`]):
//! * **Novelty**: every profile entry the event would record that the profile does not cover
//!   (widened patterns included) is a reason naming the missing entry, weighted by its kind
//!   (exec 0.35, lineage / connect / listen 0.3, new arguments of a known program and files
//!   0.2). **Rarity**: a covered entry seen once in a large profile weighs 0.1.
//! * **Heuristics** ([`rules`]), each a pure function with its own weight: crypto-miner
//!   signatures, sensitive files, exec from temp dirs, a shell spawned by a server, drift
//!   (running what the workload wrote), ptrace, privilege changes. Miner signatures count on
//!   every event — a miner learned while learning is still a miner; the others only on events
//!   outside the profile, since a profile that learned sshd reading /etc/shadow accepted it.
//! * **Combination**: weights combine by noisy-or, `1 - Π(1 - w)`, so independent signs add up
//!   without passing 1. The score maps to a [`alert::Severity`] (info < 0.2 ≤ low < 0.4 ≤
//!   medium < 0.7 ≤ high < 0.9 ≤ critical); below the configured minimum (default low) nothing
//!   is raised. The summary names the strongest reason.
//! * **Aggregation**: an alert's key hashes the workload, the rules that fired and the
//!   generalised entries, so repeats of one deviation count on one [`alert::Alert`]
//!   ([`alert::Aggregator`]) instead of flooding.
//!
//! The hot path (a covered event, no rule firing) allocates nothing: covered events are cached
//! per workload in [`state::WorkloadState`] by a keyed hash. No IO, no root.

pub mod alert;
mod entries;
pub mod rates;
pub mod rules;
pub mod score;
pub mod state;
#[cfg(test)]
mod test_support;

pub use alert::{Aggregator, Alert, Observed, Reason, Severity};
pub use score::Scorer;
pub use state::WorkloadState;
