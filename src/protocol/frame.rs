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
    /// A map whose keys are static names and whose values are [`Scalar`]s: the limiter
    /// families' admission replies. On the wire exactly the [`Frame::Map`] of
    /// [`Frame::fields_to_map`] (bulk-string keys); held without a frame per key or value, so
    /// building, encoding and dropping it is cheap.
    Fields(Vec<(&'static str, Scalar)>),
}

/// A value of a [`Frame::Fields`] reply. `Copy`: nothing to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// An integer (`:n`).
    Int(i64),
    /// A boolean (`#t`/`#f`; `:1`/`:0` in RESP2).
    Bool(bool),
    /// A bulk string of static text.
    Str(&'static str),
    /// A short bulk string held inline.
    Text(InlineText),
}

/// A bulk string of at most [`InlineText::CAPACITY`] bytes held inline (a decimal amount).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineText {
    len: u8,
    bytes: [u8; InlineText::CAPACITY],
}

impl InlineText {
    /// The longest text an `InlineText` holds.
    pub const CAPACITY: usize = 22;

    /// `text` held inline.
    ///
    /// # Panics
    /// If `text` is longer than [`InlineText::CAPACITY`] bytes; callers hold texts of a known
    /// bounded length (see the compile-time checks where they are built).
    pub fn new(text: &[u8]) -> InlineText {
        assert!(text.len() <= Self::CAPACITY, "inline text too long");
        let mut bytes = [0; Self::CAPACITY];
        bytes[..text.len()].copy_from_slice(text);
        InlineText {
            // At most CAPACITY (22): fits a u8.
            len: text.len() as u8,
            bytes,
        }
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for InlineText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Scalar {
    /// The value as an ordinary frame.
    pub fn to_frame(self) -> Frame {
        match self {
            Scalar::Int(n) => Frame::Integer(n),
            Scalar::Bool(b) => Frame::Boolean(b),
            Scalar::Str(s) => Frame::Bulk(Bytes::from_static(s.as_bytes())),
            Scalar::Text(t) => Frame::Bulk(Bytes::copy_from_slice(t.as_bytes())),
        }
    }
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

    /// The [`Frame::Map`] a [`Frame::Fields`] reply stands for (keys as bulk strings), for
    /// consumers that walk replies generically (scripts, tests).
    pub fn fields_to_map(fields: &[(&'static str, Scalar)]) -> Frame {
        Frame::Map(
            fields
                .iter()
                .map(|&(k, v)| (Frame::Bulk(Bytes::from_static(k.as_bytes())), v.to_frame()))
                .collect(),
        )
    }

    /// This frame with every [`Frame::Fields`] in it (at any depth) replaced by its
    /// [`Frame::Map`]: the same wire form, in the shape generic consumers expect.
    pub fn into_maps(self) -> Frame {
        let all = |v: Vec<Frame>| v.into_iter().map(Frame::into_maps).collect();
        match self {
            Frame::Fields(f) => Frame::fields_to_map(&f),
            Frame::Array(v) => Frame::Array(all(v)),
            Frame::Set(v) => Frame::Set(all(v)),
            Frame::Push(v) => Frame::Push(all(v)),
            Frame::Seq(v) => Frame::Seq(all(v)),
            Frame::Map(m) => Frame::Map(
                m.into_iter()
                    .map(|(k, v)| (k.into_maps(), v.into_maps()))
                    .collect(),
            ),
            other => other,
        }
    }
}

impl crate::error::CommandError {
    /// The error reply for this condition.
    pub fn to_frame(&self) -> Frame {
        Frame::error(self.to_string())
    }
}

impl From<crate::error::CommandError> for Frame {
    fn from(e: crate::error::CommandError) -> Frame {
        e.to_frame()
    }
}

impl crate::error::ProtocolError {
    /// The reply sent before the connection is closed.
    pub fn to_frame(&self) -> Frame {
        Frame::error(format!("ERR {self}"))
    }
}
