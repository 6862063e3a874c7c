//! Policies: named plans of rules from every limiter family, decided together in one atomic
//! step (issue 4).
//!
//! - [`model`]: rules, scopes, policies, overrides; their grammar and canonical words.
//! - [`decide`]: the multi-rule decision over the families' pure transitions, and the
//!   adjustments a settle makes.
//! - [`reserve`]: reservations (reserve then settle) and the settle arithmetic.
//! - [`access`]: allow and deny lists of identities and IP networks.
//! - [`registry`]: the server's policies, overrides and lists, the event ring, pending
//!   reservations.
//! - [`headers`]: the IETF RateLimit / RateLimit-Policy / Retry-After field values.
//! - [`events`]: event payloads and their one delivery point.
//! - [`suspend`]: suspensions of an identity (refused with a reason until lifted).
//! - [`upstream`]: BREAKER rules (a circuit breaker in the atomic check).
//! - [`notice`]: warning messages and links, once-per-period warnings, grace.
//! - [`webhook`]: a policy's WEBHOOK clause (where its events are POSTed).
//!
//! Everything but [`events`] is pure (no store, no clock, no I/O); the command layer
//! (`cmd::policy`) locks the rule keys, reads their states, runs [`decide::decide`] and
//! writes the result, so either every rule is charged or none is.

pub mod access;
pub mod decide;
pub mod events;
pub mod headers;
pub mod model;
pub mod notice;
pub mod registry;
pub mod reserve;
pub mod suspend;
pub mod upstream;
pub mod webhook;

pub use registry::Registry;
