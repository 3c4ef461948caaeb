//! Where a configuration error is: every config file the project reads (launch files, scene
//! files, servo maps) reports an error as `FILE:LINE:COL: KEY: message`.
//!
//! A reader parses its document once more into a list of [`ConfigEntry`]s (every key and array
//! element with its source spans) and builds a [`ConfigSource`] ([`toml_source`] does this for
//! TOML, the format of every config file today); that turns a deserialiser's error span and message, or a key path named by a
//! semantic check, into a [`ConfigError`]. It lives in `bus` because that is the lowest crate
//! every config reader depends on.
//!
//! Key paths are written as in the file: table keys joined by `.`, array elements as `[i]`
//! (from 0), e.g. `node[1].rate_hz` or `object[0].x_m`.

use std::ops::Range;

mod toml_document;

pub use toml_document::{toml_error, toml_source};

use serde::de::Unexpected;

/// A configuration error with its place in the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {key}: {message}")]
pub struct ConfigError {
    /// The file (a path, or a name such as `builtin:pick_cube`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Key path of the offending entry (`node[1].rate_hz`); `(document)` when no key applies.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// What a [`ConfigEntry`] holds (scalars keep their value, to match a deserialiser's message).
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// A table.
    Table,
    /// An array.
    Array,
    /// A string.
    Text(String),
    /// An integer.
    Integer(i128),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Anything else (a date, a value that did not parse).
    Other,
}

/// One key or array element of a config document.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEntry {
    /// Key path (`node[1].rate_hz`).
    pub path: String,
    /// Byte range of the key in the text; `None` for array elements.
    pub key_span: Option<Range<usize>>,
    /// Byte range of the value (for a `[table]` or `[[array]]` element: its header).
    pub value_span: Range<usize>,
    /// The value.
    pub value: ConfigValue,
}

/// The key path of `name` inside the table at `parent` (`""` for the document root).
pub fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// 1-based (line, column) of a byte offset; the column counts characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// A config document: its name, text and entries.
#[derive(Clone, Debug)]
pub struct ConfigSource<'a> {
    file: &'a str,
    text: &'a str,
    entries: Vec<ConfigEntry>,
}

impl<'a> ConfigSource<'a> {
    /// A document named `file` with `text`, whose entries are `entries` (any order).
    pub fn new(file: &'a str, text: &'a str, mut entries: Vec<ConfigEntry>) -> Self {
        entries.sort_by_key(|e| (e.key_span.as_ref().map_or(e.value_span.start, |k| k.start), e.path.len()));
        Self { file, text, entries }
    }

    /// The entry at `path`, if the document has it.
    pub fn entry(&self, path: &str) -> Option<&ConfigEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// An error about the value at `path`, found by a check after deserialisation: it points at
    /// the key (or, for an array element, the element). A path the document lacks (a default
    /// was used) points at its nearest ancestor that is there, else at the top of the file.
    pub fn error_at_key(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let mut ancestor = path;
        let offset = loop {
            if let Some(e) = self.entry(ancestor) {
                break e.key_span.as_ref().map_or(e.value_span.start, |k| k.start);
            }
            match ancestor.rfind(['.', '[']) {
                Some(cut) => ancestor = &ancestor[..cut],
                None => break 0,
            }
        };
        self.error(offset, path, message.into())
    }

    /// An error of the parser or deserialiser: `span` is where it says the error is, `message`
    /// what it says. The key is the innermost entry at the span. When the span covers a whole
    /// table (a deserialiser that buffered the table, like serde's for a `tag = "kind"` enum,
    /// loses the inner spans), the entry is found from the message: the field it names, or the
    /// value it quotes (`invalid type: string "ten"`).
    pub fn error_at_span(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
        let message = message.trim();
        let Some(span) = span else {
            return self.refine("", 0, message);
        };
        // A table's own span (the document's is empty at 0): refine within it.
        if let Some(table) = self
            .entries
            .iter()
            .filter(|e| matches!(e.value, ConfigValue::Table | ConfigValue::Array) && e.value_span == span)
            // An array of tables shares its span with its first table, but the error may be in any.
            .min_by_key(|e| e.path.len())
        {
            return self.refine(&table.path, span.start, message);
        }
        if span.is_empty() && span.start == 0 {
            return self.refine("", 0, message);
        }
        let contains = |r: &Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
        let innermost = self
            .entries
            .iter()
            .filter_map(|e| {
                let at = [Some(&e.value_span), e.key_span.as_ref()].into_iter().flatten().find(|r| contains(r))?;
                Some((at.len(), e))
            })
            .min_by_key(|(len, e)| (*len, usize::MAX - e.path.len()));
        match innermost {
            Some((_, e)) => self.error(span.start, &e.path, message.to_string()),
            // Between entries (a syntax error): the last key before it.
            None => {
                let before = self.entries.iter().rev().find(|e| e.value_span.start <= span.start);
                self.error(span.start, before.map_or("", |e| e.path.as_str()), message.to_string())
            }
        }
    }

