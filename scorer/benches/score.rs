//! Replay throughput of the scorer on one core: covered events (the common case), then a
//! stream where 1 in 100 events is novel. Prints events/s; `cargo bench -p scorer`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{hint::black_box, time::Instant};

use profiles::{Access, EventDetail};
use scorer::{Scorer, WorkloadState};

fn main() {
    let profile = support::learned(3000);
    let covered: Vec<_> = (0..3000).map(support::event).collect();
    let mut mixed = covered.clone();
    for (i, e) in mixed.iter_mut().enumerate().filter(|(i, _)| i % 100 == 0) {
        e.detail = EventDetail::Open {
            path: format!("/etc/new/file{i}"),
            flags: 0,
            access: Access::Read,
            path_truncated: false,
        };
    }
    let scorer = Scorer::default();
    for (name, events) in [("covered", &covered), ("1% novel", &mixed)] {
        let mut state = WorkloadState::default();
        let rounds = 1000;
        let start = Instant::now();
        let mut alerts = 0usize;
        for _ in 0..rounds {
            for e in events {
                alerts += usize::from(black_box(scorer.score(e, &profile, &mut state)).is_some());
            }
        }
        let n = rounds * events.len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {n} events in {secs:.3} s = {:.0} events/s ({alerts} alerts)",
            n as f64 / secs
        );
    }
}
