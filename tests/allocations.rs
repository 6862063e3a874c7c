//! Heap allocations per hot command through the dispatcher (issue 16: the engine API must not
//! cost the RESP path an extra allocation per command). A counting global allocator wraps the
//! system's and counts per thread; each case runs the command many times on a warm key and asserts the average
//! allocations per call. The budgets are the counts measured before the engine refactor
//! (at 9c7801b: CL.THROTTLE 1, GCRA 2, RATE.TAKE 1, LIMIT.CHECK 60;
//! docs/benchmarks.md, run AG); a change that adds an allocation to one of these paths fails
//! here deterministically, without timing anything.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use limitkv::cmd::testing::Harness;
use limitkv::cmd::{dispatch, Ctx};

struct Counting;

thread_local! {
    /// Allocations made by this thread (a `const` thread-local: reading it never allocates).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; those allocations don't matter.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY-free: this only forwards to `System` and counts; the crate's own code keeps
// `forbid(unsafe_code)`, tests may implement the allocator trait (an unsafe trait).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CALLS: u64 = 1000;

/// Average allocations of one dispatch of `words` (after a warm-up), the reply dropped.
fn per_call(h: &mut Harness, words: &[&str]) -> f64 {
    let req: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let run = |h: &mut Harness| {
        h.clock.advance(Duration::from_micros(1));
        let now = h.clock_now();
        drop(dispatch(
            &mut Ctx::new(&h.shared, &mut h.session, now),
            &req,
        ));
    };
    run(h);
    // The warm-up's usage-history sample is folded now: the history's entries for this policy
    // and identity are allocated once, not per call (the thread's sample buffer is too).
    h.shared.engine.usage.read(h.clock_now(), |_| ());
    let before = allocations();
    for _ in 0..CALLS {
        run(h);
    }
    (allocations() - before) as f64 / CALLS as f64
}

fn assert_budget(words: &[&str], budget: f64, setup: &[&[&str]]) {
    let mut h = Harness::new();
    // A call preempted past slowlog-log-slower-than (10 ms) would allocate a slow log entry:
    // the slow log is off here, so the count is the command's own.
    h.run(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    for s in setup {
        h.run(s);
    }
    let n = per_call(&mut h, words);
    println!("{words:?}: {n:.4} allocations per call", n = n);
    assert!(
        n <= budget,
        "{words:?} allocates {n:.2} times per call, budget {budget}"
    );
}

#[test]
fn cl_throttle_allocates_only_its_reply() {
    assert_budget(&["CL.THROTTLE", "user:1", "15", "30", "60"], 1.0, &[]);
}

#[test]
fn gcra_allocates_only_its_reply() {
    // 2 before the engine existed: the float parse of the period lowercased a copy of it.
    assert_budget(&["GCRA", "user:1", "15", "30", "60"], 1.0, &[]);
}

#[test]
fn rate_take_allocates_only_its_reply() {
    assert_budget(&["RATE.TAKE", "user:1", "1000/1s", "BURST", "50"], 1.0, &[]);
}

#[test]
fn limit_check_stays_within_its_budget() {
    assert_budget(
        &["LIMIT.CHECK", "plan", "user:1", "TOKENS", "10"],
        LIMIT_CHECK_BUDGET,
        &[&[
            "POLICY.SET",
            "plan",
            "RATE",
            "1000/1s",
            "WINDOW",
            "100000/1m",
            "QUOTA",
            "10000000/day",
            "TOKENS",
            "1000000/1m",
        ]],
    );
}

/// LIMIT.CHECK builds a map reply with per-rule maps and header strings and derives one key
/// per rule; its count, measured before the engine refactor, is the budget.
const LIMIT_CHECK_BUDGET: f64 = 60.0;