    /// Locates an error about the table at `table` (path; `""` for the root) from its message.
    fn refine(&self, table: &str, table_offset: usize, message: &str) -> ConfigError {
        let inside = |e: &&ConfigEntry| {
            table.is_empty()
                || e.path.strip_prefix(table).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        if let Some(field) = quoted_after(message, "missing field `") {
            // In an array of tables: the first table that lacks the field.
            let lacking = self.entries.iter().filter(|e| e.value == ConfigValue::Table).find(|e| {
                e.path.strip_prefix(table).is_some_and(|i| i.starts_with('[') && i.ends_with(']') && !i.contains('.'))
                    && self.entry(&child_path(&e.path, field)).is_none()
            });
            return match lacking {
                Some(e) => self.error(e.value_span.start, &child_path(&e.path, field), message.to_string()),
                None => self.error(table_offset, &child_path(table, field), message.to_string()),
            };
        }
        for prefix in ["unknown field `", "duplicate field `"] {
            if let Some(field) = quoted_after(message, prefix) {
                // The field of this table, or of a table inside it (a buffered array of tables).
                let named = |e: &&ConfigEntry| e.path.rsplit(['.', ']']).next() == Some(field);
                if let Some(e) = self.entries.iter().filter(inside).find(named) {
                    let offset = e.key_span.as_ref().map_or(e.value_span.start, |k| k.start);
                    return self.error(offset, &e.path, message.to_string());
                }
            }
        }
        let quoted = ["invalid type: ", "invalid value: "]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.rsplit_once(", expected").map(|(unexpected, _)| unexpected.to_string()))
            .or_else(|| quoted_after(message, "unknown variant `").map(|v| Unexpected::Str(v).to_string()));
        if let Some(quoted) = quoted {
            if let Some(e) = self.entries.iter().filter(inside).find(|e| unexpected(&e.value) == quoted) {
                return self.error(e.value_span.start, &e.path, message.to_string());
            }
        }
        self.error(table_offset, table, message.to_string())
    }

    fn error(&self, offset: usize, key: &str, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        let key = if key.is_empty() { "(document)".to_string() } else { key.to_string() };
        ConfigError { file: self.file.to_string(), line, column, key, message }
    }
}

/// The text between `prefix` and the next backquote in `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    message[start..].split('`').next()
}

/// How serde's error messages show a value (`string "ten"`, `integer `5``, …).
fn unexpected(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Text(s) => Unexpected::Str(s).to_string(),
        ConfigValue::Integer(i) => match i64::try_from(*i) {
            Ok(i) => Unexpected::Signed(i).to_string(),
            Err(_) => format!("integer `{i}`"),
        },
        ConfigValue::Float(f) => Unexpected::Float(*f).to_string(),
        ConfigValue::Bool(b) => Unexpected::Bool(*b).to_string(),
        ConfigValue::Table => Unexpected::Map.to_string(),
        ConfigValue::Array => Unexpected::Seq.to_string(),
        ConfigValue::Other => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a = 1` / `[t]` / `x = "ten"` / `[[n]]` / `k = true`, with spans written out.
    fn source() -> ConfigSource<'static> {
        let text = "a = 1\n[t]\nx = \"ten\"\n[[n]]\nk = true\n";
        let entry = |path: &str, key: Option<Range<usize>>, value: Range<usize>, v: ConfigValue| ConfigEntry {
            path: path.into(),
            key_span: key,
            value_span: value,
            value: v,
        };
        let entries = vec![
            entry("a", Some(0..1), 4..5, ConfigValue::Integer(1)),
            entry("t", Some(7..8), 6..9, ConfigValue::Table),
            entry("t.x", Some(10..11), 14..19, ConfigValue::Text("ten".into())),
            entry("n", Some(22..23), 20..25, ConfigValue::Array),
            entry("n[0]", None, 20..25, ConfigValue::Table),
            entry("n[0].k", Some(26..27), 30..34, ConfigValue::Bool(true)),
        ];
        ConfigSource::new("f.toml", text, entries)
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é = 1", 3), (1, 3));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn a_precise_span_names_the_innermost_key() {
        let e = source().error_at_span(Some(14..19), "invalid type: string \"ten\", expected f64");
        assert_eq!(e.to_string(), "f.toml:3:5: t.x: invalid type: string \"ten\", expected f64");
    }

    #[test]
    fn a_span_over_a_whole_table_is_refined_from_the_message() {
        let s = source();
        let e = s.error_at_span(Some(20..25), "invalid type: boolean `true`, expected a string");
        assert_eq!((e.line, e.column, e.key.as_str()), (5, 5, "n[0].k"));
        let e = s.error_at_span(Some(20..25), "unknown field `k`, expected `j`");
        assert_eq!((e.line, e.column, e.key.as_str()), (5, 1, "n[0].k"));
        let e = s.error_at_span(Some(20..25), "missing field `j`");
        assert_eq!((e.line, e.column, e.key.as_str()), (4, 1, "n[0].j"));
        let e = s.error_at_span(Some(6..9), "missing field `y`");
        assert_eq!((e.line, e.column, e.key.as_str()), (2, 1, "t.y"));
        let e = s.error_at_span(Some(0..0), "missing field `name`");
        assert_eq!((e.line, e.column, e.key.as_str()), (1, 1, "name"));
    }

    #[test]
    fn a_checked_key_points_at_its_key_or_nearest_ancestor() {
        let s = source();
        let e = s.error_at_key("t.x", "must be a colour");
        assert_eq!(e.to_string(), "f.toml:3:1: t.x: must be a colour");
        let e = s.error_at_key("t.y", "missing");
        assert_eq!((e.line, e.column, e.key.as_str()), (2, 2, "t.y"));
        let e = s.error_at_key("z", "missing");
        assert_eq!((e.line, e.column, e.key.as_str()), (1, 1, "z"));
    }
}
