//! Readers of the uniform policy replies (`LIMIT.CHECK`, `LIMIT.STATUS`, ...) in RESP3 over
//! the `redis` crate, and of the event ring (`LIMIT.EVENTS`): each panics naming the field
//! when the reply lacks it or has another type.

use redis::aio::MultiplexedConnection as Con;
use redis::Value as V;

use super::{fields, query};

/// A reply's field/value pairs.
pub type Fields = Vec<(String, V)>;

/// Runs `args` (a command with a map reply) in RESP3 and returns its fields.
pub async fn check(con: &mut Con, args: &[&str]) -> Fields {
    fields(query(con, args).await, true)
}

/// Field `name`.
pub fn get<'a>(f: &'a Fields, name: &str) -> &'a V {
    &f.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name} in {f:?}"))
        .1
}

/// Integer field `name`.
pub fn int(f: &Fields, name: &str) -> i64 {
    match get(f, name) {
        V::Int(n) => *n,
        other => panic!("{name} is not an integer: {other:?}"),
    }
}

/// Boolean field `name`.
pub fn flag(f: &Fields, name: &str) -> bool {
    match get(f, name) {
        V::Boolean(b) => *b,
        other => panic!("{name} is not a boolean: {other:?}"),
    }
}

/// Text field `name` (`None` for a null).
pub fn text(f: &Fields, name: &str) -> Option<String> {
    match get(f, name) {
        V::Nil => None,
        V::BulkString(b) => Some(String::from_utf8(b.clone()).unwrap()),
        V::SimpleString(s) => Some(s.clone()),
        other => panic!("{name} is not text: {other:?}"),
    }
}

/// Every rule's map in `rules`.
pub fn rules(f: &Fields) -> Vec<Fields> {
    let V::Array(items) = get(f, "rules") else {
        panic!("rules is not an array")
    };
    items.iter().map(|r| fields(r.clone(), true)).collect()
}

/// Rule `i`'s map in `rules`.
pub fn rule(f: &Fields, i: usize) -> Fields {
    rules(f).swap_remove(i)
}

/// The JSON payloads of the newest events on `channel` (from the last 1000 kept).
pub async fn events(con: &mut Con, channel: &str) -> Vec<String> {
    let V::Array(items) = query(con, &["LIMIT.EVENTS", "1000"]).await else {
        panic!("LIMIT.EVENTS is an array")
    };
    items
        .into_iter()
        .filter_map(|pair| {
            let V::Array(p) = pair else { return None };
            let s = |v: &V| match v {
                V::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("{other:?}"),
            };
            (s(&p[0]) == channel).then(|| s(&p[1]))
        })
        .collect()
}

/// How many events of `channel` the server has kept.
pub async fn count_events(con: &mut Con, channel: &str) -> usize {
    events(con, channel).await.len()
}
