//! JSON values to build and encode: what a guest's structured result is made
//! of (see [`crate::result`]).
//!
//! Objects keep their keys in the order they were first inserted; strings are
//! escaped as JSON requires (quotes, backslashes and control characters),
//! and everything else passes through as UTF-8.
//!
//! ```
//! use guest_sdk::json::Json;
//!
//! let words = ["the", "cat"];
//! let value = Json::object()
//!     .with("input", "poem.txt")
//!     .with("words", words.len())
//!     .with("top", words.iter().map(|w| Json::object().with("word", *w).with("count", 1)).collect::<Json>())
//!     .with("ratio", 0.5)
//!     .with("note", None::<&str>);
//! assert_eq!(
//!     value.to_string(),
//!     r#"{"input":"poem.txt","words":2,"top":[{"word":"the","count":1},{"word":"cat","count":1}],"ratio":0.5,"note":null}"#
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write};

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number: an integer, or a finite float.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, its keys in insertion order.
    Object(Map),
}

/// A JSON number: a 64-bit integer or a finite `f64` (JSON has no NaN or
/// infinity, so a `Number` never holds one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(N);

#[derive(Debug, Clone, Copy, PartialEq)]
enum N {
    Int(i64),
    UInt(u64),
    Float(f64),
}

/// A JSON object: keys in the order they were first inserted, each once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(String, Json)>,
}

impl Json {
    /// An empty object, to fill with [`Json::with`] or [`Json::insert`].
    pub fn object() -> Self {
        Json::Object(Map::new())
    }

    /// An empty array, to fill with [`Json::push`].
    pub fn array() -> Self {
        Json::Array(Vec::new())
    }

    /// This object with `key` set to `value` (replacing an earlier value in
    /// its place), for building in one expression.
    ///
    /// # Panics
    ///
    /// If `self` is not an object.
    #[track_caller]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value` in this object, replacing an earlier value in
    /// its place; returns the earlier value.
    ///
    /// # Panics
    ///
    /// If `self` is not an object.
    #[track_caller]
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Json>) -> Option<Json> {
        match self {
            Json::Object(map) => map.insert(key, value),
            other => panic!("`Json::insert` on {}, not an object", other.kind()),
        }
    }

    /// Appends `value` to this array.
    ///
    /// # Panics
    ///
    /// If `self` is not an array.
    #[track_caller]
    pub fn push(&mut self, value: impl Into<Json>) {
        match self {
            Json::Array(items) => items.push(value.into()),
            other => panic!("`Json::push` on {}, not an array", other.kind()),
        }
    }

    /// The value as JSON text over several lines, indented by two spaces.
    /// (`to_string()` gives it on one line.)
    ///
    /// ```
    /// use guest_sdk::json::Json;
    ///
    /// let value = Json::object().with("ok", true).with("items", vec![1, 2]);
    /// assert_eq!(value.to_pretty_string(), "{\n  \"ok\": true,\n  \"items\": [\n    1,\n    2\n  ]\n}");
    /// ```
    pub fn to_pretty_string(&self) -> String {
        let mut out = String::new();
        let _ = self.encode(&mut out, Some(0));
        out
    }

    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Writes the value to `out`: on one line when `indent` is `None`, else
    /// pretty, nested `indent` levels deep.
    fn encode(&self, out: &mut dyn Write, indent: Option<usize>) -> fmt::Result {
        match self {
            Json::Null => out.write_str("null"),
            Json::Bool(b) => out.write_str(if *b { "true" } else { "false" }),
            Json::Number(n) => write!(out, "{n}"),
            Json::String(s) => escape(s, out),
            Json::Array(items) => {
                encode_seq(out, indent, ('[', ']'), items.iter(), |out, item, indent| item.encode(out, indent))
            }
            Json::Object(map) => {
                encode_seq(out, indent, ('{', '}'), map.entries.iter(), |out, (key, value), indent| {
                    escape(key, out)?;
                    out.write_str(if indent.is_some() { ": " } else { ":" })?;
                    value.encode(out, indent)
                })
            }
        }
    }
}

/// Writes `items` between `open` and `close`, comma-separated, each on a line
/// of its own when pretty.
fn encode_seq<T>(
    out: &mut dyn Write,
    indent: Option<usize>,
    (open, close): (char, char),
    items: impl ExactSizeIterator<Item = T>,
    mut each: impl FnMut(&mut dyn Write, T, Option<usize>) -> fmt::Result,
) -> fmt::Result {
    out.write_char(open)?;
    let empty = items.len() == 0;
    let inner = indent.map(|level| level + 1);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        newline(out, inner)?;
        each(out, item, inner)?;
    }
    if !empty {
        newline(out, indent)?;
    }
    out.write_char(close)
}

