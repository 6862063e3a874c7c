//! limitkv: a rate-limiter server that speaks the Redis protocol.
//!
//! Module map (dependencies flow one way: server → cmd → store → limiter → clock):
//! - [`protocol`]: pure RESP2/RESP3 framing (decode requests, encode replies).
//! - [`limiter`]: pure limiter algorithms, `(params, state, now, cost) -> (decision, state)`.
//! - [`clock`]: the injected time source.
//! - [`error`]: every wire error text.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod error;
pub mod limiter;
pub mod protocol;
