//! Client-side subcommands of the `limitkv` binary: programs that connect to a running server
//! the way `redis-cli` does. [`top`] is `limitkv top`.
//!
//! A client like any other: it speaks RESP through the `redis` crate and names nothing of the
//! server's own modules (tests/layers.rs holds it to the leaves).

pub mod top;
