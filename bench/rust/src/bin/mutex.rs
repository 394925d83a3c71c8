//! mutex - the Tokio twin of bench/mutex.c: g tasks each take and release one
//! tokio::sync::Mutex n/g times around an increment of a shared counter.
//! Figure: ns per lock+unlock. Verified: the counter.
use gorobench as b;
use std::sync::Arc;
use tokio::sync::Mutex;

fn main() {
    let procs = b::procs();
    let mut n = b::int("n", 4000000);
    let g = b::int("goroutines", 8);
    if g < 1 {
        b::fail("goroutines must be >= 1");
    }
    let per = n / g;
    n = per * g;
    let rt = b::runtime(procs);
    let (counter, elapsed) = rt.block_on(async move {
        tokio::spawn(async move {
            let mu = Arc::new(Mutex::new(0i64));
            let t0 = b::now();
            let mut hs = Vec::new();
            for _ in 0..g {
                let mu = mu.clone();
                hs.push(tokio::spawn(async move {
                    for _ in 0..per {
                        *mu.lock().await += 1;
                    }
                }));
            }
            for h in hs {
                h.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
            }
            let t = b::now() - t0;
            let c = *mu.lock().await;
            (c, t)
        })
        .await
        .unwrap_or_else(|e| b::fail(&format!("join: {}", e)))
    });
    if counter != n {
        b::fail(&format!("counter is {}, want {}", counter, n));
    }
    b::report(&b::str("name", "mutex"), elapsed as f64 / n as f64, "ns/op");
}
