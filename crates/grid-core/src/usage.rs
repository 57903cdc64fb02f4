//! Usage errors, alike in every binary: a wrong flag, value or verb is one
//! `grid:` line on stderr with a hint (the nearest flag or verb when there
//! is one, and which `--help` to read), and exit code 2. `--help` and
//! `--version` print as clap prints them.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, Parser};
use std::ffi::OsString;

/// The exit code of a usage error.
pub const USAGE: i32 = 2;

/// Parses this process's arguments into `P`, or exits: with the help or
/// version asked for, or with one `grid:` line and [`USAGE`].
pub fn parse<P: Parser>() -> P {
    parse_from(std::env::args_os())
}

/// [`parse`] of the given arguments (the binary's name first).
pub fn parse_from<P: Parser>(args: impl IntoIterator<Item = impl Into<OsString>>) -> P {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = P::command();
    match command.try_get_matches_from_mut(&args).and_then(|m| P::from_arg_matches(&m)) {
        Ok(parsed) => parsed,
        Err(e) => exit(e, &command, &args),
    }
}

/// Exits for a parse error: help and version as clap prints them, anything
/// else as the one line of [`line`] and [`USAGE`].
pub fn exit(error: clap::Error, command: &Command, args: &[OsString]) -> ! {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit()
    }
    eprintln!("grid: {}", line(&error, command, args));
    std::process::exit(USAGE)
}

/// The one line (without its `grid: ` prefix) that says what is wrong with
/// `args` and where to read more, e.g. ``unexpected flag `--verbse`; did
/// you mean `--verbose`? (see `grid-cli run --help`)``.
pub fn line(error: &clap::Error, command: &Command, args: &[OsString]) -> String {
    let path = path(command, args);
    let here = path.last().copied().unwrap_or(command);
    let what = match error.kind() {
        ErrorKind::UnknownArgument => {
            let written = string(error, ContextKind::InvalidArg).unwrap_or_default();
            let flags = path.iter().flat_map(|c| c.get_arguments()).filter_map(|a| a.get_long());
            let flags: Vec<String> = flags.map(|l| format!("--{l}")).collect();
            let suggested = nearest(&written, flags.iter().map(String::as_str))
                .map(str::to_owned)
                .or_else(|| string(error, ContextKind::SuggestedArg));
            let noun = if written.starts_with('-') { "flag" } else { "argument" };
            format!("unexpected {noun} `{written}`{}", did_you_mean(suggested))
        }
        ErrorKind::InvalidSubcommand => {
            let written = string(error, ContextKind::InvalidSubcommand).unwrap_or_default();
            let suggested = match nearest(&written, here.get_subcommands().map(|c| c.get_name())) {
                Some(verb) => Some(verb.to_owned()),
                None => match error.get(ContextKind::SuggestedSubcommand) {
                    Some(ContextValue::String(s)) => Some(s.clone()),
                    Some(ContextValue::Strings(s)) => s.first().cloned(),
                    _ => None,
                },
            };
            format!("unknown command `{written}`{}", did_you_mean(suggested))
        }
        ErrorKind::InvalidValue => {
            let arg = string(error, ContextKind::InvalidArg).unwrap_or_default();
            let value = string(error, ContextKind::InvalidValue).unwrap_or_default();
            let valid = match error.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) if !v.is_empty() => {
                    format!(" (one of {})", v.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "))
                }
                _ => String::new(),
            };
            let suggested = match error.get(ContextKind::SuggestedValue) {
                Some(ContextValue::String(s)) => Some(s.clone()),
                _ => None,
            };
            if value.is_empty() {
                format!("`{arg}` needs a value{valid}")
            } else {
                format!("invalid value `{value}` for `{arg}`{valid}{}", did_you_mean(suggested))
            }
        }
        ErrorKind::ValueValidation => {
            let arg = string(error, ContextKind::InvalidArg).unwrap_or_default();
            let value = string(error, ContextKind::InvalidValue).unwrap_or_default();
            match std::error::Error::source(error) {
                Some(why) => format!("invalid value `{value}` for `{arg}`: {why}"),
                None => format!("invalid value `{value}` for `{arg}`"),
            }
        }
        ErrorKind::MissingRequiredArgument => match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(missing)) => {
                format!("missing {}", missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "))
            }
            _ => first_line(error),
        },
        ErrorKind::ArgumentConflict => {
            let arg = string(error, ContextKind::InvalidArg);
            let prior = match error.get(ContextKind::PriorArg) {
                Some(ContextValue::String(s)) => Some(s.clone()),
                Some(ContextValue::Strings(s)) => s.first().cloned(),
                _ => None,
            };
            match (arg, prior) {
                (Some(arg), Some(prior)) if arg == prior => format!("`{arg}` given more than once"),
                (Some(arg), Some(prior)) => format!("`{arg}` cannot be used with `{prior}`"),
                _ => first_line(error),
            }
        }
        _ => first_line(error),
    };
    let names: Vec<&str> = path.iter().map(|c| c.get_name()).collect();
    format!("{what} (see `{} --help`)", names.join(" "))
}

/// ``; did you mean `X`?`` when there is an `X`.
fn did_you_mean(suggested: Option<String>) -> String {
    suggested.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// A context value of the error that is one string.
fn string(error: &clap::Error, kind: ContextKind) -> Option<String> {
    match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Clap's own message, its first line, without its `error: ` prefix.
fn first_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let line = rendered.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).trim().to_owned()
}

