//! Reply encoder: appends a [`Frame`] to an output buffer in the connection's RESP version.
//! Synchronous and allocation-free beyond growing the buffer, so nested replies are cheap.

use bytes::{BufMut, BytesMut};

use super::frame::{Frame, RespVersion, Scalar};

/// Appends the wire form of `frame` to `out`.
pub fn encode(frame: &Frame, version: RespVersion, out: &mut BytesMut) {
    let v3 = version == RespVersion::Resp3;
    match frame {
        Frame::Simple(s) => text_line(out, b'+', s),
        Frame::Error(s) => text_line(out, b'-', s),
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
        Frame::Fields(fields) => encode_fields(fields, v3, out),
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

/// Formats a double the way Redis 7.0 does for RESP3 `,` replies and RESP2 bulk doubles
/// (`addReplyDouble`): `inf`, `-inf`, `nan`, otherwise C's `%.17g`: 17 significant digits,
/// trailing zeros dropped, in fixed notation unless the exponent is below -4 or at least 17
/// (`0.10000000000000001`, `1.5`, `3`, `1e+17`, `1.0000000000000001e-05`). Redis 7.2 prints
/// the shortest round-trip text instead; Redis 7.0 is the reference here (its own test suite
/// compares `ZSCORE` replies as text).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // `{:.16e}` rounds to 17 significant digits exactly as C's `%.16e` does; `%g` takes its
    // exponent from that conversion (so a value that rounds up to the next power of ten uses
    // the rounded exponent).
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exp.unsigned_abs()
        )
    } else {
        let decimals = usize::try_from(16 - exp).unwrap_or(0);
        trim_fraction(&format!("{d:.decimals$}")).to_owned()
    }
}

/// `%g`'s removal of trailing zeros (and of a trailing decimal point) from a fraction.
fn trim_fraction(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// A [`Frame::Fields`] reply: the map of bulk-string keys it stands for. The buffer is grown
/// once for the whole reply and written through a cursor: an admission reply is nine or ten
/// short fields, and per-piece capacity checks were most of its cost.
fn encode_fields(fields: &[(&'static str, Scalar)], v3: bool, out: &mut BytesMut) {
    // Framing of a bulk string or integer: a tag, at most 20 digits and a sign, two CRLFs.
    const FRAMING: usize = 26;
    let bound = FRAMING
        + fields
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Scalar::Str(s) => s.len(),
                    Scalar::Text(t) => t.as_bytes().len(),
                    Scalar::Int(_) | Scalar::Bool(_) => 0,
                };
                k.len() + value + 2 * FRAMING
            })
            .sum::<usize>();
    let start = out.len();
    out.resize(start + bound, 0);
    let mut w = Cursor {
        buf: &mut out[start..],
        at: 0,
    };
    if v3 {
        w.header(b'%', fields.len());
    } else {
        w.header(b'*', fields.len() * 2);
    }
    for &(name, value) in fields {
        w.bulk(name.as_bytes());
        match value {
            Scalar::Int(n) => w.int(n),
            Scalar::Bool(b) if v3 => w.put(if b { b"#t\r\n" } else { b"#f\r\n" }),
            Scalar::Bool(b) => w.put(if b { b":1\r\n" } else { b":0\r\n" }),
            Scalar::Str(s) => w.bulk(s.as_bytes()),
            Scalar::Text(t) => w.bulk(t.as_bytes()),
        }
    }
    let written = w.at;
    out.truncate(start + written);
}

