//! The Rust twin of bench/bench.h and bench/go/benchutil: key=value
//! arguments, the clock, RSS, one figure per line ("name value unit"), and
//! FAIL on a wrong result, so that a fast wrong answer never counts.
//!
//! It builds with Rust 1.63 (Debian bookworm's), for the offline path.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

// parsed again at each call: a handful of calls per run
fn args() -> HashMap<String, String> {
    let mut m = HashMap::new();
    for a in std::env::args().skip(1) {
        match a.find('=') {
            Some(i) if i > 0 => {
                m.insert(a[..i].to_string(), a[i + 1..].to_string());
            }
            _ => fail(&format!("bad argument {:?} (want key=value)", a)),
        }
    }
    m
}

/// Argument `key` as an integer, or `def` when it is absent.
pub fn int(key: &str, def: i64) -> i64 {
    match args().get(key) {
        None => def,
        Some(s) => s
            .parse::<i64>()
            .unwrap_or_else(|_| fail(&format!("bad value for {}: {:?}", key, s))),
    }
}

/// Argument `key`, or `def` when it is absent.
pub fn str(key: &str, def: &str) -> String {
    args().get(key).cloned().unwrap_or_else(|| def.to_string())
}

/// Monotonic nanoseconds since the first call.
pub fn now() -> i64 {
    static T0: Mutex<Option<Instant>> = Mutex::new(None);
    let mut t0 = T0.lock().unwrap();
    t0.get_or_insert_with(Instant::now).elapsed().as_nanos() as i64
}

/// One figure: "name value unit" (the same %.6g-like precision as C and Go).
pub fn report(name: &str, value: f64, unit: &str) {
    println!("{} {} {}", name, fmt6(value), unit);
}

fn fmt6(v: f64) -> String {
    // six significant digits, as %.6g does
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let prec = (5 - mag).max(0) as usize;
    let s = format!("{:.*}", prec, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A line for humans on stderr; the runner keeps it in the log.
pub fn info(msg: &str) {
    eprintln!("info: {}", msg);
}

/// A wrong result (or a broken run): "FAIL: why" on stderr, exit 1.
pub fn fail(msg: &str) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!("FAIL: {}", msg);
    std::process::exit(1);
}

/// The worker count the runner asked for (procs=N), at least 1.
pub fn procs() -> usize {
    let p = int("procs", 1);
    if p < 1 {
        fail("procs must be >= 1");
    }
    p as usize
}

/// A multi-thread Tokio runtime with exactly `procs` workers, I/O and time on.
pub fn runtime(procs: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procs)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {}", e)))
}

/// Resident set size in bytes, from /proc/self/statm (as the C and Go sides).
/// Resident set plus page tables (VmPTE), as bench_mem in bench/bench.h.
pub fn mem() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|_| fail("read /proc/self/status"));
    let kb: i64 = s
        .lines()
        .find(|l| l.starts_with("VmPTE:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| fail("no VmPTE in /proc/self/status"));
    rss() + kb * 1024
}

pub fn rss() -> i64 {
    let s = std::fs::read_to_string("/proc/self/statm")
        .unwrap_or_else(|_| fail("read /proc/self/statm"));
    let pages: i64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| fail("bad /proc/self/statm"));
    pages * page_size()
}

fn page_size() -> i64 {
    // the page size from the aux vector is not in std; 4 KiB unless
    // /proc/self/smaps says otherwise (KernelPageSize of the first mapping)
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("KernelPageSize:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<i64>().ok()))
        })
        .map(|kb| kb * 1024)
        .unwrap_or(4096)
}
