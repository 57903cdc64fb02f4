//! Prints the ten most frequent words of stdin, the same program as the C,
//! AssemblyScript and WAT guests beside it: words are runs of ASCII letters,
//! folded to lowercase; ties go to the word first in byte order.
//!
//! `echo "a b a" | grid-cli run target/wasm32-wasip1/release/wordfreq.wasm`

use std::collections::HashMap;

fn main() {
    guest_sdk::run(|| {
        let input = guest_sdk::input::stdin_bytes()?;
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        for word in input.split(|b| !b.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
            *counts.entry(word.to_ascii_lowercase()).or_default() += 1;
        }
        let mut ranked: Vec<(Vec<u8>, u64)> = counts.into_iter().collect();
        ranked.sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
        for (word, count) in ranked.iter().take(10) {
            println!("{count} {}", String::from_utf8_lossy(word));
        }
        Ok(())
    })
}
