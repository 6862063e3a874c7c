//! Transactions over TCP: WATCH-based optimistic updates from many connections never lose an
//! increment, and the abort reply is exact in RESP2 (`*-1`) and RESP3 (`_`).

mod common;

use common::{resp, TestServer};

/// Fifty connections each add 1 to a counter ten times with the classic check-and-set loop
/// (WATCH, GET, MULTI, SET, EXEC, retry on a null reply). Every increment lands exactly once.
#[test]
fn optimistic_increments_from_fifty_clients_lose_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = TestServer::start().await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let mut con = server.redis(false).await;
            tasks.push(tokio::spawn(async move {
                let mut aborted = 0u32;
                for _ in 0..10 {
                    loop {
                        let _: () = redis::cmd("WATCH")
                            .arg("n")
                            .query_async(&mut con)
                            .await
                            .unwrap();
                        let v: Option<i64> = redis::cmd("GET")
                            .arg("n")
                            .query_async(&mut con)
                            .await
                            .unwrap();
                        let (r,): (Option<(String,)>,) = redis::pipe()
                            .cmd("MULTI")
                            .ignore()
                            .cmd("SET")
                            .arg("n")
                            .arg(v.unwrap_or(0) + 1)
                            .ignore()
                            .cmd("EXEC")
                            .query_async(&mut con)
                            .await
                            .unwrap();
                        match r {
                            Some(_) => break,
                            None => aborted += 1,
                        }
                    }
                }
                aborted
            }));
        }
        let mut aborted = 0;
        for t in tasks {
            aborted += t.await.unwrap();
        }
        let mut con = server.redis(false).await;
        let n: i64 = redis::cmd("GET")
            .arg("n")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(
            n, 500,
            "every increment lands once ({aborted} EXECs were aborted and retried)"
        );
        server.stop().await.unwrap();
    });
}

#[tokio::test]
async fn aborted_exec_is_a_null_array_in_both_protocols() {
    let server = TestServer::start().await;
    let mut other = server.raw().await;
    for (hello, null) in [("2", &b"*-1\r\n"[..]), ("3", b"_\r\n")] {
        let mut c = server.raw().await;
        c.cmd(&["HELLO", hello]).await;
        c.cmd(&["WATCH", "k"]).await;
        other.cmd(&["SET", "k", hello]).await;
        let mut req = resp(&["MULTI"]);
        req.extend(resp(&["INCR", "k"]));
        req.extend(resp(&["EXEC"]));
        let out = c.exchange(&req, 3).await;
        assert!(
            out.ends_with(null),
            "RESP{hello}: {:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(other.cmd(&["GET", "k"]).await.text(), hello, "nothing ran");
    }
    server.stop().await.unwrap();
}
