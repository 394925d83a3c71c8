//! idleconns - the Tokio twin of bench/idleconns.c: conns TCP connections on
//! loopback, both ends in this process, each end a task blocked in a read
//! (the server end echoes, the client end hands what it reads to main);
//! after idle_ms, what=mem: bytes of RSS plus page tables per connection;
//! what=wake: microseconds per round trip through sample random connections.
//! Verified: every connection accepted, every echo checked.
use gorobench as b;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const MSG: usize = 16;

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}
extern "C" {
    fn getrlimit(res: i32, r: *mut Rlimit) -> i32;
    fn setrlimit(res: i32, r: *const Rlimit) -> i32;
}
const RLIMIT_NOFILE: i32 = 7;

/// Raise RLIMIT_NOFILE for conns connections, or return how many fit.
fn raise_nofile(conns: i64) -> i64 {
    let need = (2 * conns + 256) as u64;
    let mut rl = Rlimit { cur: 0, max: 0 };
    unsafe { getrlimit(RLIMIT_NOFILE, &mut rl) };
    if rl.cur >= need {
        return conns;
    }
    let want = Rlimit { cur: need, max: rl.max.max(need) };
    if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
        return conns;
    }
    let cap = Rlimit { cur: rl.max, max: rl.max };
    unsafe { setrlimit(RLIMIT_NOFILE, &cap) };
    let fit = (rl.max as i64 - 256) / 2;
    if fit < 1000 {
        b::fail(&format!("{} connections need {} fds: raise the limit", conns, need));
    }
    b::info(&format!("RLIMIT_NOFILE hard limit {}: {} connections, not {}", rl.max, fit, conns));
    fit
}

fn main() {
    let procs = b::procs();
    let conns = raise_nofile(b::int("conns", 100000));
    let sample = b::int("sample", 1000);
    let idle = b::int("idle_ms", 1500);
    let nports = b::int("ports", 4);
    let what = b::str("what", "mem");
    if what != "mem" && what != "wake" {
        b::fail("what=mem|wake");
    }
    let is_mem = what == "mem";
    let rt = b::runtime(procs);
    let figure = rt.block_on(async move {
        tokio::spawn(async move {
            let accepted = Arc::new(AtomicI64::new(0));
            let bad = Arc::new(AtomicI64::new(0));
            let mut addrs = Vec::new();
            for _ in 0..nports {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| b::fail(&format!("listen: {}", e)));
                addrs.push(l.local_addr().unwrap());
                let (acc, bad) = (accepted.clone(), bad.clone());
                tokio::spawn(async move {
                    loop {
                        let (mut c, _) = match l.accept().await {
                            Ok(x) => x,
                            Err(_) => return,
                        };
                        acc.fetch_add(1, Relaxed);
                        let bad = bad.clone();
                        tokio::spawn(async move {
                            let mut buf = [0u8; MSG];
                            loop {
                                match c.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if c.write_all(&buf[..n]).await.is_err() {
                                            bad.fetch_add(1, Relaxed);
                                        }
                                    }
                                }
                            }
                        });
                    }
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let before = b::mem();
            let (tx, mut rx) = mpsc::channel::<i64>(1);
            let mut writers = Vec::new();
            for i in 0..conns {
                let c = TcpStream::connect(addrs[(i % nports) as usize])
                    .await
                    .unwrap_or_else(|e| b::fail(&format!("dial {}: {}", i, e)));
                let (mut rd, wr) = c.into_split();
                writers.push(wr);
                let (tx, bad) = (tx.clone(), bad.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; MSG];
                    while rd.read_exact(&mut buf).await.is_ok() {
                        if i64::from_le_bytes(buf[..8].try_into().unwrap()) != i {
                            bad.fetch_add(1, Relaxed);
                        }
                        if tx.send(i).await.is_err() {
                            return;
                        }
                    }
                });
            }
            while accepted.load(Relaxed) < conns {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(idle as u64)).await;
            let after = b::mem();
            b::info(&format!("{} connections: rss+pte +{} KiB", conns, (after - before) / 1024));
            let fig = if is_mem {
                (after - before) as f64 / conns as f64
            } else {
                let mut x: u64 = 88172645463325252;
                let t0 = b::now();
                let mut each = Vec::with_capacity(sample as usize);
                for _ in 0..sample {
                    let tk = b::now();
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x % conns as u64) as i64;
                    let mut buf = [0u8; MSG];
                    buf[..8].copy_from_slice(&i.to_le_bytes());
                    writers[i as usize].write_all(&buf).await.unwrap_or_else(|e| b::fail(&format!("write {}: {}", i, e)));
                    let got = rx.recv().await.unwrap_or(-1);
                    if got != i {
                        b::fail(&format!("reply from {}, want {}", got, i));
                    }
                    each.push(b::now() - tk);
                }
                let fig = (b::now() - t0) as f64 / 1000.0 / sample as f64;
                each.sort_unstable();
                let n = each.len();
                b::info(&format!(
                    "round trips: median {:.1} us, p90 {:.1} us, p99 {:.1} us",
                    each[n / 2] as f64 / 1000.0,
                    each[n * 9 / 10] as f64 / 1000.0,
                    each[n * 99 / 100] as f64 / 1000.0
                ));
                fig
            };
            drop(writers);
            if bad.load(Relaxed) != 0 {
                b::fail(&format!("{} bad echoes", bad.load(Relaxed)));
            }
            fig
        })
        .await
        .unwrap()
    });
    if is_mem {
        b::report(&b::str("name", "idle_conns_mem"), figure, "bytes/conn");
    } else {
        b::report(&b::str("name", "idle_conns_wake"), figure, "us/roundtrip");
    }
}
