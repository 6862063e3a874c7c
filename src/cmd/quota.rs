//! QUOTA commands (issue 3): the command layer over `crate::limiter::quota`.

use super::CommandSpec;

/// QUOTA commands.
pub const COMMANDS: &[CommandSpec] = &[];