/// The command and the subcommands `args` named, outermost first: the
/// command whose `--help` a usage error points to is the last.
fn path<'a>(command: &'a Command, args: &[OsString]) -> Vec<&'a Command> {
    let mut path = vec![command];
    let mut words = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(word) = words.next() {
        let here = *path.last().expect("the path starts with the command");
        if word == "--" {
            break;
        }
        // A flag that takes a value in the next word: skip that word.
        let flag = if let Some(long) = word.strip_prefix("--") {
            (!long.contains('=')).then(|| find_flag(&path, |a| a.get_long() == Some(long)))
        } else if let Some(short) = word.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            let short = short.chars().next();
            Some(find_flag(&path, |a| a.get_short() == short))
        } else if word.starts_with('-') && word.len() > 1 {
            None
        } else {
            match here.find_subcommand(word) {
                Some(sub) => path.push(sub),
                // A positional argument: a leaf takes it; a command with
                // verbs has met one it does not know.
                None if here.has_subcommands() => break,
                None => {}
            }
            continue;
        };
        if flag.flatten().is_some_and(|a| a.get_action().takes_values()) {
            words.next();
        }
    }
    path
}

/// The flag of the innermost command on `path` that matches.
fn find_flag<'a>(path: &[&'a Command], matches: impl Fn(&clap::Arg) -> bool) -> Option<&'a clap::Arg> {
    path.iter().rev().find_map(|c| c.get_arguments().find(|a| matches(a)))
}

/// The one word a typo away from `written`: one letter added, dropped,
/// changed or swapped with its neighbour (two in words of six or more), and
/// nearer than any other. Catches transposed letters (`rnu` → `run`), which
/// clap's own similarity misses in short words.
pub fn nearest<'a>(written: &str, words: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = if written.chars().count() >= 6 { 2 } else { 1 };
    let mut near: Vec<(usize, &str)> =
        words.map(|w| (strsim::osa_distance(written, w), w)).filter(|&(d, _)| d <= allowed).collect();
    near.sort();
    match near.as_slice() {
        [(best, word), rest @ ..] if rest.first().is_none_or(|(next, _)| next > best) => Some(word),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, CommandFactory, Subcommand};

    #[test]
    fn typos_find_their_word_and_strangers_find_none() {
        let verbs = ["run", "submit", "status", "wait", "logs", "cancel", "jobs", "nodes", "new"];
        for (written, want) in [
            ("rnu", Some("run")),
            ("rn", Some("run")),
            ("stauts", Some("status")),
            ("canlec", Some("cancel")),
            ("lgos", Some("logs")),
            ("nodse", Some("nodes")),
            ("deploy", None),
            ("x", None),
            // As near to `logs` as to `jobs`: no guess.
            ("jogs", None),
        ] {
            assert_eq!(nearest(written, verbs.into_iter()), want, "{written}");
        }
    }

    /// A tool.
    #[derive(Parser, Debug)]
    #[command(name = "tool")]
    struct Tool {
        /// Where.
        #[arg(long, global = true)]
        master: Option<String>,
        #[command(subcommand)]
        verb: Verb,
    }

    #[derive(Subcommand, Debug)]
    enum Verb {
        /// Run.
        Run(RunArgs),
        /// Admin.
        Admin {
            #[command(subcommand)]
            what: Admin,
        },
    }

    #[derive(Subcommand, Debug)]
    enum Admin {
        /// Nodes.
        Nodes,
    }

    #[derive(Args, Debug)]
    struct RunArgs {
        /// Fuel.
        #[arg(long, value_parser = crate::parse_fuel_limit)]
        fuel: Option<u64>,
        /// Verify.
        #[arg(long, value_parser = ["off", "on"])]
        verify: Option<String>,
        /// Verbose.
        #[arg(long)]
        verbose: bool,
        module: String,
    }

    fn check(args: &[&str], want: &str) {
        let mut command = Tool::command();
        let args: Vec<OsString> = std::iter::once("tool").chain(args.iter().copied()).map(Into::into).collect();
        let error = command.try_get_matches_from_mut(&args).unwrap_err();
        assert_eq!(line(&error, &command, &args), want, "{args:?}");
    }

    #[test]
    fn every_usage_error_is_one_line_that_names_the_help_to_read() {
        check(
            &["run", "--verbse", "m"],
            "unexpected flag `--verbse`; did you mean `--verbose`? (see `tool run --help`)",
        );
        check(&["run", "--bogus", "m"], "unexpected flag `--bogus` (see `tool run --help`)");
        check(&["--master", "run", "rnu"], "unknown command `rnu`; did you mean `run`? (see `tool --help`)");
        check(
            &["--master", "x", "admin", "nodse"],
            "unknown command `nodse`; did you mean `nodes`? (see `tool admin --help`)",
        );
        check(
            &["run", "--fuel", "0", "m"],
            "invalid value `0` for `--fuel <FUEL>`: `0` is no fuel: a job needs some to run, e.g. `10G` (see `tool run --help`)",
        );
        check(
            &["run", "--verify", "of", "m"],
            "invalid value `of` for `--verify <VERIFY>` (one of `off`, `on`); did you mean `off`? (see `tool run --help`)",
        );
        check(&["run"], "missing `<MODULE>` (see `tool run --help`)");
        check(&["run", "m", "--verbose", "--verbose"], "`--verbose` given more than once (see `tool run --help`)");
    }
}
