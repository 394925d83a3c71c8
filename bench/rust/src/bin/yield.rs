//! yield - the Tokio twin of bench/yield.c: two tasks on one worker hand the
//! CPU back and forth with tokio::task::yield_now. Figure: ns per yield.
//! Verified: every yield ran, and the two tasks really alternated.
use gorobench as b;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

fn main() {
    let procs = b::procs();
    let n = b::int("n", 1000000);
    let rt = b::runtime(procs);
    // one worker: Relaxed suffices, nothing runs in parallel
    let last = Arc::new(AtomicUsize::new(2));
    let switches = Arc::new(AtomicI64::new(0));
    let (count, elapsed) = rt.block_on(async {
        let t0 = b::now();
        let mut hs = Vec::new();
        for me in 0..2usize {
            let (last, switches) = (last.clone(), switches.clone());
            hs.push(tokio::spawn(async move {
                let mut count = 0i64;
                for _ in 0..n {
                    last.store(me, Relaxed);
                    tokio::task::yield_now().await;
                    if last.load(Relaxed) != me {
                        switches.fetch_add(1, Relaxed);
                    }
                    count += 1;
                }
                count
            }));
        }
        let mut count = [0i64; 2];
        for (i, h) in hs.into_iter().enumerate() {
            count[i] = h.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
        }
        (count, b::now() - t0)
    });
    if count[0] != n || count[1] != n {
        b::fail(&format!("yields counted {} + {}, want {} each", count[0], count[1], n));
    }
    let s = switches.load(Relaxed);
    if s < n {
        b::fail(&format!("only {} of {} yields switched tasks", s, 2 * n));
    }
    b::report(&b::str("name", "yield"), elapsed as f64 / (2 * n) as f64, "ns/op");
}
