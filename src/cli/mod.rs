//! Client-side subcommands of the `limitkv` binary: programs that connect to running servers
//! the way `redis-cli` does. [`top`] is `limitkv top`, [`cluster`] is `limitkv cluster apply`.
//!
//! Clients like any other: they speak RESP over TCP and read files, and name nothing of the
//! server's own modules but the pure cluster map (tests/layers.rs).

pub mod cluster;
pub mod top;
