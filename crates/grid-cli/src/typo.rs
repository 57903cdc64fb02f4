//! A mistyped verb gets the nearest one as clap's suggestion, transposed
//! letters included (`rnu` → `run`), which clap's own similarity misses in
//! short words.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Adds a suggestion to clap's "unrecognized subcommand" error when clap
/// found none and one verb is a typo away from what was written.
pub fn suggest(mut error: clap::Error, verbs: &clap::Command) -> clap::Error {
    if error.kind() != ErrorKind::InvalidSubcommand || error.get(ContextKind::SuggestedSubcommand).is_some() {
        return error;
    }
    let Some(ContextValue::String(written)) = error.get(ContextKind::InvalidSubcommand) else {
        return error;
    };
    if let Some(verb) = nearest(written, verbs.get_subcommands().map(|c| c.get_name())) {
        error.insert(ContextKind::SuggestedSubcommand, ContextValue::String(verb.to_owned()));
    }
    error
}

/// The one verb a typo away from `written`: one letter added, dropped,
/// changed or swapped with its neighbour (two in words of six or more).
fn nearest<'a>(written: &str, verbs: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = if written.chars().count() >= 6 { 2 } else { 1 };
    let mut near: Vec<(usize, &str)> =
        verbs.map(|v| (strsim::osa_distance(written, v), v)).filter(|&(d, _)| d <= allowed).collect();
    near.sort();
    match near.as_slice() {
        [(best, verb), rest @ ..] if rest.first().is_none_or(|(next, _)| next > best) => Some(verb),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_verb_and_strangers_find_none() {
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
}
