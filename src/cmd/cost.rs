//! COST commands (issue 3): the command layer over `crate::limiter::cost`.

use super::CommandSpec;

/// COST commands.
pub const COMMANDS: &[CommandSpec] = &[];
