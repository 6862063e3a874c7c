//! Pure RESP2/RESP3: the reply [`Frame`] type, the request decoder and the reply encoder.
//!
//! Knows nothing of commands, sockets or tokio. The decoder turns bytes into argument vectors
//! (multibulk or inline requests) under configured size limits; the encoder renders a frame for
//! the protocol version a connection negotiated with `HELLO`.

pub mod decode;
pub mod encode;
pub mod frame;

pub use decode::{decode_request, DecodeLimits, Request};
pub use encode::encode;
pub use frame::{Frame, InlineText, RespVersion, Scalar};
