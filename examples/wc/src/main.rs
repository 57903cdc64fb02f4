//! Counts the lines, words and bytes of stdin, like `wc`.
//!
//! `echo "a b c" | grid-cli run target/wasm32-wasip1/release/wc.wasm`

fn main() {
    guest_sdk::run(|| {
        let input = guest_sdk::input::stdin_bytes()?;
        let lines = input.iter().filter(|&&b| b == b'\n').count();
        let words = input.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).count();
        println!("{lines} {words} {}", input.len());
        Ok(())
    })
}
