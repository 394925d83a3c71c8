//! chanbuf - the Tokio twin of bench/chanbuf.c: 4 producers and 4 consumers
//! share one buffered channel of capacity 128. Tokio has no many-to-many
//! channel: the stand-in is one tokio::sync::mpsc channel (many producers)
//! whose single receiver the consumers share behind a tokio::sync::Mutex.
//! Figure: ns per message. Verified: count and sum of all messages.
use gorobench as b;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

fn main() {
    let procs = b::procs();
    let n = b::int("n", 2000000);
    let producers = b::int("producers", 4);
    let consumers = b::int("consumers", 4);
    let cap = b::int("cap", 128);
    if !(1..=64).contains(&producers) || !(1..=64).contains(&consumers) || cap < 1 {
        b::fail("producers and consumers must be 1..64, cap >= 1");
    }
    let rt = b::runtime(procs);
    let (total, sum, elapsed) = rt.block_on(async move {
        tokio::spawn(async move {
            let (tx, rx) = mpsc::channel::<i64>(cap as usize);
            let rx = Arc::new(Mutex::new(rx));
            let t0 = b::now();
            let mut cs = Vec::new();
            for _ in 0..consumers {
                let rx = rx.clone();
                cs.push(tokio::spawn(async move {
                    let (mut k, mut s) = (0i64, 0i64);
                    loop {
                        let v = rx.lock().await.recv().await;
                        match v {
                            Some(v) => {
                                k += 1;
                                s += v;
                            }
                            None => break,
                        }
                    }
                    (k, s)
                }));
            }
            for p in 0..producers {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut v = p + 1;
                    while v <= n {
                        if tx.send(v).await.is_err() {
                            b::fail("send failed");
                        }
                        v += producers;
                    }
                });
            }
            drop(tx); // closed when the last producer's clone drops
            let (mut total, mut sum) = (0i64, 0i64);
            for c in cs {
                let (k, s) = c.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
                total += k;
                sum += s;
            }
            (total, sum, b::now() - t0)
        })
        .await
        .unwrap_or_else(|e| b::fail(&format!("join: {}", e)))
    });
    if total != n || sum != n * (n + 1) / 2 {
        b::fail(&format!("received {} messages summing to {}, want {} summing to {}", total, sum, n, n * (n + 1) / 2));
    }
    b::report(&b::str("name", "chan_buffered_4x4"), elapsed as f64 / n as f64, "ns/op");
}
