//! Every error the server can put on the wire, and the startup/persistence errors.
//!
//! Wire texts live here and nowhere else; they follow Redis's wording wherever Redis has a
//! standard message, because clients and test suites match on them. Depends on nothing else in
//! the crate (the error reply frame is built in `protocol::frame`).

use thiserror::Error;

/// The request stream cannot be decoded: reply once with `-ERR Protocol error: ...` and close.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*` header is not a number or exceeds the element cap.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$` header is not a number, negative, or exceeds the bulk cap.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a multibulk did not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// An inline request longer than the inline cap.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// A `*` header line longer than the inline cap.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$` header line longer than the inline cap.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline request with an unterminated quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Too many elements before authentication.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// Too large a bulk before authentication.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// A TLS handshake record arrived on a plain-text port (a client configured for TLS).
    #[error("Protocol error: TLS handshake on a plain-text port")]
    TlsHandshake,
}

/// Why a new connection is turned away before it is served: written once, then closed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RefusedConnection {
    /// `maxclients` connections are open already.
    #[error("ERR max number of clients reached")]
    MaxClients,
    /// Protected mode: no password for the default user and a non-loopback peer (Redis's text).
    #[error(
        "DENIED Redis is running in protected mode because protected mode is enabled and no \
         password is set for the default user. In this mode connections are only accepted from \
         the loopback interface. If you want to connect from external computers to Redis you may \
         adopt one of the following solutions: 1) Just disable protected mode sending the command \
         'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from \
         the same host the server is running, however MAKE SURE Redis is not publicly accessible \
         from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) \
         Alternatively you can just disable the protected mode by editing the Redis \
         configuration file, and setting the protected mode option to 'no', and then restarting \
         the server. 3) If you started the server manually just for testing, restart it with the \
         '--protected-mode no' option. 4) Setup a an authentication password for the default \
         user. NOTE: You only need to do one of the above things in order for the server to \
         start accepting connections from the outside."
    )]
    ProtectedMode,
}

impl RefusedConnection {
    /// The bytes written before the connection is closed.
    pub fn wire(&self) -> Vec<u8> {
        format!("-{self}\r\n").into_bytes()
    }
}

