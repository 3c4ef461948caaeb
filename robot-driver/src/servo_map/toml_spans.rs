//! The key spans of a servo-map TOML document, for [`bus::config_error`]. The same walk as
//! `sim::toml_spans` (this crate cannot depend on `sim`, and `bus` has no TOML parser).

use bus::config_error::{child_path, ConfigEntry, ConfigError, ConfigSource, ConfigValue};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `text` (named `file` in errors) with every key and array element and their spans. A document
/// with syntax errors still gives the entries before and around them.
pub(crate) fn toml_source<'a>(file: &'a str, text: &'a str) -> ConfigSource<'a> {
    let (document, _syntax_errors) = DeTable::parse_recoverable(text);
    let mut entries = Vec::new();
    add_table("", document.get_ref(), &mut entries);
    ConfigSource::new(file, text, entries)
}

/// A `toml` parse or deserialisation error as a located [`ConfigError`].
pub(crate) fn toml_error(file: &str, text: &str, error: &toml::de::Error) -> ConfigError {
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

#[cfg(test)]
mod tests {
    use crate::servo_map::{ServoMap, WIDOWX250_TOML};

    /// Writes `text` to a servo-map file and loads it: (the file's name, the error).
    fn load_error(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("arm.toml");
        std::fs::write(&path, text).expect("write");
        let err = ServoMap::load(Some(&path)).expect_err("invalid map").to_string();
        (path.display().to_string(), err)
    }

    #[test]
    fn servo_map_wrong_type_names_file_line_column_and_key() {
        let text = WIDOWX250_TOML.replace("min_rad = -2.147", "min_rad = \"low\"");
        let (file, err) = load_error(&text);
        let line = text.lines().position(|l| l == "min_rad = \"low\"").expect("edited line") + 1;
        let expected = format!("{file}:{line}:11: joints[2].min_rad: invalid type: string \"low\", expected f64");
        assert!(err.contains(&expected), "{err}");
    }

    #[test]
    fn servo_map_unknown_key_names_file_line_column_and_key() {
        let text = WIDOWX250_TOML.replace("mode = \"pwm\"", "mode = \"pwm\"\nforce = 3");
        let (file, err) = load_error(&text);
        let line = text.lines().position(|l| l == "force = 3").expect("edited line") + 1;
        assert!(err.contains(&format!("{file}:{line}:1: gripper.force: unknown field `force`")), "{err}");
    }
}
