//! Counts the words on stdin and reports them as a structured result:
//! `/out/result.json` (lines, words, distinct words and the `--top N` most
//! frequent, default 3) and `/out/counts.txt` (every word), which
//! `--output-dir` brings back. With `--min-words N` it fails afterwards if the
//! input has fewer words, leaving its result behind all the same.
//!
//! `echo "a b a" | grid-cli run --output-dir results target/wasm32-wasip1/release/report.wasm -- --top 2`

use guest_sdk::prelude::*;
use guest_sdk::{args::Args, fs, input, result};
use std::collections::HashMap;

fn main() {
    run(|| {
        let args = Args::from_env();
        let top: usize = args.parse_option_or("top", 3)?;
        let min_words: u64 = args.parse_option_or("min-words", 0)?;
        let text = input::stdin_string()?;
        if text.trim().is_empty() {
            bail!("nothing on stdin: try `echo some words | grid-cli run --output-dir DIR ...`");
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
        let words: u64 = ranked.iter().map(|(_, n)| n).sum();

        let out = fs::output_dir()?;
        out.write("counts.txt", ranked.iter().map(|(w, n)| format!("{n} {w}\n")).collect::<String>())?;
        let top_words = ranked.iter().take(top).map(|(w, n)| Json::object().with("word", w).with("count", *n));
        result::write(
            &Json::object()
                .with("lines", text.lines().count())
                .with("words", words)
                .with("distinct", ranked.len())
                .with("top", top_words.collect::<Json>()),
        )?;
        println!("{words} words, {} distinct", ranked.len());
        if words < min_words {
            bail!("only {words} words, fewer than --min-words {min_words}");
        }
        Ok(())
    })
}
