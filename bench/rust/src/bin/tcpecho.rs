//! tcpecho - the Tokio twin of bench/tcpecho.c: an echo server on 127.0.0.1
//! with one task per connection, and conns client tasks each doing up to rts
//! round trips of msg bytes (stopping early at secs). Figure: round trips
//! per second. Verified: every echo equals what was sent; server bytes =
//! client bytes; every connection was accepted.
use gorobench as b;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let procs = b::procs();
    let conns = b::int("conns", 64);
    let rts = b::int("rts", 2000);
    let msg = b::int("msg", 64);
    let secs = b::int("secs", 10);
    if msg < 1 || msg > 65536 || conns < 1 {
        b::fail("bad msg or conns");
    }
    let rt = b::runtime(procs);
    rt.block_on(async move {
        tokio::spawn(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| b::fail(&format!("listen: {}", e)));
            let addr = l.local_addr().unwrap();
            let server_bytes = Arc::new(AtomicI64::new(0));
            let accepted = Arc::new(AtomicI64::new(0));
            let sb = server_bytes.clone();
            let acc = accepted.clone();
            let acceptor = tokio::spawn(async move {
                let mut hs = Vec::new();
                for _ in 0..conns {
                    let (mut c, _) = l.accept().await.unwrap_or_else(|e| b::fail(&format!("accept: {}", e)));
                    acc.fetch_add(1, Relaxed);
                    let sb = sb.clone();
                    hs.push(tokio::spawn(async move {
                        let _ = c.set_nodelay(true);
                        let mut buf = vec![0u8; 4096];
                        loop {
                            let r = c.read(&mut buf).await.unwrap_or_else(|e| b::fail(&format!("server read: {}", e)));
                            if r == 0 {
                                break;
                            }
                            c.write_all(&buf[..r]).await.unwrap_or_else(|e| b::fail(&format!("server write: {}", e)));
                            sb.fetch_add(r as i64, Relaxed);
                        }
                    }));
                }
                hs
            });
            let t0 = b::now();
            let stop_at = Instant::now() + Duration::from_secs(secs as u64);
            let mut cs = Vec::new();
            for id in 0..conns {
                cs.push(tokio::spawn(async move {
                    let mut c = TcpStream::connect(addr).await.unwrap_or_else(|e| b::fail(&format!("dial: {}", e)));
                    let _ = c.set_nodelay(true);
                    let mut out = vec![0u8; msg as usize];
                    let mut inb = vec![0u8; msg as usize];
                    let mut done = 0i64;
                    let mut i = 0i64;
                    while i < rts && Instant::now() < stop_at {
                        for k in 0..msg {
                            out[k as usize] = (id * 31 + i * 7 + k) as u8;
                        }
                        c.write_all(&out).await.unwrap_or_else(|e| b::fail(&format!("client write: {}", e)));
                        c.read_exact(&mut inb).await.unwrap_or_else(|e| b::fail(&format!("client read: {}", e)));
                        if inb != out {
                            b::fail(&format!("client {}: round trip {} echoed wrong bytes", id, i));
                        }
                        done += 1;
                        i += 1;
                    }
                    done
                }));
            }
            let mut client_rts = 0i64;
            for c in cs {
                client_rts += c.await.unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
            }
            let elapsed = b::now() - t0;
            // the client streams are dropped (closed): the handlers see EOF
            let tmo = Duration::from_secs(5);
            let hs = tokio::time::timeout(tmo, acceptor).await
                .unwrap_or_else(|_| b::fail("the acceptor hung"))
                .unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
            for h in hs {
                tokio::time::timeout(tmo, h).await
                    .unwrap_or_else(|_| b::fail("a handler hung"))
                    .unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
            }
            let acc = accepted.load(Relaxed);
            if acc != conns {
                b::fail(&format!("server accepted {} connections, want {}", acc, conns));
            }
            if client_rts == 0 {
                b::fail("no round trip completed");
            }
            let sbytes = server_bytes.load(Relaxed);
            if sbytes != client_rts * msg {
                b::fail(&format!("server echoed {} bytes, clients got {}", sbytes, client_rts * msg));
            }
            if client_rts < conns * rts {
                b::info(&format!("time limit reached: {} of {} round trips", client_rts, conns * rts));
            }
            b::report(&b::str("name", "tcp_echo"), client_rts as f64 / (elapsed as f64 / 1e9), "rt/s");
        })
        .await
        .unwrap_or_else(|e| b::fail(&format!("join: {}", e)));
    });
}
