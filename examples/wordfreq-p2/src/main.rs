//! A WASI preview 2 component: the ten most frequent words of stdin.
//!
//! A word is a run of ASCII letters, folded to lowercase; words are ordered
//! by count (most first), then bytewise, and printed as `<count> <word>`.
//! Guests in other languages implement the same contract byte for byte.
//!
//! `cargo build --release --target wasm32-wasip2 -p wordfreq-p2 &&
//! echo "b a B" | grid-cli run target/wasm32-wasip2/release/wordfreq-p2.wasm`

use std::collections::HashMap;
use std::io::Write;

fn main() {
    guest_sdk::run(|| {
        let input = guest_sdk::input::stdin_bytes()?;
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        for word in input.split(|b| !b.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
            *counts.entry(word.to_ascii_lowercase()).or_default() += 1;
        }
        let mut ranked: Vec<_> = counts.into_iter().collect();
        ranked.sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (word, count) in ranked.iter().take(10) {
            write!(out, "{count} ")?;
            out.write_all(word)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    })
}
