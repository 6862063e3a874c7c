//! The `bit` library (LuaBitOp 1.0, as bundled with Redis): 32-bit operations on Lua numbers.
//!
//! Numbers are normalised LuaBitOp's way: the double plus 2^52 + 2^51, whose low 32 bits are
//! the number rounded to an integer modulo 2^32; results are signed 32-bit values. Each
//! function returns `(true, result)` or `(false, message)`; the prelude's wrapper raises the
//! message at the caller's line, so errors read as Redis's
//! ("bad argument #1 to 'band' (number expected, got string)").

use mlua::{MultiValue, Value};

/// A result: a 32-bit number or, for `tohex`, text.
pub enum Out {
    /// A 32-bit result.
    Bits(u32),
    /// Text (`tohex`).
    Text(String),
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// `luaL_checknumber`: numbers, and strings that read as numbers.
fn number(args: &MultiValue, i: usize, name: &str) -> Result<f64, String> {
    let v = args.get(i);
    let n = match v {
        Some(Value::Number(n)) => Some(*n),
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::String(s)) => {
            let s = s.to_string_lossy();
            parse_lua_number(s.trim())
        }
        _ => None,
    };
    n.ok_or_else(|| {
        format!(
            "bad argument #{} to '{name}' (number expected, got {})",
            i + 1,
            type_name(v)
        )
    })
}

/// Lua 5.1's string-to-number coercion: decimal (strtod) or hexadecimal integers.
fn parse_lua_number(s: &str) -> Option<f64> {
    if let Some(hex) = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .filter(|h| !h.is_empty())
    {
        return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse::<f64>().ok()
}

fn bits(n: f64) -> u32 {
    // 2^52 + 2^51: adding it leaves the rounded integer in the low mantissa bits.
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

fn arg(args: &MultiValue, i: usize, name: &str) -> Result<u32, String> {
    number(args, i, name).map(bits)
}

fn ret(b: u32) -> Out {
    Out::Bits(b)
}

/// Runs bit function `name` on `args`: the result, or the error message.
pub fn run(name: &str, args: &MultiValue) -> Result<Out, String> {
    let b = arg(args, 0, name)?;
    Ok(match name {
        "tobit" => ret(b),
        "bnot" => ret(!b),
        "bswap" => ret(b.swap_bytes()),
        "band" | "bor" | "bxor" => {
            let mut acc = b;
            for i in 1..args.len() {
                let x = arg(args, i, name)?;
                acc = match name {
                    "band" => acc & x,
                    "bor" => acc | x,
                    _ => acc ^ x,
                };
            }
            ret(acc)
        }
        "lshift" | "rshift" | "arshift" | "rol" | "ror" => {
            let n = arg(args, 1, name)? & 31;
            ret(match name {
                "lshift" => b << n,
                "rshift" => b >> n,
                "arshift" => ((b as i32) >> n) as u32,
                "rol" => b.rotate_left(n),
                _ => b.rotate_right(n),
            })
        }
        "tohex" => {
            let mut n: i32 = if args.len() < 2 || matches!(args.get(1), Some(Value::Nil)) {
                8
            } else {
                arg(args, 1, name)? as i32
            };
            let upper = n < 0;
            if upper {
                n = n.wrapping_neg();
            }
            let n = n.clamp(0, 8) as usize;
            let full = if upper {
                format!("{b:08X}")
            } else {
                format!("{b:08x}")
            };
            Out::Text(full[8 - n..].to_owned())
        }
        _ => return Err(format!("unknown bit function {name}")),
    })
}

/// The names of the functions, as the prelude installs them.
pub const NAMES: &[&str] = &[
    "tobit", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror", "bswap",
    "tohex",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_luabitop() {
        assert_eq!(bits(-1.0), u32::MAX);
        assert_eq!(bits(4_294_967_301.0), 5);
        assert_eq!(bits(2.5) as i32, 2, "round half to even");
        assert_eq!(bits(3.5) as i32, 4);
    }
}
