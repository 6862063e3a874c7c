//! RATE commands (issue 3): the command layer over `crate::limiter::rate`.

use super::CommandSpec;

/// RATE commands.
pub const COMMANDS: &[CommandSpec] = &[];
