//! Servo-map errors, of parsing and of every check after it, name the file, line, column and key
//! (`FILE:LINE:COL: KEY: message`).

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

/// Loads `text` from a file and asserts the error starts with `FILE:LINE:COL: ` followed by
/// `key_message`, LINE being that of the last line equal to `at_line`.
fn assert_invalid(text: &str, at_line: &str, column: usize, key_message: &str) {
    let (file, err) = load_error(text);
    let line = text.lines().enumerate().filter(|(_, l)| *l == at_line).last().expect("edited line").0 + 1;
    let expected = format!("{file}:{line}:{column}: {key_message}");
    assert!(err.starts_with(&expected), "expected {expected}\n     got {err}");
}

#[test]
fn servo_map_duplicate_id_names_where_it_repeats() {
    let text = WIDOWX250_TOML.replace("shadow_id = 5", "shadow_id = 3");
    let message = "joints[2].shadow_id: servo ID 3 is used twice (also joints[1].shadow_id)";
    assert_invalid(&text, "shadow_id = 3", 1, message);
    let text = WIDOWX250_TOML.replace("id = 9", "id = 253");
    assert_invalid(&text, "id = 253", 1, "gripper.id: servo ID 253 is out of range (0–252)");
}

#[test]
fn servo_map_unordered_joint_limits_name_max_rad() {
    let text = WIDOWX250_TOML.replace("max_rad = 1.606", "max_rad = -2.147");
    assert_invalid(&text, "max_rad = -2.147", 1, "joints[2].max_rad: -2.147 rad must be above min_rad -2.147 rad");
    let text = WIDOWX250_TOML.replace("min_rad = -1.745", "min_rad = -3.5");
    assert_invalid(&text, "min_rad = -3.5", 1, "joints[4].min_rad: -3.5 rad must be within ±π");
}

#[test]
fn servo_map_joint_limits_on_one_tick_are_refused() {
    // -2.147 and -2.1469 rad are ordered but both round to tick 648: the servo's
    // Min_Position_Limit would not be below its Max_Position_Limit.
    let text = WIDOWX250_TOML.replace("max_rad = 1.606", "max_rad = -2.1469");
    let message = "joints[2].max_rad: -2.1469 rad is the same tick as min_rad -2.147 rad \
                   (Min_Position_Limit 648, Max_Position_Limit 648)";
    assert_invalid(&text, "max_rad = -2.1469", 1, message);
}

#[test]
fn servo_map_register_values_outside_their_range_name_the_entry() {
    let text = WIDOWX250_TOML.replacen("max_rad = 1.990", "max_rad = 1.990\nhoming_offset_ticks = 1044480", 1);
    let message = "joints[1].homing_offset_ticks: servo 2 (shoulder): Homing_Offset = 1044480: \
                   outside its documented range -1044479…1044479";
    assert_invalid(&text, "homing_offset_ticks = 1044480", 1, message);
    let text = WIDOWX250_TOML.replace("force_limit = 350", "force_limit = 886");
    let message = "gripper.force_limit: servo 9 (gripper): PWM_Limit = 886: outside its documented range 0…885";
    assert_invalid(&text, "force_limit = 886", 1, message);
}

#[test]
fn servo_map_gripper_open_equal_to_closed_names_open_rad() {
    let text = WIDOWX250_TOML.replace("open_rad = 0.85", "open_rad = -0.60");
    let message = "gripper.open_rad: -0.6 rad must differ from closed_rad -0.6 rad by at least a tick";
    assert_invalid(&text, "open_rad = -0.60", 1, message);
}

#[test]
fn servo_map_models_and_modes_name_their_key() {
    let text = WIDOWX250_TOML.replacen("model = \"XM430-W350\"", "model = \"XM999\"", 1);
    assert_invalid(&text, "model = \"XM999\"", 1, "joints[0].model: unknown servo model XM999");
    let text = WIDOWX250_TOML.replace("mode = \"pwm\"", "mode = \"current_position\"");
    let message = "gripper.mode: the XL430-W250 does not support CurrentPosition mode";
    assert_invalid(&text, "mode = \"current_position\"", 1, message);
}

#[test]
fn servo_map_joint_count_velocity_and_baud_name_their_key() {
    let wrist_rotate = "[[joints]]\nname = \"wrist_rotate\"\nid = 8\nmodel = \"XL430-W250\"\n\
                        min_rad = -3.14158\nmax_rad = 3.14158\n";
    assert!(WIDOWX250_TOML.contains(wrist_rotate), "the built-in map lists wrist_rotate");
    let text = WIDOWX250_TOML.replace(wrist_rotate, "");
    let (file, err) = load_error(&text);
    // The key of the first `[[joints]]` header.
    let line = text.lines().position(|l| l == "[[joints]]").expect("joints") + 1;
    let expected = format!("{file}:{line}:3: joints: 5 joints listed, the arm has 6");
    assert!(err.starts_with(&expected), "expected {expected}\n     got {err}");
    let text = WIDOWX250_TOML.replacen("max_rad = 3.14158", "max_rad = 3.14158\nmax_velocity_rad_s = 0.0", 1);
    assert_invalid(&text, "max_velocity_rad_s = 0.0", 1, "joints[0].max_velocity_rad_s: 0 must be positive");
    let text = WIDOWX250_TOML.replace("baud = 1000000", "baud = 0");
    assert_invalid(&text, "baud = 0", 1, "baud: must be positive");
}
