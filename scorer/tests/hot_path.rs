//! The common case — a covered event, no rule firing — allocates nothing, and how fast it is
//! (printed, not asserted: `cargo test --release -p scorer --test hot_path -- --nocapture`).

mod support;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    time::Instant,
};

use scorer::{Scorer, WorkloadState};

/// Counts this thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn covered_events_do_not_allocate() {
    let profile = support::learned(3000);
    let events: Vec<_> = (0..3000).map(support::event).collect();
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    // The first pass fills the coverage cache.
    for e in &events {
        assert!(scorer.score(e, &profile, &mut state).is_none(), "{e:?}");
    }
    let before = allocations();
    for e in &events {
        assert!(scorer.score(e, &profile, &mut state).is_none());
    }
    assert_eq!(allocations() - before, 0, "allocations on the hot path");
}

#[test]
fn prints_throughput() {
    let profile = support::learned(3000);
    let events: Vec<_> = (0..3000).map(support::event).collect();
    let scorer = Scorer::default();
    let mut state = WorkloadState::default();
    let rounds = if cfg!(debug_assertions) { 20 } else { 500 };
    let start = Instant::now();
    let mut alerts = 0;
    for _ in 0..rounds {
        for e in &events {
            alerts += usize::from(scorer.score(e, &profile, &mut state).is_some());
        }
    }
    let n = rounds * events.len();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(alerts, 0);
    println!(
        "scored {n} covered events in {secs:.3} s: {:.0} events/s on one core ({} build)",
        n as f64 / secs,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}
