//! The engine's typed error. A denial is not an error: it is a decision.

use thiserror::Error;

use crate::error::CommandError;
use crate::policy::model::PolicyError;

/// Why the engine refused a call (nothing was changed).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key holds a value of another kind (a string, another limiter family, ...).
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A policy-level refusal: an unknown policy or scope, a bad definition, an unknown or
    /// mismatched reservation. The text says which.
    #[error("ERR {0}")]
    Policy(String),
    /// The change was made but its append-only record could not be made durable (the
    /// `appendfsync always` wait failed); the text says why.
    #[error("MISCONF Errors writing to the AOF file: {0}")]
    Persist(String),
}

impl From<PolicyError> for Error {
    fn from(e: PolicyError) -> Error {
        Error::Policy(e.0)
    }
}

impl From<Error> for CommandError {
    fn from(e: Error) -> CommandError {
        match e {
            Error::WrongType => CommandError::WrongType,
            Error::Policy(text) => CommandError::other(text),
            Error::Persist(text) => {
                CommandError::Coded(format!("MISCONF Errors writing to the AOF file: {text}"))
            }
        }
    }
}
