//! The key spans of a TOML config document (scene files, launch files, servo maps), so that their
//! parse errors and semantic checks are located as `FILE:LINE:COL: KEY: message`.

use super::{child_path, ConfigEntry, ConfigError, ConfigSource, ConfigValue};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `text` (named `file` in errors) with every key and array element and their spans. A document
/// with syntax errors still gives the entries before and around them.
pub fn toml_source<'a>(file: &'a str, text: &'a str) -> ConfigSource<'a> {
    let (document, _syntax_errors) = DeTable::parse_recoverable(text);
    let mut entries = Vec::new();
    add_table("", document.get_ref(), &mut entries);
    ConfigSource::new(file, text, entries)
}

/// A `toml` parse or deserialisation error as a located [`ConfigError`].
pub fn toml_error(file: &str, text: &str, error: &toml::de::Error) -> ConfigError {
    toml_source(file, text).error_at_span(error.span(), error.message())
}

fn add_table(path: &str, table: &DeTable<'_>, entries: &mut Vec<ConfigEntry>) {
    for (key, value) in table.iter() {
        add_value(child_path(path, key.get_ref()), Some(key.span()), value, entries);
    }
}

fn add_value(
    path: String,
    key_span: Option<std::ops::Range<usize>>,
    value: &Spanned<DeValue<'_>>,
    entries: &mut Vec<ConfigEntry>,
) {
    let held = match value.get_ref() {
        DeValue::String(s) => ConfigValue::Text(s.to_string()),
        DeValue::Integer(i) => {
            i128::from_str_radix(i.as_str(), i.radix()).map_or(ConfigValue::Other, ConfigValue::Integer)
        }
        DeValue::Float(f) => f.as_str().parse().map_or(ConfigValue::Other, ConfigValue::Float),
        DeValue::Boolean(b) => ConfigValue::Bool(*b),
        DeValue::Datetime(_) => ConfigValue::Other,
        DeValue::Table(_) => ConfigValue::Table,
        DeValue::Array(_) => ConfigValue::Array,
    };
    entries.push(ConfigEntry { path: path.clone(), key_span, value_span: value.span(), value: held });
    match value.get_ref() {
        DeValue::Table(table) => add_table(&path, table, entries),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                add_value(format!("{path}[{i}]"), None, item, entries);
            }
        }
        _ => {}
    }
}
