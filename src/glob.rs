//! Redis's glob patterns (`stringmatchlen`), shared by `KEYS`, `SCAN MATCH`, `CONFIG GET`,
//! `PSUBSCRIBE` and `PUBSUB CHANNELS`. A leaf: depends on nothing.
//!
//! The rules, exactly as Redis applies them:
//! - `*` matches any run of bytes, `?` any one byte;
//! - `[abc]`, `[a-z]` (ends in either order), `[^...]` (negated) match one byte; inside a class
//!   `\x` is a literal `x`; a class left open runs to the end of the pattern;
//! - `\x` outside a class is a literal `x`; a trailing `\` is a literal backslash;
//! - an empty string matches only the empty pattern (so `*` does not match `""`: `KEYS *` and
//!   `SCAN` without `MATCH` special-case it, `PSUBSCRIBE *` does not);
//! - Redis gives up (no match) past 1000 nested `*` on a matching path; so does this.

/// Most `*` groups a match may pass through with text left, as in Redis's recursion guard.
const MAX_STARS: usize = 1000;

/// True if `s` matches the glob `pattern` under Redis's `stringmatchlen` rules.
///
/// Iterative with single-star backtracking: every token other than `*` consumes exactly one
/// byte, so resuming from the last `*` finds a match whenever the recursive search would, and
/// hostile patterns cost O(len(pattern) * len(s)).
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // (pattern index after the last `*` group, text index it is tried at, stars passed).
    let mut star: Option<(usize, usize, usize)> = None;
    let mut stars = 0usize;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    stars += 1;
                    if stars > MAX_STARS {
                        return false;
                    }
                    star = Some((p, i, stars));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    let (matched, next) = class_match(pattern, p, s[i]);
                    if matched {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si, n)) => {
                p = sp;
                i = si + 1;
                stars = n;
                star = Some((sp, si + 1, n));
            }
            None => return false,
        }
    }
    // The text is used up: only `*`s may remain. An empty text never enters the loop, and
    // Redis then requires an empty pattern too.
    if s.is_empty() {
        return pattern.is_empty();
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns (matched, index after
/// the class). An unterminated class runs to the end of the pattern, as in Redis.
fn class_match(pattern: &[u8], p: usize, c: u8) -> (bool, usize) {
    let mut j = p + 1;
    let negate = pattern.get(j) == Some(&b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    while j < pattern.len() && pattern[j] != b']' {
        if pattern[j] == b'\\' && j + 1 < pattern.len() {
            j += 1;
            matched |= pattern[j] == c;
        } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' {
            // As in Redis, `]` right after `-` is the end of the range, not of the class.
            let (mut lo, mut hi) = (pattern[j], pattern[j + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&c);
            j += 2;
        } else {
            matched |= pattern[j] == c;
        }
        j += 1;
    }
    let next = (j + 1).min(pattern.len());
    (matched != negate, next)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn check(cases: &[(&str, &str, bool)]) {
        for (p, s, want) in cases {
            assert_eq!(
                glob_match(p.as_bytes(), s.as_bytes()),
                *want,
                "pattern {p:?} against {s:?}"
            );
        }
    }

    #[test]
    fn follows_redis_util_tests() {
        // The cases of Redis's util.c stringmatch tests and its keyspace/pubsub test suites.
        check(&[
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hallo", true),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h[b-a]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("foo.*", "foo.bar", true),
            ("foo.*", "foo.", true),
            ("foo.*", "foo", false),
            ("user:*:rate", "user:42:rate", true),
            ("user:*:rate", "user:42:quota", false),
            (
                "a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
        ]);
    }

    #[test]
    fn classes_follow_redis_edge_rules() {
        check(&[
            // `[` alone is a class that never matches; `[^` matches any one byte.
            ("[", "[", false),
            ("[^", "x", true),
            ("[^", "xy", false),
            // An open class runs to the end of the pattern.
            ("a[bc", "ab", true),
            ("a[bc", "ac", true),
            ("a[bc", "abc", false),
            // `\` inside a class escapes `]` and `-`.
            ("[\\]]", "]", true),
            ("[a\\-z]", "-", true),
            ("[a\\-z]", "m", false),
            // `-` at the end of a range ends the range at `]`.
            ("[a-]x", "]x", false),
            ("[a-]", "]", true),
            ("[]]", "]", false),
            ("[-a]", "-", true),
            // A trailing backslash is a literal backslash.
            ("a\\", "a\\", true),
            ("\\a", "a", true),
        ]);
    }

    #[test]
    fn empty_text_matches_only_the_empty_pattern() {
        check(&[
            ("", "", true),
            ("*", "", false),
            ("**", "", false),
            ("?", "", false),
            ("", "a", false),
            ("a*", "a", true),
            ("a**", "a", true),
        ]);
    }

    #[test]
    fn gives_up_past_a_thousand_stars_like_redis() {
        let text = "a".repeat(1100);
        let within = "a*".repeat(1000) + "a";
        assert!(glob_match(within.as_bytes(), text.as_bytes()));
        let beyond = "a*".repeat(1001) + "a";
        assert!(!glob_match(beyond.as_bytes(), text.as_bytes()));
        // A trailing star group matches the rest without counting.
        let trailing = "a*".repeat(1001);
        assert!(glob_match(trailing.as_bytes(), text.as_bytes()));
    }
}
