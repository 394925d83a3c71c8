//! pingpong - the Tokio twin of bench/pingpong.c: two tasks bounce a counter
//! over two tokio::sync::mpsc channels of capacity 1 (Tokio has no
//! unbuffered channel; capacity 1 is the nearest). Figure: ns per round trip.
//! Verified: every reply is the request plus one; the echoer saw all n.
use gorobench as b;
use tokio::sync::mpsc;

fn main() {
    let procs = b::procs();
    let n = b::int("n", 1000000);
    let rt = b::runtime(procs);
    let (echoed, elapsed) = rt.block_on(async move {
        let (ping_tx, mut ping_rx) = mpsc::channel::<i64>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<i64>(1);
        let echoer = tokio::spawn(async move {
            let mut echoed = 0i64;
            while let Some(v) = ping_rx.recv().await {
                echoed += 1;
                if pong_tx.send(v + 1).await.is_err() {
                    b::fail("send on pong failed");
                }
            }
            echoed
        });
        // the driving side is a task too, as on the other sides (not the
        // block_on thread, which is not a worker)
        let driver = tokio::spawn(async move {
            let t0 = b::now();
            for i in 0..n {
                if ping_tx.send(i).await.is_err() {
                    b::fail("send on ping failed");
                }
                match pong_rx.recv().await {
                    Some(v) if v == i + 1 => {}
                    v => b::fail(&format!("round trip {}: got {:?}, want {}", i, v, i + 1)),
                }
            }
            b::now() - t0
        });
        let elapsed = driver.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
        let echoed = echoer.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
        (echoed, elapsed)
    });
    if echoed != n {
        b::fail(&format!("echoer saw {} requests, want {}", echoed, n));
    }
    b::report(&b::str("name", "pingpong"), elapsed as f64 / n as f64, "ns/op");
}
