//! The reply value every command handler returns. One type covers RESP2 and RESP3: RESP3-only
//! shapes (map, set, double, boolean, push, verbatim, null) degrade to their RESP2 equivalents in
//! the encoder, so handlers never look at the protocol version for ordinary replies.

use bytes::Bytes;

/// Which protocol a connection speaks (chosen with `HELLO`; RESP2 until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RespVersion {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A reply frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text` status reply.
    Simple(Bytes),
    /// `-CODE text` error reply; holds the text without the leading `-`.
    Error(Bytes),
    /// `:n` integer.
    Integer(i64),
    /// `$len` bulk string.
    Bulk(Bytes),
    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// `*len` array.
    Array(Vec<Frame>),
    /// `%len` map; a flat key/value array in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// `~len` set; an array in RESP2.
    Set(Vec<Frame>),
    /// `,x` double; a bulk string in RESP2.
    Double(f64),
    /// `#t`/`#f` boolean; the integer 1/0 in RESP2.
    Boolean(bool),
    /// `=len` verbatim string with a three-letter format; a bulk string in RESP2.
    Verbatim(&'static str, Bytes),
    /// `>len` push (out-of-band) message; an array in RESP2.
    Push(Vec<Frame>),
    /// Several replies written one after the other, for the commands Redis answers more than
    /// once (`SUBSCRIBE a b` sends one confirmation per channel). Inside an `EXEC` reply the
    /// frames are spliced into the array, exactly as Redis writes them.
    Seq(Vec<Frame>),
    /// `(digits` big number; a bulk string in RESP2 (a script's `{big_number=...}`).
    BigNumber(Bytes),
}

impl Frame {
    /// `+OK`.
    pub const OK: Frame = Frame::Simple(Bytes::from_static(b"OK"));

    /// A status reply from static text.
    pub const fn simple(s: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// A bulk string copied from `b`.
    pub fn bulk(b: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// A bulk string from owned text, without copying.
    pub fn bulk_string(s: String) -> Frame {
        Frame::Bulk(Bytes::from(s))
    }

    /// An error reply; `text` must start with the error code (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(text.into()))
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }
}