fn newline(out: &mut dyn Write, indent: Option<usize>) -> fmt::Result {
    if let Some(level) = indent {
        out.write_char('\n')?;
        for _ in 0..level {
            out.write_str("  ")?;
        }
    }
    Ok(())
}

/// Writes `s` as a JSON string: quoted, with `"`, `\` and control characters
/// escaped, and everything else as it is.
fn escape(s: &str, out: &mut dyn Write) -> fmt::Result {
    out.write_char('"')?;
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        out.write_str(&s[plain..i])?;
        if escaped.is_empty() {
            write!(out, "\\u{:04x}", c as u32)?;
        } else {
            out.write_str(escaped)?;
        }
        plain = i + c.len_utf8();
    }
    out.write_str(&s[plain..])?;
    out.write_char('"')
}

impl fmt::Display for Json {
    /// The value as compact JSON text, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.encode(f, None)
    }
}

impl Number {
    /// The number for `f`, or `None` if `f` is NaN or infinite (JSON has
    /// neither).
    pub fn from_f64(f: f64) -> Option<Self> {
        f.is_finite().then_some(Number(N::Float(f)))
    }
}

impl fmt::Display for Number {
    /// The number as JSON writes it: integers as they are, floats in the
    /// shortest form that reads back the same (`0.1`, `1.0`, `1e300`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            N::Int(i) => write!(f, "{i}"),
            N::UInt(u) => write!(f, "{u}"),
            // `Debug` is the shortest round-trip form, with an exponent for
            // very large and very small values; always valid JSON for a
            // finite float.
            N::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl Map {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing an earlier value in its place;
    /// returns the earlier value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Json>) -> Option<Json> {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }
}

impl<K: Into<String>, V: Into<Json>> FromIterator<(K, V)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k, v);
        }
        map
    }
}

impl From<Map> for Json {
    fn from(map: Map) -> Self {
        Json::Object(map)
    }
}

impl<K: Into<String>, V: Into<Json>> From<BTreeMap<K, V>> for Json {
    /// An object with the map's keys in their sorted order.
    fn from(map: BTreeMap<K, V>) -> Self {
        Json::Object(map.into_iter().collect())
    }
}

impl From<Number> for Json {
    fn from(n: Number) -> Self {
        Json::Number(n)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

macro_rules! from_integers {
    ($variant:ident as $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(n: $t) -> Self {
                Json::Number(Number(N::$variant(n as $wide)))
            }
        }
    )*};
}
from_integers!(Int as i64: i8, i16, i32, i64, isize);
from_integers!(UInt as u64: u8, u16, u32, u64, usize);

