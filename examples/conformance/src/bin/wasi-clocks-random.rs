//! Clocks, sleeping in `poll_oneoff`, and `random_get`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(target_os = "wasi")]
#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

/// 32 bytes from WASI's `random_get`.
#[cfg(target_os = "wasi")]
fn random() -> [u8; 32] {
    let mut buf = [0u8; 32];
    // SAFETY: `random_get` writes `len` bytes at `buf`, which has them.
    let errno = unsafe { random_get(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(errno, 0, "random_get failed");
    buf
}

/// Built for the host too (the workspace builds every member), where the
/// kernel gives the bytes.
#[cfg(not(target_os = "wasi"))]
fn random() -> [u8; 32] {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    buf
}

fn main() {
    let start = Instant::now();
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("wall clock after 2001: {}", since_epoch.as_secs() > 978_307_200);
    std::thread::sleep(Duration::from_millis(20));
    println!("slept at least 20ms: {}", start.elapsed() >= Duration::from_millis(20));
    println!("monotonic: {}", Instant::now() >= start);
    let (a, b) = (random(), random());
    println!("random draws differ: {}", a != b);
    println!("random not all zero: {}", a.iter().any(|&x| x != 0));
}
