//! WINDOW commands (issue 3): the command layer over `crate::limiter::window`.

use super::CommandSpec;

/// WINDOW commands.
pub const COMMANDS: &[CommandSpec] = &[];
