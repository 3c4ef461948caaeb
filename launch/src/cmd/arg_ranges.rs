//! Range-checked value parsers for the numeric flags of every verb.
//!
//! Each parser is a clap `value_parser`: a bad value fails while the command line is parsed
//! (exit status 2) with clap's `invalid value 'V' for '--flag <FLAG>': …` followed by the
//! range, e.g. `must be > 0 Hz, got 0`. Negative numbers reach these parsers (and get the range
//! message rather than "unexpected argument") because `main` lets every flag take a value that
//! looks like a negative number.
//!
//! Floats: [`rate_hz`], [`duration_s`] and [`pause_s`] (values that become a
//! `std::time::Duration`), [`positive`] (> 0), [`non_negative`] (≥ 0), [`unit_interval`] ([0, 1]),
//! [`fraction`] ((0, 1]) and [`finite`]; every one refuses NaN and ±∞. Integers: [`at_least`]
//! and [`int_range`].

use std::fmt::Display;
use std::str::FromStr;

/// A clap value parser: the flag's text → its value, or the message clap prints.
pub trait FlagParser<T>: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {}

impl<T, F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static> FlagParser<T> for F {}

/// ` UNIT` after a number, or nothing for a unitless quantity.
fn with_unit(value: f64, unit: &'static str) -> String {
    if unit.is_empty() {
        format!("{value}")
    } else {
        format!("{value} {unit}")
    }
}

/// Parses a finite float; NaN and ±∞ are refused.
fn parse_finite(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("expected a number, got `{text}`"))?;
    if !value.is_finite() {
        return Err(format!("must be a finite number, got {}", text.trim()));
    }
    Ok(value)
}

/// A float > 0 (rates, durations, learning rates, scales), `unit` naming its unit in messages
/// (`"Hz"`, `"s"`, or `""`).
pub fn positive(unit: &'static str) -> impl FlagParser<f64> {
    move |text: &str| {
        let value = parse_finite(text)?;
        if value > 0.0 {
            Ok(value)
        } else {
            Err(format!("must be > {}, got {}", with_unit(0.0, unit), text.trim()))
        }
    }
}

/// A rate > 0 Hz whose period 1/rate is a valid duration (control, physics and publish rates).
pub fn rate_hz() -> impl FlagParser<f64> {
    |text: &str| {
        let value = positive("Hz")(text)?;
        if 1.0 / value > MAX_DURATION_S {
            return Err(format!(
                "must be > 0 Hz with a period 1/rate of at most {MAX_DURATION_S:e} s, got {}",
                text.trim()
            ));
        }
        Ok(value)
    }
}

/// The longest duration a flag may give, s (about 31 years: far beyond any run, and small
/// enough to add to an `Instant`).
const MAX_DURATION_S: f64 = 1e9;

/// `value` (parsed from `text`) if it is at most [`MAX_DURATION_S`]; `lower` is the flag's lower
/// bound, for the message.
fn at_most_max_duration(text: &str, value: f64, lower: &str) -> Result<f64, String> {
    if value > MAX_DURATION_S {
        return Err(format!("must be {lower} and at most {MAX_DURATION_S:e} s, got {}", text.trim()));
    }
    Ok(value)
}

/// A duration > 0 s (listening windows, episode lengths).
pub fn duration_s() -> impl FlagParser<f64> {
    |text: &str| at_most_max_duration(text, positive("s")(text)?, "> 0 s")
}

/// A duration ≥ 0 s (pauses).
pub fn pause_s() -> impl FlagParser<f64> {
    |text: &str| at_most_max_duration(text, non_negative("s")(text)?, "≥ 0 s")
}

/// A float ≥ 0 (weights that may be switched off).
pub fn non_negative(unit: &'static str) -> impl FlagParser<f64> {
    move |text: &str| {
        let value = parse_finite(text)?;
        if value >= 0.0 {
            Ok(value)
        } else {
            Err(format!("must be ≥ {}, got {}", with_unit(0.0, unit), text.trim()))
        }
    }
}

/// A float in [0, 1] (probabilities, noise levels, shares of a batch).
pub fn unit_interval() -> impl FlagParser<f64> {
    |text: &str| {
        let value = parse_finite(text)?;
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(format!("must be in [0, 1], got {}", text.trim()))
        }
    }
}

