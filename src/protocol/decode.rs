//! Request decoder: multibulk (`*N\r\n$len\r\n...`) and inline (`PING\r\n`) requests.
//!
//! Every complete request in a buffer can be taken off its front one by one; an incomplete one
//! is left untouched. Arguments are zero-copy slices of the buffer. Declared lengths are checked
//! against [`DecodeLimits`] before anything is reserved, and nothing is pre-allocated from a
//! declared length, so a hostile header costs nothing. Error texts are Redis's.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;

/// One decoded request: the command name followed by its arguments.
pub type Request = Vec<Bytes>;

/// Size caps applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest bulk string accepted (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Largest number of elements in one multibulk request.
    pub max_multibulk_len: usize,
    /// Largest inline request (and largest header line) in bytes.
    pub max_inline_len: usize,
    /// The client has not authenticated: limit errors say so, as Redis's do.
    pub unauthenticated: bool,
}

impl DecodeLimits {
    /// Redis's defaults: 512 MiB bulks, 1 Mi elements, 64 KiB inline.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_bulk_len: 512 * 1024 * 1024,
        max_multibulk_len: 1024 * 1024,
        max_inline_len: 64 * 1024,
        unauthenticated: false,
    };

    /// The stricter caps Redis applies before a client has authenticated.
    pub const UNAUTHENTICATED: DecodeLimits = DecodeLimits {
        max_bulk_len: 16 * 1024,
        max_multibulk_len: 10,
        max_inline_len: 64 * 1024,
        unauthenticated: true,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Takes the next complete request off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds no complete request yet (it is left as it was, apart
/// from empty requests, which are skipped as Redis skips them). A [`ProtocolError`] means the
/// stream cannot be resynchronised: reply with it and close the connection.
pub fn decode_request(
    buf: &mut BytesMut,
    limits: &DecodeLimits,
) -> Result<Option<Request>, ProtocolError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let parsed = if buf[0] == b'*' {
            scan_multibulk(buf, limits)?
        } else {
            scan_inline(buf, limits)?
        };
        match parsed {
            None => return Ok(None),
            Some(Scanned::Empty(consumed)) => {
                let _ = buf.split_to(consumed);
            }
            Some(Scanned::Multibulk { consumed, spans }) => {
                let frame = buf.split_to(consumed).freeze();
                let args = spans
                    .into_iter()
                    .map(|(start, end)| frame.slice(start..end))
                    .collect();
                return Ok(Some(args));
            }
            Some(Scanned::Inline { consumed, args }) => {
                let _ = buf.split_to(consumed);
                if args.is_empty() {
                    continue;
                }
                return Ok(Some(args));
            }
        }
    }
}

enum Scanned {
    /// A request with no arguments (`*0`, `*-1` or a blank line): skip `consumed` bytes.
    Empty(usize),
    Multibulk {
        consumed: usize,
        spans: Vec<(usize, usize)>,
    },
    Inline {
        consumed: usize,
        args: Request,
    },
}

/// Finds the `\r\n` ending the line that starts at `from`; returns the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + memchr(b'\n', &buf[i..])?;
        if nl > from && buf[nl - 1] == b'\r' {
            return Some(nl - 1);
        }
        i = nl + 1;
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// Parses a decimal length the way Redis's `string2ll` does: optional `-`, digits only.
fn parse_len(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

fn scan_multibulk(buf: &[u8], limits: &DecodeLimits) -> Result<Option<Scanned>, ProtocolError> {
    let Some(cr) = find_crlf(buf, 1) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigMultibulkCount);
        }
        return Ok(None);
    };
    let count = parse_len(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    let mut pos = cr + 2;
    if count <= 0 {
        return Ok(Some(Scanned::Empty(pos)));
    }
    let count = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_multibulk_len {
        return Err(if limits.unauthenticated {
            ProtocolError::UnauthenticatedMultibulkLength
        } else {
            ProtocolError::InvalidMultibulkLength
        });
    }
    // Grows with what actually arrives, never with what the header claims.
    let mut spans = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::ExpectedDollar(buf[pos]));
        }
        let Some(cr) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        let len = parse_len(&buf[pos + 1..cr]).ok_or(ProtocolError::InvalidBulkLength)?;
        let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
        if len > limits.max_bulk_len {
            return Err(if limits.unauthenticated {
                ProtocolError::UnauthenticatedBulkLength
            } else {
                ProtocolError::InvalidBulkLength
            });
        }
        let start = cr + 2;
        // Bulk payload plus its trailing CRLF, which Redis skips without checking.
        let end = start + len;
        if end + 2 > buf.len() {
            return Ok(None);
        }
        spans.push((start, end));
        pos = end + 2;
    }
    Ok(Some(Scanned::Multibulk {
        consumed: pos,
        spans,
    }))
}

