//! Arguments and environment as the runner gave them.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join("|"));
    println!("GREETING={}", std::env::var("GREETING").unwrap_or_default());
    println!("NOT_SET is unset: {}", std::env::var("NOT_SET").is_err());
}
