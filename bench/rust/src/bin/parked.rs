//! parked - the Tokio twin of bench/parked.c: spawn n tasks that check in
//! and park on a shared tokio::sync::Semaphore with no permits; RSS growth
//! (/proc/self/statm) plus page tables (VmPTE) divided by n. Figure: bytes per task.
use gorobench as b;
use std::sync::atomic::{AtomicI64, Ordering::{AcqRel, Relaxed}};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

fn main() {
    let procs = b::procs();
    let n = b::int("n", 100000);
    let rt = b::runtime(procs);
    rt.block_on(async move {
        let started = Arc::new(AtomicI64::new(0));
        let all_in = Arc::new(Notify::new());
        let finished = Arc::new(AtomicI64::new(0));
        let release = Arc::new(Semaphore::new(0));
        tokio::time::sleep(Duration::from_millis(20)).await; // let the runtime settle
        let before = b::mem();
        let all_done = Arc::new(Notify::new());
        for _ in 0..n {
            let (started, all_in, finished, release, all_done) =
                (started.clone(), all_in.clone(), finished.clone(), release.clone(), all_done.clone());
            // the join handle is dropped: the task runs on, detached
            tokio::spawn(async move {
                if started.fetch_add(1, AcqRel) + 1 == n {
                    all_in.notify_one(); // keeps a permit if main is not waiting yet
                }
                release.acquire().await.unwrap_or_else(|_| b::fail("closed")).forget();
                if finished.fetch_add(1, AcqRel) + 1 == n {
                    all_done.notify_one();
                }
            });
        }
        all_in.notified().await;
        // parked for a while, as the C side (goro compacts after 1 s)
        tokio::time::sleep(Duration::from_millis(b::int("idle_ms", 1500) as u64)).await;
        let parked = b::mem();
        if finished.load(Relaxed) != 0 {
            b::fail("a task went past its park");
        }
        release.add_permits(n as usize);
        all_done.notified().await;
        let f = finished.load(Relaxed);
        if f != n {
            b::fail(&format!("{} tasks finished, want {}", f, n));
        }
        b::info(&format!("rss+pte before {} KiB, parked {} KiB", before / 1024, parked / 1024));
        b::report(&b::str("name", "parked"), (parked - before) as f64 / n as f64, "bytes/goroutine");
    });
}
