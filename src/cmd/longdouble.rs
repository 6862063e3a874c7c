//! `INCRBYFLOAT` arithmetic exactly as Redis does it on x86-64: in 80-bit x87 `long double`s
//! (64-bit significand, round half to even), parsed like `strtold` and printed like
//! `printf("%.17Lf")` with trailing zeros removed.
//!
//! Rust has no 80-bit float, so values are emulated: a finite value is `mant × 2^exp` with a
//! 64-bit significand, and every operation is computed exactly on small big integers and then
//! rounded once, as the hardware does.

use std::cmp::Ordering;

/// The longest text Redis reads or writes as a long double (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;
/// Exponent of a denormal (and of the smallest normal) significand.
const EXP_MIN: i64 = -16445;
/// Largest exponent of a finite value (`(2^64 - 1) × 2^16320 < 2^16384`).
const EXP_MAX: i64 = 16320;

/// An x87 extended-precision value: finite (`mant × 2^exp`, `mant` normalised to bit 63 unless
/// denormal or zero) or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
    inf: bool,
}

/// An unsigned big integer, little-endian 32-bit limbs, no trailing zero limbs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        self.0.get(limb).is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    /// True if any bit below position `n` is set.
    fn any_below(&self, n: u64) -> bool {
        let full = (n / 32) as usize;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rest = n % 32;
        rest > 0
            && self
                .0
                .get(full)
                .is_some_and(|&l| l & ((1u32 << rest) - 1) != 0)
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push(l << bits | carry);
                carry = l >> (32 - bits);
            }
        }
        out.push(carry);
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shr(&self, n: u64) -> Big {
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        if limbs >= self.0.len() {
            return Big(Vec::new());
        }
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let hi = src.get(i + 1).copied().unwrap_or(0);
            out.push(if bits == 0 {
                l
            } else {
                l >> bits | hi << (32 - bits)
            });
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn low_u64(&self) -> u64 {
        let lo = u64::from(self.0.first().copied().unwrap_or(0));
        let hi = u64::from(self.0.get(1).copied().unwrap_or(0));
        hi << 32 | lo
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in &mut self.0 {
            let v = u64::from(*l) * u64::from(m) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for l in &mut self.0 {
            if carry == 0 {
                break;
            }
            let v = u64::from(*l) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(o.0.get(i).copied().unwrap_or(0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        out.push(carry as u32);
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - o`; `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &l) in self.0.iter().enumerate() {
            let mut v = i64::from(l) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn pow10(n: u64) -> Big {
        let mut b = Big::from_u64(1);
        let mut left = n;
        while left >= 9 {
            b.mul_small(1_000_000_000);
            left -= 9;
        }
        for _ in 0..left {
            b.mul_small(10);
        }
        b
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_owned();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let v = rem << 32 | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

impl LongDouble {
    const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
        inf: false,
    };

    /// The exact value of an integer (every `i64` fits in 64 significand bits).
    pub fn from_i64(v: i64) -> LongDouble {
        LongDouble::round(v < 0, &Big::from_u64(v.unsigned_abs()), 0, false)
    }

    /// True for ±infinity (nothing here produces NaN).
    pub fn is_infinite(&self) -> bool {
        self.inf
    }

    /// Rounds `(n + sticky·ε) × 2^exp` to the nearest long double (ties to even). With `sticky`,
    /// `n` must carry at least 66 significant bits.
    fn round(neg: bool, n: &Big, exp: i64, sticky: bool) -> LongDouble {
        if n.is_zero() {
            return LongDouble { neg, ..Self::ZERO };
        }
        let bits = n.bits() as i64;
        let mut shift = bits - 64;
        if exp + shift < EXP_MIN {
            shift = EXP_MIN - exp;
        }
        let (mut mant, mut e) = if shift > 0 {
            let s = shift as u64;
            let kept = n.shr(s);
            let half = n.bit(s - 1);
            let lower = sticky || n.any_below(s - 1);
            let mut m = kept.low_u64() as u128;
            if half && (lower || m & 1 == 1) {
                m += 1;
            }
            (m, exp + shift)
        } else {
            (n.shl((-shift) as u64).low_u64() as u128, exp + shift)
        };
        if mant >> 64 != 0 {
            mant >>= 1;
            e += 1;
        }
        if e > EXP_MAX {
            return LongDouble {
                neg,
                mant: 0,
                exp: 0,
                inf: true,
            };
        }
        LongDouble {
            neg,
            mant: mant as u64,
            exp: e,
            inf: false,
        }
    }

    /// Parses like Redis's `string2ld`: `strtold` must consume the whole text, which may not
    /// start with a blank, be empty or longer than 5119 bytes, be NaN, or overflow or underflow
    /// to zero.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_CHARS || matches!(s[0], b' ' | b'\t'..=b'\r') {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
                inf: true,
            });
        }
        let v = if lower.len() > 2 && lower.starts_with(b"0x") {
            parse_hex(neg, &lower[2..])?
        } else {
            parse_dec(neg, &lower)?
        };
        (!v.inf).then_some(v)
    }

    /// `self + o`, rounded once.
    pub fn add(&self, o: &LongDouble) -> LongDouble {
        if self.inf || o.inf {
            // Only reached with an infinite operand, which the caller reports as an error.
            return if self.inf { *self } else { *o };
        }
        let e = self.exp.min(o.exp);
        let a = Big::from_u64(self.mant).shl((self.exp - e) as u64);
        let b = Big::from_u64(o.mant).shl((o.exp - e) as u64);
        if self.neg == o.neg {
            return LongDouble::round(self.neg, &a.add(&b), e, false);
        }
        match a.cmp(&b) {
            Ordering::Equal => Self::ZERO,
            Ordering::Greater => LongDouble::round(self.neg, &a.sub(&b), e, false),
            Ordering::Less => LongDouble::round(o.neg, &b.sub(&a), e, false),
        }
    }

    /// Redis's "human" form: `%.17Lf`, trailing zeros (and a bare point) removed, `-0` as `0`;
    /// empty when the printed form does not fit in 5120 bytes.
    pub fn to_human(&self) -> String {
        if self.inf {
            return if self.neg { "-inf" } else { "inf" }.to_owned();
        }
        let scaled = {
            let mut m = Big::from_u64(self.mant);
            for _ in 0..17 {
                m.mul_small(10);
            }
            m
        };
        let q = if self.exp >= 0 {
            scaled.shl(self.exp as u64)
        } else {
            let s = (-self.exp) as u64;
            let mut q = scaled.shr(s);
            let half = scaled.bit(s - 1);
            if half && (scaled.any_below(s - 1) || q.bit(0)) {
                q.add_small(1);
            }
            q
        };
        let mut digits = q.to_decimal();
        if digits.len() < 18 {
            digits = format!("{}{digits}", "0".repeat(18 - digits.len()));
        }
        let (int, frac) = digits.split_at(digits.len() - 17);
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
        if out.len() + 1 > MAX_CHARS {
            return String::new();
        }
        let trimmed = out.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }
    }
}

/// Splits `digits[.digits]` (radix `radix`) into the digit values and the count after the point;
/// at least one digit is required.
fn mantissa_digits(s: &[u8], radix: u32) -> Option<(Vec<u32>, i64, usize)> {
    let mut digits = Vec::new();
    let mut after_point = 0i64;
    let mut seen_point = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = char::from(c).to_digit(radix) {
            digits.push(d);
            if seen_point {
                after_point += 1;
            }
        } else {
            break;
        }
        i += 1;
    }
    (!digits.is_empty()).then_some((digits, after_point, i))
}

