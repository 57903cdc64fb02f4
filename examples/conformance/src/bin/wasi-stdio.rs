//! Stdin read to its end, stdout and stderr written apart.

use std::io::{Read, Write};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    println!("read {} bytes", input.len());
    print!("{}", input.to_uppercase());
    eprintln!("this goes to stderr");
    std::io::stdout().flush().unwrap();
}
