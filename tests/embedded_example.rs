//! `cargo run --example embedded` works as a user runs it and prints the decisions it should
//! (issue 16): the in-memory plan, then the append-only file surviving a reopen.

use std::process::Command;

#[test]
fn the_embedding_example_prints_its_decisions() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "embedded"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("with the append-only file"))
        .collect();
    assert_eq!(
        lines,
        [
            "in memory, plan free = RATE 3/1m QUOTA 5/day",
            "alice request 1: allowed; remaining: rate-1m 2, quota-day 4",
            "alice request 2: allowed; remaining: rate-1m 1, quota-day 3",
            "alice request 3: allowed; remaining: rate-1m 0, quota-day 2",
            "alice request 4: denied by rate-1m (retry after 20 s); remaining: rate-1m 0, quota-day 2",
            "bob request 1: allowed; remaining: rate-1m 2, quota-day 4",
            "carol request 1: allowed; remaining: rate-1m 2, quota-day 4",
            "carol request 2: allowed; remaining: rate-1m 1, quota-day 3",
            "reopened",
            "carol request 3: allowed; remaining: rate-1m 0, quota-day 2",
            "carol request 4: denied by rate-1m (retry after 20 s); remaining: rate-1m 0, quota-day 2",
        ],
        "{stdout}"
    );
}