/// A decimal exponent (`[+-]digits`, saturating); the whole rest must be consumed.
fn exponent(s: &[u8]) -> Option<i64> {
    let (neg, d) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = d.iter().fold(0i64, |acc, &c| {
        acc.saturating_mul(10).saturating_add(i64::from(c - b'0'))
    });
    Some(if neg { -v } else { v })
}

fn parse_dec(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, used) = mantissa_digits(s, 10)?;
    let rest = &s[used..];
    let e10 = match rest.first() {
        None => 0,
        Some(b'e') => exponent(&rest[1..])?,
        Some(_) => return None,
    };
    let mut d = Big(Vec::new());
    for x in digits {
        d.mul_small(10);
        d.add_small(x);
    }
    if d.is_zero() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let e = e10.saturating_sub(after_point);
    // Far outside the range: overflow (infinity, refused) or underflow to zero (refused).
    let dlen = d.bits() as i64;
    if e > 5000 {
        return None;
    }
    if e < -(12_000 + dlen) {
        return None;
    }
    let v = if e >= 0 {
        let mut n = d;
        for _ in 0..e {
            n.mul_small(10);
        }
        LongDouble::round(neg, &n, 0, false)
    } else {
        let den = Big::pow10((-e) as u64);
        let s = (70 + den.bits() as i64 - dlen).max(0) as u64;
        let num = d.shl(s);
        // Bit-by-bit long division: the quotient has about 70 bits.
        let qbits = num.bits().saturating_sub(den.bits()) + 1;
        let mut r = num;
        let mut q = Big(Vec::new());
        for i in (0..qbits).rev() {
            let t = den.shl(i);
            if r.cmp(&t) != Ordering::Less {
                r = r.sub(&t);
                q = q.add(&Big::from_u64(1).shl(i));
            }
        }
        LongDouble::round(neg, &q, -(s as i64), !r.is_zero())
    };
    if v.mant == 0 && !v.inf {
        return None; // underflow to zero (ERANGE)
    }
    Some(v)
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, used) = mantissa_digits(s, 16)?;
    let rest = &s[used..];
    let e2 = match rest.first() {
        None => 0,
        Some(b'p') => exponent(&rest[1..])?,
        Some(_) => return None,
    };
    let mut d = Big(Vec::new());
    for x in digits {
        d.mul_small(16);
        d.add_small(x);
    }
    if d.is_zero() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let e = e2.saturating_sub(after_point.saturating_mul(4));
    if e > 20_000 {
        return None;
    }
    if e < -40_000 {
        return None;
    }
    let v = LongDouble::round(neg, &d, e, false);
    if v.mant == 0 && !v.inf {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::LongDouble;

    fn incr(a: &str, b: &str) -> String {
        let x = LongDouble::parse(a.as_bytes()).expect("a parses");
        let y = LongDouble::parse(b.as_bytes()).expect("b parses");
        x.add(&y).to_human()
    }

    #[test]
    fn matches_redis_on_x86_64() {
        // Replies of Redis 7 on x86-64 (80-bit long double).
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("5.6", "1e3"), "1005.59999999999999998");
        assert_eq!(incr("0", "1e-30"), "0");
        assert_eq!(incr("3", "0x10"), "19");
        assert_eq!(incr("1e17", "1"), "100000000000000001");
        assert_eq!(
            incr("0", "123456789012345678901234567890"),
            "123456789012345678899921813504"
        );
        assert_eq!(incr("-9223372036854775808", "1e2"), "-9223372036854775708");
        assert_eq!(incr("9223372036854775807", "-2.5"), "9223372036854775804.5");
        assert_eq!(incr("-1", "1"), "0");
        assert_eq!(incr("-0", "-0"), "0");
        assert_eq!(incr("0", "-1e-20"), "0");
    }

    #[test]
    fn parses_like_strtold_in_string2ld() {
        for bad in [
            "", " 1", "1 ", "abc", "nan", "-nan", ".", "1e", "0x", "0x1p", "1e400000", "1e-99999",
            "1..2", "--1", "1\0",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in [
            "1.",
            ".5",
            "+.5",
            "0x.8",
            "0X1P-2",
            "inf",
            "-Infinity",
            "1e400",
            "0e999999",
        ] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert!(LongDouble::parse(b"inf").is_some_and(|v| v.is_infinite()));
        assert_eq!(
            LongDouble::parse(b"0x.8").map(|v| v.to_human()).as_deref(),
            Some("0.5")
        );
    }
}
