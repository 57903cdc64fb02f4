//! Text from strangers, cut to a length a log line or a table can hold.

/// `s` cut to at most `max` characters; a cut string ends in `…` (which
/// counts as one of the `max`). Never splits a character.
pub fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => s.into(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end]).into()
        }
    }
}

/// Like [`cut`], in place, for an owned string.
pub fn cut_owned(s: &mut String, max: usize) {
    if let std::borrow::Cow::Owned(cut) = cut(s, max) {
        *s = cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched_and_long_text_ends_in_an_ellipsis() {
        assert_eq!(cut("node-a", 64), "node-a");
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdefg", 6), "abcde…");
        assert_eq!(cut(&"x".repeat(70_000), 64).chars().count(), 64);
        // Multi-byte characters are never split.
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("日本語のテキスト", 4), "日本語…");
        let mut s = "a".repeat(300);
        cut_owned(&mut s, 256);
        assert_eq!(s.chars().count(), 256);
        assert!(s.ends_with('…'));
    }
}
