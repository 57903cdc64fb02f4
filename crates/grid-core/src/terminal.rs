//! Whether to colour what the binaries write: only on a terminal, and never
//! when `NO_COLOR` is set (<https://no-color.org>), so that log files and
//! pipes get plain text.

use std::io::IsTerminal;

/// Whether diagnostics on stderr may use ANSI colour codes.
pub fn colour_on_stderr() -> bool {
    colour_wanted(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))
}

/// The rule itself: a terminal, and `NO_COLOR` unset or empty.
fn colour_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".into())));
        assert!(!colour_wanted(true, Some("1".into())));
        assert!(!colour_wanted(false, None));
    }
}