impl From<f64> for Json {
    /// A number, or `null` for NaN and the infinities, which JSON cannot
    /// write (as JavaScript's `JSON.stringify` does). Use
    /// [`Number::from_f64`] to treat them as an error instead.
    fn from(f: f64) -> Self {
        Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

impl From<f32> for Json {
    /// As for `f64`: NaN and the infinities become `null`.
    fn from(f: f32) -> Self {
        Json::from(f as f64)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::String(s)
    }
}

impl From<&String> for Json {
    fn from(s: &String) -> Self {
        Json::String(s.clone())
    }
}

impl From<char> for Json {
    fn from(c: char) -> Self {
        Json::String(c.to_string())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    /// The value, or `null` for `None`.
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(items: Vec<T>) -> Self {
        items.into_iter().collect()
    }
}

impl<T: Into<Json> + Clone> From<&[T]> for Json {
    fn from(items: &[T]) -> Self {
        items.iter().cloned().collect()
    }
}

impl<T: Into<Json>> FromIterator<T> for Json {
    /// An array of the items.
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Json::Array(items.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value encodes, compactly, to the expected text.
    #[track_caller]
    fn check(cases: &[(Json, &str)]) {
        for (value, expected) in cases {
            assert_eq!(value.to_string(), *expected, "{value:?}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        check(&[
            (Json::from(""), r#""""#),
            (Json::from("plain"), r#""plain""#),
            (Json::from(r#"say "hi""#), r#""say \"hi\"""#),
            (Json::from(r"C:\dir\file"), r#""C:\\dir\\file""#),
            (Json::from("a\nb\r\tc"), r#""a\nb\r\tc""#),
            (Json::from("\u{8}\u{c}"), r#""\b\f""#),
            (Json::from("\u{0}\u{1}\u{1f} "), r#""\u0000\u0001\u001f ""#),
            (Json::from("\u{7f}"), "\"\u{7f}\""),
            (Json::from("naïve café, 日本語, 🦀"), r#""naïve café, 日本語, 🦀""#),
            (Json::from("/slash/"), r#""/slash/""#),
            (Json::from('"'), r#""\"""#),
        ]);
    }

    #[test]
    fn keys_are_escaped_too() {
        check(&[(Json::object().with("a\"b\n", 1), r#"{"a\"b\n":1}"#)]);
    }

    #[test]
    fn numbers() {
        check(&[
            (Json::from(0), "0"),
            (Json::from(-7i8), "-7"),
            (Json::from(i64::MIN), "-9223372036854775808"),
            (Json::from(u64::MAX), "18446744073709551615"),
            (Json::from(3usize), "3"),
            (Json::from(0.5), "0.5"),
            (Json::from(0.1), "0.1"),
            (Json::from(1.0), "1.0"),
            (Json::from(-0.0), "-0.0"),
            (Json::from(1e300), "1e300"),
            (Json::from(-2.5e-8), "-2.5e-8"),
            (Json::from(1.5f32), "1.5"),
            (Json::from(f64::NAN), "null"),
            (Json::from(f64::INFINITY), "null"),
            (Json::from(f32::NEG_INFINITY), "null"),
        ]);
        assert_eq!(Number::from_f64(f64::NAN), None);
        assert_eq!(Number::from_f64(f64::NEG_INFINITY), None);
    }

    #[test]
    fn every_finite_float_reads_back_the_same() {
        for x in [0.1, 1.0 / 3.0, 123456789.125, 1e21, 1e-7, f64::MAX, f64::MIN_POSITIVE, 5e-324] {
            let text = Json::from(x).to_string();
            assert!(text.bytes().all(|b| b.is_ascii_digit() || b"-.e".contains(&b)), "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
        }
    }

    #[test]
    fn literals_and_nesting() {
        check(&[
            (Json::Null, "null"),
            (Json::from(true), "true"),
            (Json::from(false), "false"),
            (Json::from(None::<u8>), "null"),
            (Json::from(Some("x")), r#""x""#),
            (Json::array(), "[]"),
            (Json::object(), "{}"),
            (Json::from(vec![1, 2, 3]), "[1,2,3]"),
            (Json::from(&["a", "b"][..]), r#"["a","b"]"#),
            (vec![Json::array(), Json::from(vec![Json::object()])].into_iter().collect(), "[[],[{}]]"),
            (
                Json::object().with("list", vec![Json::Null, true.into()]).with("inner", Json::object().with("k", "v")),
                r#"{"list":[null,true],"inner":{"k":"v"}}"#,
            ),
        ]);
    }

    #[test]
    fn objects_keep_insertion_order_and_keys_stay_unique() {
        let mut value = Json::object().with("zebra", 1).with("apple", 2).with("mango", 3);
        assert_eq!(value.insert("apple", "replaced"), Some(Json::from(2)));
        check(&[(value, r#"{"zebra":1,"apple":"replaced","mango":3}"#)]);
        let sorted: BTreeMap<&str, u32> = [("b", 2), ("a", 1)].into_iter().collect();
        check(&[(Json::from(sorted), r#"{"a":1,"b":2}"#)]);
        let pairs: Map = [("x", 1), ("y", 2), ("x", 3)].into_iter().collect();
        check(&[(pairs.into(), r#"{"x":3,"y":2}"#)]);
    }

    #[test]
    fn push_appends_to_an_array() {
        let mut list = Json::array();
        list.push(1);
        list.push("two");
        list.push(Json::object());
        check(&[(list, r#"[1,"two",{}]"#)]);
    }

    #[test]
    #[should_panic(expected = "`Json::insert` on an array, not an object")]
    fn with_on_a_non_object_panics() {
        let _ = Json::array().with("k", 1);
    }

    #[test]
    fn pretty() {
        let value = Json::object()
            .with("name", "x")
            .with("empty", Json::array())
            .with("none", Json::object())
            .with("nested", Json::object().with("list", vec![1, 2]));
        let expected = "{\n  \"name\": \"x\",\n  \"empty\": [],\n  \"none\": {},\n  \"nested\": {\n    \"list\": [\n      1,\n      2\n    ]\n  }\n}";
        assert_eq!(value.to_pretty_string(), expected);
        assert_eq!(Json::from("a").to_pretty_string(), r#""a""#);
    }
}