/// Writes into a buffer sized in advance (an overrun is a bug in the bound and panics).
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// `tag`, the digits of `n`, CRLF.
    fn header(&mut self, tag: u8, n: usize) {
        self.buf[self.at] = tag;
        self.at += 1;
        if n < 10 {
            // Below 10: one digit.
            self.buf[self.at] = b'0' + n as u8;
            self.at += 1;
        } else if n < 100 {
            // Below 100: two digits.
            self.buf[self.at] = b'0' + (n / 10) as u8;
            self.buf[self.at + 1] = b'0' + (n % 10) as u8;
            self.at += 2;
        } else {
            self.put(itoa::Buffer::new().format(n).as_bytes());
        }
        self.put(b"\r\n");
    }

    fn bulk(&mut self, body: &[u8]) {
        self.header(b'$', body.len());
        self.put(body);
        self.put(b"\r\n");
    }

    fn int(&mut self, n: i64) {
        self.buf[self.at] = b':';
        self.at += 1;
        if (0..10).contains(&n) {
            // One digit, the common case (flags, small counts).
            self.buf[self.at] = b'0' + n as u8;
            self.at += 1;
        } else {
            self.put(itoa::Buffer::new().format(n).as_bytes());
        }
        self.put(b"\r\n");
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

/// A status or error line. Its text may echo client input (`ERR Unsupported option ...`,
/// `ERR unknown command ...`), so CR and LF become spaces, as Redis maps them: a line break
/// inside would end the line early and the client would read the rest as another reply.
fn text_line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    if memchr::memchr2(b'\r', b'\n', body).is_none() {
        return line(out, tag, body);
    }
    out.reserve(body.len() + 3);
    out.put_u8(tag);
    out.extend(body.iter().map(|&c| match c {
        b'\r' | b'\n' => b' ',
        c => c,
    }));
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
    fn status_and_error_lines_never_hold_cr_or_lf() {
        // Found by the command_args fuzz target: `PEXPIRE MAXAGE MAXAGE "\n" 17555ms` echoed
        // the option into `ERR Unsupported option \n`, and the LF split the reply in two.
        let err = Frame::error("ERR Unsupported option \n");
        for v in [RespVersion::Resp2, RespVersion::Resp3] {
            assert_eq!(enc(&err, v), "-ERR Unsupported option  \r\n", "{v:?}");
            assert_eq!(
                enc(&Frame::simple("a\r\nb"), v),
                "+a  b\r\n",
                "{v:?}: status line"
            );
            assert_eq!(
                enc(&Frame::Array(vec![Frame::error("ERR x\r\n:1")]), v),
                "*1\r\n-ERR x  :1\r\n",
                "{v:?}: nested error"
            );
        }
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
        assert_eq!(
            enc(&Frame::Double(f64::MAX), Resp3),
            ",1.7976931348623157e+308\r\n"
        );
    }

    #[test]
    fn doubles_print_as_c_printf_percent_17g() {
        // Expected texts printed by glibc's printf("%.17g") for the same doubles.
        let cases: [(f64, &str); 18] = [
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (3.0, "3"),
            (1e17, "1e+17"),
            (-2.5e-7, "-2.4999999999999999e-07"),
            (0.0001, "0.0001"),
            (123456789.5, "123456789.5"),
            (0.076_761_760_319_006_51, "0.076761760319006514"),
            (1e16, "10000000000000000"),
            (12345678901234567.0, "12345678901234568"),
            (99999999999999999.0, "1e+17"),
            (-0.0, "-0"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "4.9406564584124654e-324"),
            (0.3, "0.29999999999999999"),
            (2.0 / 3.0, "0.66666666666666663"),
            (1e-5, "1.0000000000000001e-05"),
            (123.456, "123.456"),
        ];
        for (d, want) in cases {
            assert_eq!(format_double(d), want, "{d:e}");
        }
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

    fn raw(f: &Frame, v: RespVersion) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(f, v, &mut out);
        out.to_vec()
    }

    /// Names of every length class the encoder treats apart (under 10, under 100, longer).
    const NAMES: [&str; 4] = [
        "",
        "allowed",
        "retry_after_ms",
        "a_field_name_longer_than_one_hundred_bytes_to_reach_the_slow_header_path_of_the_bulk_encoder_xxxxxxx",
    ];

    fn scalar() -> impl proptest::strategy::Strategy<Value = Scalar> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(Scalar::Int),
            any::<bool>().prop_map(Scalar::Bool),
            (0..NAMES.len()).prop_map(|i| Scalar::Str(NAMES[i])),
            proptest::collection::vec(any::<u8>(), 0..=crate::protocol::InlineText::CAPACITY)
                .prop_map(|t| Scalar::Text(crate::protocol::InlineText::new(&t))),
        ]
    }

    proptest::proptest! {
        /// A `Fields` reply is on the wire exactly the map it stands for, in both protocols,
        /// alone and nested in an array (as in an `EXEC` reply).
        #[test]
        fn fields_encode_as_their_map(
            fields in proptest::collection::vec(((0..NAMES.len()), scalar()), 0..12)
        ) {
            let fields: Vec<(&'static str, Scalar)> =
                fields.into_iter().map(|(i, v)| (NAMES[i], v)).collect();
            let map = Frame::fields_to_map(&fields);
            let f = Frame::Fields(fields);
            for v in [RespVersion::Resp2, RespVersion::Resp3] {
                proptest::prop_assert_eq!(raw(&f, v), raw(&map, v));
                let nested = Frame::Array(vec![f.clone(), Frame::Integer(1)]);
                proptest::prop_assert_eq!(raw(&nested, v), raw(&nested.clone().into_maps(), v));
            }
        }
    }

    #[test]
    fn fields_encode_like_redis_maps() {
        let f = Frame::Fields(vec![
            ("allowed", Scalar::Bool(true)),
            (
                "limit",
                Scalar::Text(crate::protocol::InlineText::new(b"1.5")),
            ),
            ("state", Scalar::Str("open")),
            ("n", Scalar::Int(-1)),
        ]);
        assert_eq!(
            enc(&f, RespVersion::Resp3),
            "%4\r\n$7\r\nallowed\r\n#t\r\n$5\r\nlimit\r\n$3\r\n1.5\r\n$5\r\nstate\r\n$4\r\nopen\r\n$1\r\nn\r\n:-1\r\n"
        );
        assert_eq!(
            enc(&f, RespVersion::Resp2),
            "*8\r\n$7\r\nallowed\r\n:1\r\n$5\r\nlimit\r\n$3\r\n1.5\r\n$5\r\nstate\r\n$4\r\nopen\r\n$1\r\nn\r\n:-1\r\n"
        );
    }
}
