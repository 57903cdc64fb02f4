//! How jobs are shown in listings: pages of bounded size, and the values
//! one user chose (args, tenant) or a node sent (its name) cut so that no
//! single job can make a listing's answer large.

use crate::model::{JobSummary, StoredJob};

/// Jobs a listing returns when the caller asks for none in particular.
pub const PAGE_DEFAULT: usize = 100;
/// The most jobs one page of a listing returns.
pub const PAGE_MAX: usize = 1000;
/// A listed job's args, in bytes, all of them together.
pub const ARGS_LISTED: usize = 1024;
/// A listed tenant or node name, in chars.
pub const NAME_LISTED: usize = 128;

/// What ends a cut value.
const ELLIPSIS: char = '…';

/// The page size for a requested `limit` (0 for the default).
pub fn page_size(limit: u32) -> usize {
    if limit == 0 { PAGE_DEFAULT } else { (limit as usize).min(PAGE_MAX) }
}

/// `s` cut to at most `max` chars, the last of them `…` when it was cut.
pub fn cut_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s,
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
            let mut cut = s;
            cut.truncate(end);
            cut.push(ELLIPSIS);
            cut
        }
    }
}

/// `s` cut to at most `max` bytes on a char boundary, ending in `…` when
/// it was cut.
fn cut_bytes(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub(ELLIPSIS.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    if s.len() + ELLIPSIS.len_utf8() <= max {
        s.push(ELLIPSIS);
    }
    s
}

/// Args cut to [`ARGS_LISTED`] bytes in all: whole args while they fit,
/// then one cut arg ending in `…`, then none.
pub fn args(args: Vec<String>) -> Vec<String> {
    let mut left = ARGS_LISTED;
    let mut kept = Vec::new();
    for arg in args {
        if arg.len() <= left {
            left -= arg.len();
            kept.push(arg);
        } else {
            if left > 0 {
                kept.push(cut_bytes(arg, left));
            }
            break;
        }
    }
    kept
}

/// A job as a listing shows it: args, tenant and node name cut.
pub fn summary(mut j: JobSummary) -> JobSummary {
    j.args = args(std::mem::take(&mut j.args));
    j.tenant = cut_chars(std::mem::take(&mut j.tenant), NAME_LISTED);
    j.node = cut_chars(std::mem::take(&mut j.node), NAME_LISTED);
    if let Some(r) = &mut j.result {
        r.node = cut_chars(std::mem::take(&mut r.node), NAME_LISTED);
    }
    j
}

/// A recorded job as a listing reads it: args, tenant and node name cut,
/// and no stdin, env or directories.
pub fn stored(mut j: StoredJob) -> StoredJob {
    j.spec.args = args(std::mem::take(&mut j.spec.args));
    j.spec.stdin = Vec::new();
    j.spec.env = Vec::new();
    j.spec.dirs = Vec::new();
    j.tenant = cut_chars(std::mem::take(&mut j.tenant), NAME_LISTED);
    j.node = cut_chars(std::mem::take(&mut j.node), NAME_LISTED);
    if let Some(r) = &mut j.result {
        r.node = cut_chars(std::mem::take(&mut r.node), NAME_LISTED);
        r.dirs = Vec::new();
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_to_a_number_of_chars_on_a_char_boundary() {
        assert_eq!(cut_chars("alice".into(), 128), "alice");
        assert_eq!(cut_chars("abcdef".into(), 4), "abc…");
        let long = "é".repeat(70_000);
        let cut = cut_chars(long, NAME_LISTED);
        assert_eq!(cut.chars().count(), NAME_LISTED);
        assert!(cut.ends_with('…'));
        assert_eq!(cut_chars("x".repeat(128), 128), "x".repeat(128));
    }

    #[test]
    fn args_are_kept_whole_while_they_fit_then_one_is_cut() {
        let small = vec!["a".to_owned(), "bb".to_owned()];
        assert_eq!(args(small.clone()), small);

        let got = args(vec!["x".repeat(1000), "y".repeat(300_000_000 / 1000), "z".into()]);
        assert_eq!(got.len(), 2, "nothing after the cut arg");
        assert_eq!(got[0], "x".repeat(1000));
        assert!(got[1].starts_with('y') && got[1].ends_with('…'), "{:?}", got[1]);
        assert!(got.iter().map(String::len).sum::<usize>() <= ARGS_LISTED);

        // Multi-byte chars are never split.
        let got = args(vec!["ü".repeat(5000)]);
        assert!(got[0].len() <= ARGS_LISTED && got[0].ends_with('…'));
        assert!(got[0].trim_end_matches('…').chars().all(|c| c == 'ü'));

        // Args that fill the budget exactly are whole; the next is dropped.
        let got = args(vec!["a".repeat(ARGS_LISTED), "b".into()]);
        assert_eq!(got, vec!["a".repeat(ARGS_LISTED)]);
    }

    #[test]
    fn page_sizes_default_to_100_and_stop_at_1000() {
        assert_eq!(page_size(0), 100);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), 1000);
    }
}
