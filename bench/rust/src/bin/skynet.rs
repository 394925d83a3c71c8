//! skynet - the Tokio twin of bench/skynet.c: 1,111,111 tasks in a tree of
//! fan-out div, sums sent up tokio::sync::mpsc channels of capacity 1 (each
//! parent's children share one). Figure: ms for the whole tree.
use gorobench as b;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

fn skynet(up: mpsc::Sender<i64>, num: i64, size: i64, div: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            let _ = up.send(num).await;
            return;
        }
        let (tx, mut rx) = mpsc::channel::<i64>(1);
        let sub = size / div;
        for i in 0..div {
            tokio::spawn(skynet(tx.clone(), num + i * sub, sub, div));
        }
        drop(tx);
        let mut sum = 0i64;
        for _ in 0..div {
            sum += rx.recv().await.unwrap_or_else(|| b::fail("a child hung up"));
        }
        let _ = up.send(sum).await;
    })
}

fn main() {
    let procs = b::procs();
    let size = b::int("size", 1000000);
    let div = b::int("div", 10);
    let want = size * (size - 1) / 2;
    let rt = b::runtime(procs);
    let (result, elapsed) = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<i64>(1);
        let t0 = b::now();
        tokio::spawn(skynet(tx, 0, size, div));
        let r = rx.recv().await.unwrap_or_else(|| b::fail("the root hung up"));
        (r, b::now() - t0)
    });
    if result != want {
        b::fail(&format!("sum is {}, want {}", result, want));
    }
    b::report(&b::str("name", "skynet"), elapsed as f64 / 1e6, "ms");
}
