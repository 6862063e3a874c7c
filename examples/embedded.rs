//! limitkv in-process: no server, no sockets. Opens an engine in memory, defines a plan of two
//! rules, checks a few requests and prints each decision; then does the same with the
//! append-only file in a temporary directory, closes the engine, reopens it, and shows that
//! the plan and the usage survived.
//!
//! ```text
//! cargo run --example embedded
//! ```

use std::io;

use limitkv::config::Config;
use limitkv::engine::{CheckOutcome, CheckRequest, Engine};

/// One line per decision: who, allowed or by which rule denied, and what each rule has left.
fn show(who: &str, n: usize, d: &CheckOutcome) {
    let verdict = match &d.denied_by {
        None => "allowed".to_owned(),
        Some(rule) => {
            let wait = d
                .decision()
                .and_then(|x| x.retry_after)
                .map_or("never".to_owned(), |w| {
                    format!("{} s", w.as_millis_ceil().div_ceil(1000))
                });
            format!("denied by {rule} (retry after {wait})")
        }
    };
    let left: Vec<String> = d
        .rules
        .iter()
        .map(|r| format!("{} {}", r.name, r.decision.remaining))
        .collect();
    println!(
        "{who} request {n}: {verdict}; remaining: {}",
        left.join(", ")
    );
}

fn main() -> io::Result<()> {
    // A plan of two rules: 3 requests a minute (a GCRA bucket) and 5 a day (a calendar quota
    // that resets at midnight UTC). Rule keys are derived per identity, so every customer
    // gets their own budget.
    let plan = "RATE 3/1m QUOTA 5/day";
    let fail = |e: limitkv::engine::Error| io::Error::other(e.to_string());

    println!("in memory, plan free = {plan}");
    let engine = Engine::in_memory();
    engine.policy_set("free", plan).map_err(fail)?;
    for n in 1..=4 {
        let d = engine
            .check(&CheckRequest::new("free", "alice"))
            .map_err(fail)?;
        show("alice", n, &d);
    }
    let d = engine
        .check(&CheckRequest::new("free", "bob"))
        .map_err(fail)?;
    show("bob", 1, &d);

    let dir = std::env::temp_dir().join(format!("limitkv-embedded-{}", std::process::id()));
    println!("with the append-only file in {}", dir.display());
    let config = || Config {
        appendonly: true,
        dir: dir.clone(),
        ..Config::default()
    };
    {
        let engine = Engine::open(config())?;
        engine.policy_set("free", plan).map_err(fail)?;
        for n in 1..=2 {
            let d = engine
                .check(&CheckRequest::new("free", "carol"))
                .map_err(fail)?;
            show("carol", n, &d);
        }
        // Flushes the file: everything decided so far is on disk.
        engine.shutdown()?;
    }
    println!("reopened");
    let engine = Engine::open(config())?;
    for n in 3..=4 {
        let d = engine
            .check(&CheckRequest::new("free", "carol"))
            .map_err(fail)?;
        show("carol", n, &d);
    }
    engine.shutdown()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
