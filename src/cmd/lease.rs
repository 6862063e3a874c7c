//! LEASE commands (issue 3): the command layer over `crate::limiter::lease`.

use super::CommandSpec;

/// LEASE commands.
pub const COMMANDS: &[CommandSpec] = &[];
