//! Pure limiter algorithms. No tokio, no store, no bytes, no I/O and no clock reads: every
//! function takes `now` as an argument, so each algorithm is table- and property-tested on its
//! own.

pub mod breaker;
pub mod cost;
pub mod decision;
pub mod gcra;
pub mod lease;
pub mod quota;
pub mod rate;
pub mod units;
pub mod window;
