//! Greets and echoes its arguments: the smallest grid guest. The greeting
//! comes from `$GREETING` when it is set.
//!
//! `cargo build --release --target wasm32-wasip1 -p hello`, then
//! `grid-cli run target/wasm32-wasip1/release/hello.wasm -- grid`.

use guest_sdk::args::Args;

fn main() {
    guest_sdk::run(|| {
        let args = Args::from_env();
        let name = if args.all().is_empty() { "world".to_owned() } else { args.all().join(" ") };
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
        println!("{greeting}, {name}!");
        for (i, arg) in args.all().iter().enumerate() {
            println!("arg {}: {arg}", i + 1);
        }
        Ok(())
    })
}
