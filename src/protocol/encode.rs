//! Reply encoder: appends a [`Frame`] to an output buffer in the connection's RESP version.
//! Synchronous and allocation-free beyond growing the buffer, so nested replies are cheap.

use bytes::{BufMut, BytesMut};

use super::frame::{Frame, RespVersion};

/// Appends the wire form of `frame` to `out`.
pub fn encode(frame: &Frame, version: RespVersion, out: &mut BytesMut) {
    let v3 = version == RespVersion::Resp3;
    match frame {
        Frame::Simple(s) => line(out, b'+', s),
        Frame::Error(s) => line(out, b'-', s),
        Frame::Integer(n) => int_line(out, b':', *n),
        Frame::Bulk(b) => bulk(out, b'$', b),
        Frame::Null if v3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray if v3 => out.put_slice(b"_\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => aggregate(out, b'*', items, version),
        Frame::Set(items) => aggregate(out, if v3 { b'~' } else { b'*' }, items, version),
        Frame::Push(items) => aggregate(out, if v3 { b'>' } else { b'*' }, items, version),
        Frame::Seq(items) => {
            for item in items {
                encode(item, version, out);
            }
        }
        Frame::Map(pairs) => {
            if v3 {
                len_line(out, b'%', pairs.len());
            } else {
                len_line(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                item(k, version, out);
                item(v, version, out);
            }
        }
        Frame::Double(d) => {
            let text = format_double(*d);
            if v3 {
                line(out, b',', text.as_bytes());
            } else {
                bulk(out, b'$', text.as_bytes());
            }
        }
        Frame::Boolean(b) if v3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => int_line(out, b':', i64::from(*b)),
        Frame::BigNumber(digits) if v3 => line(out, b'(', digits),
        Frame::BigNumber(digits) => bulk(out, b'$', digits),
        Frame::Verbatim(fmt, body) => {
            if v3 {
                len_line(out, b'=', body.len() + 4);
                out.put_slice(fmt.as_bytes());
                out.put_u8(b':');
                out.put_slice(body);
                out.put_slice(b"\r\n");
            } else {
                bulk(out, b'$', body);
            }
        }
    }
}

/// Formats a double the way Redis does for RESP3 `,` replies and RESP2 bulk doubles:
/// `inf`, `-inf`, `nan`, otherwise the shortest representation that round-trips.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else if d == d.trunc() && d.abs() < 1e17 {
        // Integral values print without a fractional part, as Redis's %.17g does.
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

fn aggregate(out: &mut BytesMut, tag: u8, items: &[Frame], version: RespVersion) {
    len_line(out, tag, items.len());
    for frame in items {
        item(frame, version, out);
    }
}

/// An element of an aggregate: the common leaves inline, anything else through [`encode`]
/// (a limiter reply is a map of a dozen bulk strings and integers).
#[inline(always)]
fn item(frame: &Frame, version: RespVersion, out: &mut BytesMut) {
    match frame {
        Frame::Bulk(b) => bulk(out, b'$', b),
        Frame::Integer(n) => int_line(out, b':', *n),
        _ => encode(frame, version, out),
    }
}

fn line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(tag);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn int_line(out: &mut BytesMut, tag: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    line(out, tag, buf.format(n).as_bytes());
}

fn len_line(out: &mut BytesMut, tag: u8, len: usize) {
    let mut buf = itoa::Buffer::new();
    line(out, tag, buf.format(len).as_bytes());
}

/// One reservation for the header, the body and the trailer. Headers of bodies under 100
/// bytes (map keys, short values: most of a reply) are written as one fixed-size store.
fn bulk(out: &mut BytesMut, tag: u8, body: &[u8]) {
    let n = body.len();
    out.reserve(n + 25);
    // Both casts are of values below 10.
    let digit = |d: usize| b'0' + d as u8;
    if n < 10 {
        out.put_slice(&[tag, digit(n), b'\r', b'\n']);
    } else if n < 100 {
        out.put_slice(&[tag, digit(n / 10), digit(n % 10), b'\r', b'\n']);
    } else {
        let mut buf = itoa::Buffer::new();
        out.put_u8(tag);
        out.put_slice(buf.format(n).as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(f: &Frame, v: RespVersion) -> String {
        let mut out = BytesMut::new();
        encode(f, v, &mut out);
        String::from_utf8(out.to_vec()).expect("test frames are ASCII")
    }

    #[test]
    fn strings_of_many_lengths_encode_exactly() {
        use RespVersion::*;
        for n in 0..200 {
            let body = "x".repeat(n);
            let b = Frame::Bulk(Bytes::from(body.clone()));
            assert_eq!(enc(&b, Resp2), format!("${n}\r\n{body}\r\n"));
            let s = Frame::Simple(Bytes::from(body.clone()));
            assert_eq!(enc(&s, Resp3), format!("+{body}\r\n"));
        }
        for n in [0, 9, -9, i64::MIN, i64::MAX] {
            assert_eq!(enc(&Frame::Integer(n), Resp2), format!(":{n}\r\n"));
        }
    }

    #[test]
    fn scalars_match_redis_wire_format() {
        use RespVersion::*;
        assert_eq!(enc(&Frame::OK, Resp2), "+OK\r\n");
        assert_eq!(enc(&Frame::error("ERR x"), Resp2), "-ERR x\r\n");
        assert_eq!(enc(&Frame::Integer(-7), Resp2), ":-7\r\n");
        assert_eq!(enc(&Frame::bulk("hi"), Resp2), "$2\r\nhi\r\n");
        assert_eq!(enc(&Frame::bulk(""), Resp2), "$0\r\n\r\n");
        assert_eq!(enc(&Frame::Null, Resp2), "$-1\r\n");
        assert_eq!(enc(&Frame::Null, Resp3), "_\r\n");
        assert_eq!(enc(&Frame::NullArray, Resp2), "*-1\r\n");
        assert_eq!(enc(&Frame::NullArray, Resp3), "_\r\n");
        assert_eq!(enc(&Frame::Boolean(true), Resp2), ":1\r\n");
        assert_eq!(enc(&Frame::Boolean(false), Resp3), "#f\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Resp3), ",1.5\r\n");
        assert_eq!(enc(&Frame::Double(3.0), Resp2), "$1\r\n3\r\n");
        assert_eq!(enc(&Frame::Double(f64::INFINITY), Resp3), ",inf\r\n");
    }

    #[test]
    fn aggregates_degrade_to_arrays_in_resp2() {
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&map, RespVersion::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, RespVersion::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        let set = Frame::Set(vec![Frame::Integer(1)]);
        assert_eq!(enc(&set, RespVersion::Resp3), "~1\r\n:1\r\n");
        assert_eq!(enc(&set, RespVersion::Resp2), "*1\r\n:1\r\n");
        let push = Frame::Push(vec![Frame::bulk("x")]);
        assert_eq!(enc(&push, RespVersion::Resp3), ">1\r\n$1\r\nx\r\n");
        assert_eq!(enc(&push, RespVersion::Resp2), "*1\r\n$1\r\nx\r\n");
    }

    #[test]
    fn a_sequence_is_its_frames_back_to_back() {
        let seq = Frame::Seq(vec![Frame::Push(vec![Frame::bulk("a")]), Frame::Integer(1)]);
        assert_eq!(enc(&seq, RespVersion::Resp3), ">1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&seq, RespVersion::Resp2), "*1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Frame::Seq(vec![]), RespVersion::Resp2), "");
    }

    #[test]
    fn big_numbers_are_bulk_strings_in_resp2() {
        let n = Frame::BigNumber(Bytes::from_static(b"123"));
        assert_eq!(enc(&n, RespVersion::Resp3), "(123\r\n");
        assert_eq!(enc(&n, RespVersion::Resp2), "$3\r\n123\r\n");
    }

    #[test]
    fn verbatim_carries_its_format_in_resp3_only() {
        let v = Frame::Verbatim("txt", Bytes::from_static(b"hello"));
        assert_eq!(enc(&v, RespVersion::Resp3), "=9\r\ntxt:hello\r\n");
        assert_eq!(enc(&v, RespVersion::Resp2), "$5\r\nhello\r\n");
    }
}