fn scan_inline(buf: &[u8], limits: &DecodeLimits) -> Result<Option<Scanned>, ProtocolError> {
    // A TLS record header (handshake type 22, version 3.x): a TLS client on the plain port.
    // Its ClientHello may hold no newline, so waiting for one would leave both sides waiting
    // until the client's timeout; failing now tells the client at once.
    if let [0x16, 0x03, ..] = buf {
        return Err(ProtocolError::TlsHandshake);
    }
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let mut line = &buf[..nl];
    if let Some((b'\r', rest)) = line.split_last() {
        line = rest;
    }
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    if args.is_empty() {
        return Ok(Some(Scanned::Empty(nl + 1)));
    }
    Ok(Some(Scanned::Inline {
        consumed: nl + 1,
        args,
    }))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request into arguments with Redis's `sdssplitargs` rules: blanks separate,
/// `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` understands `\'`, and a closing
/// quote must be followed by a blank or the end. `None` means unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Request> {
    // C's sdssplitargs stops at a NUL byte: the rest of the line is ignored.
    let line = match memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    // Both digits were just checked.
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<String>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = decode_request(&mut buf, &DecodeLimits::DEFAULT)? {
            out.push(
                req.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect(),
            );
        }
        Ok(out)
    }

    #[test]
    fn decodes_pipelined_multibulk_requests() {
        let got = decode_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(got, vec![vec!["PING"], vec!["GET", "k"]]);
    }

    #[test]
    fn incomplete_request_is_left_in_place() {
        let full = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                decode_request(&mut buf, &DecodeLimits::DEFAULT).unwrap(),
                None,
                "cut at {cut}"
            );
            assert_eq!(&buf[..], &full[..cut], "cut at {cut} must not consume");
        }
    }

    #[test]
    fn decodes_inline_with_quotes() {
        let got = decode_all(b"SET k \"a b\\x41\\n\" 'it\\'s'\r\nPING\n").unwrap();
        assert_eq!(got, vec![vec!["SET", "k", "a bA\n", "it's"], vec!["PING"]]);
    }

    #[test]
    fn skips_blank_lines_and_empty_multibulk() {
        let got = decode_all(b"\r\n   \r\n*0\r\n*-1\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![vec!["PING"]]);
    }

    #[test]
    fn rejects_unbalanced_quotes() {
        assert_eq!(
            decode_all(b"SET \"abc\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            decode_all(b"SET \"abc\"x\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            decode_all(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            decode_all(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            decode_all(b"*1\r\n+PING\r\n"),
            Err(ProtocolError::ExpectedDollar(b'+'))
        );
        assert_eq!(
            decode_all(b"*99999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
    }

    #[test]
    fn enforces_limits_before_reading_payload() {
        let limits = DecodeLimits {
            max_bulk_len: 8,
            max_multibulk_len: 2,
            max_inline_len: 16,
            unauthenticated: false,
        };
        let mut buf = BytesMut::from(&b"*1\r\n$9\r\n"[..]);
        assert_eq!(
            decode_request(&mut buf, &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut buf = BytesMut::from(&b"*3\r\n"[..]);
        assert_eq!(
            decode_request(&mut buf, &limits),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut buf = BytesMut::from(&[b'a'; 17][..]);
        assert_eq!(
            decode_request(&mut buf, &limits),
            Err(ProtocolError::TooBigInline)
        );
    }

    #[test]
    fn unauthenticated_limits_name_themselves() {
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            decode_request(&mut buf, &DecodeLimits::UNAUTHENTICATED),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
    }

    #[test]
    fn a_tls_client_hello_is_a_protocol_error() {
        let mut buf = BytesMut::from(&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..]);
        assert_eq!(
            decode_request(&mut buf, &DecodeLimits::DEFAULT),
            Err(ProtocolError::TlsHandshake)
        );
    }

    #[test]
    fn inline_stops_at_a_nul_byte() {
        let got = decode_all(b"PING\0 junk\r\n\0\r\nECHO a\x0bb\r\n").unwrap();
        assert_eq!(got, vec![vec!["PING"], vec!["ECHO", "a", "b"]]);
    }

    #[test]
    fn binary_payloads_survive() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\n\r\n\0\xff\r\n"[..]);
        let req = decode_request(&mut buf, &DecodeLimits::DEFAULT)
            .unwrap()
            .unwrap();
        assert_eq!(&req[0][..], b"\r\n\0\xff");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend(format!("${}\r\n", a.len()).into_bytes());
                out.extend(a);
                out.extend(b"\r\n");
            }
            out
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut buf = BytesMut::from(&input[..]);
                let limits = DecodeLimits {
                    max_bulk_len: 64,
                    max_multibulk_len: 8,
                    max_inline_len: 128,
                    unauthenticated: false,
                };
                for _ in 0..input.len() + 1 {
                    let before = buf.len();
                    match decode_request(&mut buf, &limits) {
                        Ok(Some(req)) => prop_assert!(!req.is_empty() && buf.len() < before),
                        Ok(None) | Err(_) => break,
                    }
                }
            }

            #[test]
            fn requests_survive_any_split(
                reqs in proptest::collection::vec(
                    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
                    1..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let wire: Vec<u8> = reqs.iter().flat_map(|r| multibulk(r)).collect();
                let cut = cut.index(wire.len() + 1);
                let mut buf = BytesMut::from(&wire[..cut]);
                let mut got = Vec::new();
                while let Some(r) = decode_request(&mut buf, &DecodeLimits::DEFAULT).unwrap() {
                    got.push(r);
                }
                buf.extend_from_slice(&wire[cut..]);
                while let Some(r) = decode_request(&mut buf, &DecodeLimits::DEFAULT).unwrap() {
                    got.push(r);
                }
                prop_assert!(buf.is_empty());
                let got: Vec<Vec<Vec<u8>>> = got
                    .into_iter()
                    .map(|r| r.into_iter().map(|b| b.to_vec()).collect())
                    .collect();
                prop_assert_eq!(got, reqs);
            }
        }
    }
}
