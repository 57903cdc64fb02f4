//! Command-line arguments: the program name, positional arguments, and
//! `--flag value` options, parsed with errors a user can act on.

use crate::error::{Error, Result};
use std::str::FromStr;

/// The program's arguments, without the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    program: String,
    args: Vec<String>,
}

impl Args {
    /// The arguments this program was started with.
    pub fn from_env() -> Self {
        let mut all = std::env::args();
        let program = all.next().unwrap_or_default();
        Self { program, args: all.collect() }
    }

    /// Arguments from a list, program name first (for tests).
    pub fn from_vec(all: Vec<String>) -> Self {
        let mut all = all.into_iter();
        Self { program: all.next().unwrap_or_default(), args: all.collect() }
    }

    /// The program name (`argv[0]`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// All arguments after the program name.
    pub fn all(&self) -> &[String] {
        &self.args
    }

    /// The `i`th argument after the program name.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// The `i`th argument parsed as `T`, or `default` when absent.
    pub fn parse_or<T: FromStr>(&self, i: usize, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(i) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|e| Error::new(format!("argument {} `{s}`: {e}", i + 1)).with_code(2)),
        }
    }

    /// The value after `--name` (or in `--name=value`), if given.
    pub fn option(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if *a == flag {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(&flag).and_then(|rest| rest.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    }

    /// The value of `--name` parsed as `T`, or `default` when the option is
    /// absent. A value that does not parse is a usage error (exit code 2).
    pub fn parse_option_or<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.option(name) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|e| Error::new(format!("option `--{name}` `{s}`: {e}")).with_code(2)),
        }
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        self.args.contains(&flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::from_vec(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn positional_and_options() {
        let a = args(&["app.wasm", "10", "--name", "x", "--mode=fast", "--verbose"]);
        assert_eq!(a.program(), "app.wasm");
        assert_eq!(a.get(0), Some("10"));
        assert_eq!(a.parse_or(0, 5u32).unwrap(), 10);
        assert_eq!(a.parse_or(9, 5u32).unwrap(), 5);
        assert_eq!(a.option("name"), Some("x"));
        assert_eq!(a.option("mode"), Some("fast"));
        assert_eq!(a.parse_option_or("count", 3u8).unwrap(), 3);
        assert!(a.flag("verbose"));
        assert!(!a.flag("quiet"));
    }

    #[test]
    fn bad_number_is_a_usage_error() {
        let e = args(&["p", "ten"]).parse_or(0, 1u32).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(e.to_string().contains("argument 1 `ten`"));
        let e = args(&["p", "--top=x"]).parse_option_or("top", 1u32).unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(e.to_string(), "option `--top` `x`: invalid digit found in string");
        assert_eq!(args(&["p", "--top", "7"]).parse_option_or("top", 1u32).unwrap(), 7);
    }
}
