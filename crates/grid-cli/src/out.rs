//! Writing to stdout and stderr without panicking. A reader that goes away
//! (`grid-cli status ID | head -1`) makes a write to stdout fail with a
//! broken pipe, which ends the command quietly and successfully (see
//! `main`), as ripgrep does; a closed stderr is ignored.

/// `println!` that returns the write's error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// `eprintln!` that never panics: there is nowhere left to report a closed
/// stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
