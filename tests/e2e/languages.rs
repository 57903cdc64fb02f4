//! The same word-frequency counter in Rust, C, AssemblyScript, hand-written
//! WAT, and as WASI preview 2 components in Rust and Python, run through
//! the grid: every one prints exactly what a
//! plain Rust reference computes here, hence the same bytes as the others.

use grid_tests::{GridSandbox, example, example_file, guest_wasm, wasip2_example};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every word counter, by language.
fn word_counters() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("rust", example("wordfreq")),
        ("c", guest_wasm("wordfreq-c")),
        ("assemblyscript", guest_wasm("wordfreq-as")),
        ("wat", example_file("wat/wordfreq.wat")),
        ("rust component", wasip2_example("wordfreq-p2")),
        ("python component", guest_wasm("wordfreq-py")),
    ]
}

/// The contract, computed independently: words are maximal runs of ASCII
/// letters, folded to lowercase; the ten most frequent, by count descending
/// and then word ascending, as `<count> <word>` lines.
fn reference(input: &[u8]) -> String {
    let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut word = Vec::new();
    for &b in input.iter().chain([b' '].iter()) {
        if b.is_ascii_alphabetic() {
            word.push(b.to_ascii_lowercase());
        } else if !word.is_empty() {
            *counts.entry(std::mem::take(&mut word)).or_default() += 1;
        }
    }
    let mut ranked: Vec<(Vec<u8>, usize)> = counts.into_iter().collect();
    // Stable, and the map already yields words in ascending byte order.
    ranked.sort_by_key(|(_, n)| Reverse(*n));
    ranked.iter().take(10).map(|(w, n)| format!("{n} {}\n", String::from_utf8(w.clone()).unwrap())).collect()
}

/// Mixed case, punctuation, digits inside words, UTF-8 and stray non-ASCII
/// bytes, ties, and more than ten distinct words.
const PROSE: &[u8] = b"The quick brown fox jumps over the lazy dog. THE DOG barks; the Fox runs!\n\
    Dog-days, dog2dog, x1y2z3 and caf\xc3\xa9 au lait: \xff\xfeover and over again...\n\
    It's 42 o'clock, it's LATE, late, Late.\tZebra\r\nzebra";

/// About 200 KiB: forty words in random order, case and separators, with
/// counts tied in fours (so ties straddle the tenth line). More than any
/// guest reads in one call.
fn generated() -> Vec<u8> {
    const WORDS: [&str; 40] = [
        "zulu", "alpha", "mike", "bravo", "yankee", "charlie", "lima", "delta", "xray", "echo", "kilo", "foxtrot",
        "whiskey", "golf", "juliett", "hotel", "victor", "india", "uniform", "tango", "sierra", "romeo", "quebec",
        "papa", "oscar", "november", "grid", "node", "master", "wasm", "fuel", "memory", "job", "queue", "a", "b",
        "zeta", "gridlock", "nodes", "jobs",
    ];
    const SEPARATORS: [&[u8]; 8] = [b" ", b"\n", b", ", b"7", b"\xe2\x80\x94", b"_", b"'", b"\t\t"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut words: Vec<&str> = (0..WORDS.len()).flat_map(|i| vec![WORDS[i]; 600 + 40 * (i / 4)]).collect();
    for i in (1..words.len()).rev() {
        words.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut out = Vec::new();
    for word in words {
        let r = next();
        for (i, b) in word.bytes().enumerate() {
            out.push(if (r >> (8 + i)) & 1 == 1 { b.to_ascii_uppercase() } else { b });
        }
        out.extend_from_slice(SEPARATORS[((r >> 40) % SEPARATORS.len() as u64) as usize]);
    }
    out
}

/// Runs `guest` with `input` on stdin and asserts it printed `expected`,
/// nothing else, and exited 0.
#[track_caller]
fn check(grid: &GridSandbox, (lang, guest): &(&str, PathBuf), (case, input): (&str, &[u8]), expected: &str) {
    let run = grid.run_with_stdin(&["run", guest.to_str().unwrap()], input);
    assert_eq!(run.code, Some(0), "{lang}, {case}: {run:#?}");
    assert_eq!(run.stderr, "", "{lang}, {case}: {run:#?}");
    assert_eq!(run.stdout, expected, "{lang}, {case}: differs from the reference");
}

#[test]
fn the_reference_keeps_the_contract() {
    // Counted by hand: `dog2dog` is two words, `caf\xc3\xa9` is `caf`, and
    // ties go to the word first in byte order.
    let expected = "5 dog\n4 the\n3 late\n3 over\n2 and\n2 fox\n2 it\n2 s\n2 zebra\n1 again\n";
    assert_eq!(reference(PROSE), expected);
    // The last four of `WORDS` tie at the top; of the third four from the
    // end, the two first in byte order make the cut.
    let top = "960 gridlock\n960 jobs\n960 nodes\n960 zeta\n920 a\n920 b\n920 job\n920 queue\n880 fuel\n880 master\n";
    assert_eq!(reference(&generated()), top);
    assert!(generated().len() > 128 * 1024);
    assert_eq!(reference(b""), "");
    assert_eq!(reference(b"42 -- \xff"), "");
}

#[test]
fn every_language_prints_the_same_word_frequencies() {
    let grid = GridSandbox::start(1);
    let generated = generated();
    let inputs: [(&str, &[u8]); 5] = [
        ("prose", PROSE),
        ("generated", &generated),
        ("one word, no newline", b"Zebra"),
        ("no words", b"42 + 7 = 49!\n\xc3\xa9\n"),
        ("empty", b""),
    ];
    for counter in word_counters() {
        for (case, input) in inputs {
            check(&grid, &counter, (case, input), &reference(input));
        }
    }
}