/// A float in (0, 1] (a fraction of something that must not be empty).
pub fn fraction() -> impl FlagParser<f64> {
    |text: &str| {
        let value = parse_finite(text)?;
        if value > 0.0 && value <= 1.0 {
            Ok(value)
        } else {
            Err(format!("must be in (0, 1], got {}", text.trim()))
        }
    }
}

/// Any finite float (values that may be negative, e.g. returns or a target entropy).
pub fn finite() -> impl FlagParser<f64> {
    parse_finite
}

/// An integer of type `T` in `[min, max]`; a negative or malformed value gets the range message.
pub fn int_range<T>(min: T, max: T) -> impl FlagParser<T>
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |text: &str| parse_int(text, min, Some(max))
}

/// An integer of type `T` at least `min` (counts, sizes, steps).
pub fn at_least<T>(min: T) -> impl FlagParser<T>
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |text: &str| parse_int(text, min, None)
}

/// Parses an integer in `[min, max]` (no upper bound but the type's when `max` is `None`).
fn parse_int<T: FromStr + PartialOrd + Display + Copy>(text: &str, min: T, max: Option<T>) -> Result<T, String> {
    let range = match max {
        Some(max) => format!("must be in {min}..={max}"),
        None => format!("must be at least {min}"),
    };
    let trimmed = text.trim();
    let Ok(value) = trimmed.parse::<T>() else {
        let (negative, digits) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected a whole number, got `{text}`"));
        }
        // A whole number the type cannot hold: below zero, or too large.
        return Err(if negative || max.is_some() {
            format!("{range}, got {trimmed}")
        } else {
            format!("{trimmed} is too large")
        });
    };
    if value < min || max.is_some_and(|max| value > max) {
        return Err(format!("{range}, got {}", text.trim()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_refuses_zero_negative_and_non_finite_with_the_unit() {
        let p = positive("Hz");
        assert_eq!(p("12.5"), Ok(12.5));
        assert_eq!(p("0").unwrap_err(), "must be > 0 Hz, got 0");
        assert_eq!(p("-5").unwrap_err(), "must be > 0 Hz, got -5");
        assert_eq!(p("NaN").unwrap_err(), "must be a finite number, got NaN");
        assert_eq!(p("inf").unwrap_err(), "must be a finite number, got inf");
        assert_eq!(p("fast").unwrap_err(), "expected a number, got `fast`");
    }

    #[test]
    fn intervals_include_and_exclude_their_ends() {
        assert_eq!(unit_interval()("0"), Ok(0.0));
        assert_eq!(unit_interval()("1"), Ok(1.0));
        assert_eq!(unit_interval()("1.5").unwrap_err(), "must be in [0, 1], got 1.5");
        assert_eq!(fraction()("0").unwrap_err(), "must be in (0, 1], got 0");
        assert_eq!(fraction()("1"), Ok(1.0));
        assert_eq!(non_negative("s")("0"), Ok(0.0));
        assert_eq!(non_negative("s")("-0.5").unwrap_err(), "must be ≥ 0 s, got -0.5");
        assert_eq!(finite()("-3"), Ok(-3.0));
    }

    #[test]
    fn rates_and_durations_are_valid_durations() {
        assert_eq!(rate_hz()("50"), Ok(50.0));
        assert_eq!(rate_hz()("0").unwrap_err(), "must be > 0 Hz, got 0");
        assert!(rate_hz()("1e-300").unwrap_err().contains("period"));
        assert_eq!(duration_s()("2.5"), Ok(2.5));
        assert!(duration_s()("1e300").unwrap_err().contains("at most 1e9 s"));
        assert_eq!(pause_s()("0"), Ok(0.0));
        assert_eq!(pause_s()("-1").unwrap_err(), "must be ≥ 0 s, got -1");
    }

    #[test]
    fn integers_get_the_range_message_for_zero_negative_and_too_large() {
        let episodes = at_least(1u64);
        assert_eq!(episodes("3"), Ok(3));
        assert_eq!(episodes("0").unwrap_err(), "must be at least 1, got 0");
        assert_eq!(episodes("-1").unwrap_err(), "must be at least 1, got -1");
        assert_eq!(episodes("1.5").unwrap_err(), "expected a whole number, got `1.5`");
        let crf = int_range(0u8, 51);
        assert_eq!(crf("51"), Ok(51));
        assert_eq!(crf("52").unwrap_err(), "must be in 0..=51, got 52");
        assert_eq!(crf("300").unwrap_err(), "must be in 0..=51, got 300");
    }
}
