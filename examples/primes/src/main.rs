//! CPU-bound work: counts the primes below N (default 2,000,000) by trial
//! division and prints the count and a checksum of them.
//!
//! `grid-cli run target/wasm32-wasip1/release/primes.wasm -- 2000000`

use guest_sdk::args::Args;

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn main() {
    guest_sdk::run(|| {
        let limit: u64 = Args::from_env().parse_or(0, 2_000_000)?;
        let (mut count, mut checksum) = (0u64, 0u64);
        for n in 0..limit {
            if is_prime(n) {
                count += 1;
                checksum = checksum.wrapping_mul(31).wrapping_add(n);
            }
        }
        println!("primes below {limit}: {count}, checksum {checksum}");
        Ok(())
    })
}
