//! Listings as plain-text tables, for `jobs` and `nodes`. A cell is cut to
//! [`CELL_MAX`] chars, so that no name or arg, however long, makes a table
//! unreadable (`--json` prints values whole).

/// The most chars a cell shows; a longer value is cut and ends in `…`.
pub const CELL_MAX: usize = 48;

/// A value as a cell shows it: control chars (newlines, escapes) replaced,
/// and cut to [`CELL_MAX`] chars on a char boundary.
pub fn cell(value: &str) -> String {
    let shown = |c: char| if c.is_control() { '\u{fffd}' } else { c };
    if value.chars().nth(CELL_MAX).is_none() {
        return value.chars().map(shown).collect();
    }
    let mut cut: String = value.chars().take(CELL_MAX - 1).map(shown).collect();
    cut.push('…');
    cut
}

/// Rows under a header, each column as wide as its widest cell, each cell
/// cut with [`cell`]; one line per row.
pub fn render<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(cell);
    let rows: Vec<[String; N]> = rows.iter().map(|row| row.each_ref().map(|c| cell(c))).collect();
    let mut widths = header.each_ref().map(|c| c.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints [`render`]'s table on stdout.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().write_all(render(header, rows).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_cells_are_whole_and_columns_line_up() {
        let table = render(&["ID", "NAME"], &[["1".into(), "alice".into()], ["22".into(), "bob".into()]]);
        assert_eq!(table, "ID  NAME\n1   alice\n22  bob\n");
    }

    #[test]
    fn a_70000_char_cell_is_cut_without_panicking() {
        let long = "n".repeat(70_000);
        let table = render(&["NAME", "SLOTS"], &[[long, "1/2".into()]]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with(&format!("{}…  1/2", "n".repeat(CELL_MAX - 1))), "{row}");
        assert!(table.lines().all(|l| l.chars().count() <= CELL_MAX + 2 + 5));
    }

    #[test]
    fn multi_byte_cells_are_cut_on_char_boundaries_and_padded_by_chars() {
        for value in ["é".repeat(70_000), "日本語".repeat(1000), "🦀".repeat(49)] {
            let c = cell(&value);
            assert_eq!(c.chars().count(), CELL_MAX, "{value:.10}");
            assert!(c.ends_with('…'));
        }
        assert_eq!(cell(&"🦀".repeat(48)), "🦀".repeat(48));
        let table = render(&["A", "B"], &[["é".into(), "x".into()], ["ab".into(), "y".into()]]);
        assert_eq!(table, "A   B\né   x\nab  y\n");
    }

    #[test]
    fn control_chars_cannot_break_a_line() {
        assert_eq!(cell("a\nb\x1b[31m"), "a\u{fffd}b\u{fffd}[31m");
    }
}
