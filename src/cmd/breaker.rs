//! BREAKER commands (issue 3): the command layer over `crate::limiter::breaker`.

use super::CommandSpec;

/// BREAKER commands.
pub const COMMANDS: &[CommandSpec] = &[];
