//! `proc_exit` with a code of its own, after flushing what it printed.

fn main() {
    println!("exiting with 42");
    std::process::exit(42);
}
