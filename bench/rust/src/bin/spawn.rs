//! spawn - the Tokio twin of bench/spawn.c: spawn n tasks from one, each adds
//! one to a counter and counts down a WaitGroup-like latch (an atomic and a
//! Notify); join them all. Figure: ns per task.
use gorobench as b;
use std::sync::atomic::{AtomicI64, Ordering::{AcqRel, Relaxed}};
use std::sync::Arc;
use tokio::sync::Notify;

fn main() {
    let procs = b::procs();
    let n = b::int("n", 1000000);
    let rt = b::runtime(procs);
    let counter = Arc::new(AtomicI64::new(0));
    let c2 = counter.clone();
    let elapsed = rt.block_on(async move {
        tokio::spawn(async move {
            let left = Arc::new(AtomicI64::new(n));
            let done = Arc::new(Notify::new());
            let t0 = b::now();
            for _ in 0..n {
                let (c, left, done) = (c2.clone(), left.clone(), done.clone());
                tokio::spawn(async move {
                    c.fetch_add(1, Relaxed);
                    // AcqRel: the last one sees every other's increment
                    if left.fetch_sub(1, AcqRel) == 1 {
                        done.notify_one(); // keeps a permit if nobody waits yet
                    }
                });
            }
            done.notified().await;
            b::now() - t0
        })
        .await
        .unwrap_or_else(|e| b::fail(&format!("join: {}", e)))
    });
    let c = counter.load(Relaxed);
    if c != n {
        b::fail(&format!("{} tasks ran, want {}", c, n));
    }
    b::report(&b::str("name", "spawn_join"), elapsed as f64 / n as f64, "ns/op");
}