/// A command failed; the reply is one error line and the connection stays open.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Wrong number of arguments; holds the command name as the client sent it, lowercased.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Unknown command; holds the name and the argument preview Redis prints.
    #[error("ERR unknown command '{0}', with args beginning with: {1}")]
    UnknownCommand(String, String),
    /// Unknown subcommand of a container command (`CLIENT`, `COMMAND`, `CONFIG`).
    #[error("ERR unknown subcommand '{0}'. Try {1} HELP.")]
    UnknownSubcommand(String, String),
    /// A container's subcommand was given the wrong number of arguments where Redis checks it
    /// in the handler (`PUBSUB CHANNELS a b`); holds the subcommand as sent and the container.
    #[error("ERR unknown subcommand or wrong number of arguments for '{0}'. Try {1} HELP.")]
    SubcommandSyntax(String, String),
    /// A RESP2 connection subscribed to something ran another command; holds its full name.
    #[error(
        "ERR Can't execute '{0}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )]
    SubscribedContext(String),
    /// Generic grammar error.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be a 64-bit integer is not, or does not fit.
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// An argument that must be a float is not.
    #[error("ERR value is not a valid float")]
    NotAFloat,
    /// INCR-family overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// A key holds a value of another kind.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The connection must authenticate first.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// AUTH with a wrong password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// ACL: the user may not run the command; holds its full name (`get`, `client|list`).
    #[error("NOPERM this user has no permissions to run the '{0}' command")]
    NoPermCommand(String),
    /// ACL: the user may not touch one of the command's keys.
    #[error("NOPERM this user has no permissions to access one of the keys used as arguments")]
    NoPermKey,
    /// ACL: the user may not publish or subscribe to one of the command's channels.
    #[error("NOPERM this user has no permissions to access one of the channels used as arguments")]
    NoPermChannel,
    /// An expire argument that is not positive or overflows; holds the command name.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    /// A number outside the range the command accepts; holds the full explanation.
    #[error("ERR {0}")]
    OutOfRange(String),
    /// A command the HTTP API cannot run in a one-shot request (`SUBSCRIBE`, `MULTI`, `HELLO`,
    /// ...); holds the command's name as sent and why.
    #[error("ERR {0} is not supported over HTTP: {1}")]
    NotOverHttp(String, &'static str),
    /// Any other `ERR` condition; holds the text after `ERR `.
    #[error("ERR {0}")]
    Other(String),
    /// `maxmemory` is set, memory in use is over it, and the command may grow memory.
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    /// An error line with its own code (e.g. `NOPROTO ...`); holds the full text.
    #[error("{0}")]
    Coded(String),
    /// Cluster mode: another node serves the keys' slot (slot, `host:port`).
    #[error("MOVED {0} {1}")]
    Moved(u16, String),
    /// Cluster mode: the keys of a request (or of a transaction) hash to several slots.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// Cluster mode: the slot is unassigned, or the cluster is down; holds Redis's text.
    #[error("CLUSTERDOWN {0}")]
    ClusterDown(&'static str),
    /// Cluster mode: this node's applied policy version is older than the map requires.
    #[error("STALEPOLICY this node has applied policy version {0} but the cluster map requires {1}; push the policies again (limitkv cluster apply)")]
    StalePolicy(u64, u64),
    /// A write on a read-only replica (`replica-read-only yes`).
    #[error("READONLY You can't write against a read only replica.")]
    ReadOnlyReplica,
    /// A write while fewer replicas than `min-replicas-to-write` are in reach.
    #[error("NOREPLICAS Not enough good replicas to write.")]
    NoReplicas,
    /// `PSYNC`/`SYNC` to a replica whose own link to its master is down.
    #[error("NOMASTERLINK Can't SYNC while not connected with my master")]
    NoMasterLink,
    /// `WAIT` on a replica.
    #[error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.")]
    WaitOnReplica,
    /// `WAITAOF` on a replica (Redis 7.2's text).
    #[error("ERR WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.")]
    WaitAofOnReplica,
    /// `WAITAOF` with `numlocal` 1 while `appendonly` is off.
    #[error("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")]
    WaitAofWithoutAof,
}

impl CommandError {
    /// Shorthand for [`CommandError::Other`].
    pub fn other(text: impl Into<String>) -> CommandError {
        CommandError::Other(text.into())
    }

    /// Shorthand for [`CommandError::OutOfRange`].
    pub fn out_of_range(text: impl Into<String>) -> CommandError {
        CommandError::OutOfRange(text.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Frame;

    #[test]
    fn protected_mode_text_is_redis_word_for_word() {
        // Redis 7.0's networking.c, clientAcceptHandler, piece by piece.
        let redis = concat!(
            "-DENIED Redis is running in protected mode because protected ",
            "mode is enabled and no password is set for the default user. ",
            "In this mode connections are only accepted from the loopback interface. ",
            "If you want to connect from external computers to Redis you ",
            "may adopt one of the following solutions: ",
            "1) Just disable protected mode sending the command ",
            "'CONFIG SET protected-mode no' from the loopback interface ",
            "by connecting to Redis from the same host the server is ",
            "running, however MAKE SURE Redis is not publicly accessible ",
            "from internet if you do so. Use CONFIG REWRITE to make this ",
            "change permanent. ",
            "2) Alternatively you can just disable the protected mode by ",
            "editing the Redis configuration file, and setting the protected ",
            "mode option to 'no', and then restarting the server. ",
            "3) If you started the server manually just for testing, restart ",
            "it with the '--protected-mode no' option. ",
            "4) Setup a an authentication password for the default user. ",
            "NOTE: You only need to do one of the above things in order for ",
            "the server to start accepting connections from the outside.\r\n"
        );
        assert_eq!(
            String::from_utf8(RefusedConnection::ProtectedMode.wire()).unwrap(),
            redis
        );
        assert_eq!(
            RefusedConnection::MaxClients.wire(),
            b"-ERR max number of clients reached\r\n"
        );
    }

    #[test]
    fn wire_texts_match_redis() {
        assert_eq!(
            CommandError::WrongArity("get".into()).to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            CommandError::WrongType.to_string(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'+').to_frame(),
            Frame::error("ERR Protocol error: expected '$', got '+'")
        );
    }
}
