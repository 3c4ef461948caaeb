//! Servo-map parse errors name the file, line, column and key (`FILE:LINE:COL: KEY: message`).

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
