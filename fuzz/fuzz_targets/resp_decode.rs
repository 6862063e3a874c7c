//! The RESP request decoder on arbitrary bytes, under Redis's default limits, the
//! unauthenticated ones and small ones.
//!
//! Invariants: it never panics; a decoded request is non-empty and took bytes off the front;
//! what is left is always a suffix of the input (consumption only advances); a multibulk
//! request respects the element and bulk caps; no single allocation is larger than the input
//! justifies (a header claiming 512 MiB reserves nothing); and feeding the same bytes in three
//! pieces gives the same requests as feeding them at once.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use limitkv::protocol::{decode_request, DecodeLimits};

const SMALL: DecodeLimits = DecodeLimits {
    max_bulk_len: 64,
    max_multibulk_len: 8,
    max_inline_len: 128,
    unauthenticated: false,
};

#[derive(Debug, PartialEq)]
enum End {
    /// No complete request left; the rest is kept.
    Incomplete(Vec<u8>),
    /// A protocol error (the connection would close).
    Error,
}

/// Decodes every complete request of `buf`, checking the per-call invariants; `input` is the
/// whole stream fed so far, of which `buf` must stay a suffix.
fn drain(
    buf: &mut BytesMut,
    input: &[u8],
    limits: &DecodeLimits,
    out: &mut Vec<Vec<Bytes>>,
) -> End {
    loop {
        let before = buf.len();
        limitkv_fuzz::reset_peak();
        let got = decode_request(buf, limits);
        // Arguments are slices of the buffer and the span list grows with what arrived, so
        // nothing may be larger than a small multiple of the input (the `Vec<Bytes>` of
        // arguments costs 32 bytes per argument, each of which took at least one byte).
        limitkv_fuzz::assert_peak_at_most(64 * input.len() + 4096, "decode_request");
        assert!(buf.len() <= before, "the buffer grew");
        assert!(
            input.ends_with(&buf[..]),
            "what is left must be a suffix of the input"
        );
        match got {
            Ok(Some(req)) => {
                assert!(!req.is_empty(), "a decoded request is never empty");
                assert!(buf.len() < before, "a request consumed nothing");
                let payload: usize = req.iter().map(Bytes::len).sum();
                assert!(
                    payload <= before - buf.len(),
                    "arguments longer than the frame"
                );
                // Empty requests before it were skipped, so it may be multibulk or inline
                // whatever the buffer started with: bound it by either's caps.
                let most_args = limits.max_multibulk_len.max(limits.max_inline_len);
                let longest = limits.max_bulk_len.max(limits.max_inline_len);
                assert!(req.len() <= most_args, "element cap ignored");
                assert!(req.iter().all(|a| a.len() <= longest), "bulk cap ignored");
                out.push(req);
            }
            Ok(None) => return End::Incomplete(buf.to_vec()),
            Err(e) => {
                // Rendering the error must not panic either.
                let _ = e.to_string();
                return End::Error;
            }
        }
    }
}

fn check(data: &[u8], limits: &DecodeLimits) {
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(data);
    let end_whole = drain(&mut buf, data, limits, &mut whole);

    // The same stream arriving in three pieces, cut at points the data chooses.
    let n = data.len();
    let a = usize::from(data.first().copied().unwrap_or(0)) * n / 256;
    let b = a + usize::from(data.last().copied().unwrap_or(0)) * (n - a) / 256;
    let mut pieces = Vec::new();
    let mut buf = BytesMut::new();
    let mut end_pieces = End::Incomplete(Vec::new());
    for (from, to) in [(0, a), (a, b), (b, n)] {
        buf.extend_from_slice(&data[from..to]);
        end_pieces = drain(&mut buf, &data[..to], limits, &mut pieces);
        if end_pieces == End::Error {
            break;
        }
    }
    assert_eq!(
        whole, pieces,
        "requests differ when the bytes arrive in pieces (cut at {a} and {b})"
    );
    assert_eq!(
        end_whole, end_pieces,
        "the stream ends differently in pieces"
    );
}

fuzz_target!(|data: &[u8]| {
    check(data, &DecodeLimits::DEFAULT);
    check(data, &DecodeLimits::UNAUTHENTICATED);
    check(data, &SMALL);
});
