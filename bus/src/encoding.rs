//! CBOR encoding of messages (ciborium), schema-version checks, and a JSON-ish rendering of
//! arbitrary CBOR for tooling (`topics echo`).

use ciborium::Value;
use serde::Deserialize;

use crate::error::{BusError, DecodeError};
use crate::header::{Message, SCHEMA_VERSION};

/// Encodes `msg` as CBOR (a map keyed by field names). The header is written as is; the
/// [`crate::Publisher`] fills it before calling this.
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, BusError> {
    let mut out = Vec::with_capacity(msg.encoded_len_hint());
    ciborium::into_writer(msg, &mut out).map_err(|e| BusError::Encode { topic: M::TOPIC, reason: e.to_string() })?;
    Ok(out)
}

/// Only `{header: {schema}}` of a message, to classify payloads that fail to decode fully.
#[derive(Deserialize)]
struct SchemaProbe {
    header: SchemaProbeHeader,
}

#[derive(Deserialize)]
struct SchemaProbeHeader {
    schema: u16,
}

/// Decodes a message of type `M` from CBOR.
///
/// A message whose `header.schema` is newer than [`SCHEMA_VERSION`] is rejected with
/// [`DecodeError::NewerSchema`], whether or not the rest of it happens to decode.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    match ciborium::from_reader::<M, _>(bytes) {
        Ok(msg) => {
            let got = msg.header().schema;
            if got > SCHEMA_VERSION {
                return Err(DecodeError::NewerSchema { got, supported: SCHEMA_VERSION });
            }
            Ok(msg)
        }
        Err(err) => {
            if let Ok(probe) = ciborium::from_reader::<SchemaProbe, _>(bytes) {
                if probe.header.schema > SCHEMA_VERSION {
                    return Err(DecodeError::NewerSchema { got: probe.header.schema, supported: SCHEMA_VERSION });
                }
            }
            Err(DecodeError::Malformed { what: M::TOPIC, len: bytes.len(), reason: err.to_string() })
        }
    }
}

/// Decodes any CBOR item into a dynamic [`Value`] (for tools that do not know the type).
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    ciborium::from_reader::<Value, _>(bytes).map_err(|e| DecodeError::Malformed {
        what: "CBOR value",
        len: bytes.len(),
        reason: e.to_string(),
    })
}

/// Encodes a dynamic [`Value`] as CBOR (for tools and tests that write a payload by hand, e.g.
/// the way a client in another language writes it).
pub fn encode_value(value: &Value) -> Result<Vec<u8>, BusError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| BusError::Encode { topic: "CBOR value", reason: e.to_string() })?;
    Ok(out)
}

/// Renders a CBOR value as one line of JSON. Byte strings are shown as the string
/// `"<N bytes>"`, non-finite floats as the strings `"NaN"`, `"inf"`, `"-inf"`, tags are dropped
/// (their content is shown), and non-text map keys are rendered and quoted.
pub fn value_to_json_string(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Integer(i) => out.push_str(&i128::from(*i).to_string()),
        Value::Bytes(b) => write_json_str(&format!("<{} bytes>", b.len()), out),
        Value::Float(f) => {
            if f.is_finite() {
                let text = f.to_string();
                out.push_str(&text);
                if !text.contains(['.', 'e', 'E']) {
                    out.push_str(".0");
                }
            } else if f.is_nan() {
                write_json_str("NaN", out);
            } else if *f > 0.0 {
                write_json_str("inf", out);
            } else {
                write_json_str("-inf", out);
            }
        }
        Value::Text(s) => write_json_str(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Tag(_, inner) => write_json(inner, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match k {
                    Value::Text(s) => write_json_str(s, out),
                    other => write_json_str(&value_to_json_string(other), out),
                }
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        _ => write_json_str("<unsupported CBOR item>", out),
    }
}

/// Appends `s` as a quoted JSON string.
pub(crate) fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{CameraFrame, ImageEncoding, JointState};

    fn map_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
        v.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
    }

    #[test]
    fn camera_data_is_a_cbor_byte_string() {
        let frame = CameraFrame {
            camera: "front".into(),
            width: 2,
            height: 1,
            encoding: ImageEncoding::Rgb8,
            data: vec![1, 2, 3, 4, 5, 6],
            ..Default::default()
        };
        let bytes = encode(&frame).expect("encode");
        let value = decode_value(&bytes).expect("value");
        assert_eq!(map_get(&value, "data"), Some(&Value::Bytes(vec![1, 2, 3, 4, 5, 6])));
        assert_eq!(map_get(&value, "encoding"), Some(&Value::Text("Rgb8".into())));
        // Major type 2 (byte string) of length 6 is the byte 0x46 followed by the pixels.
        assert!(bytes.windows(7).any(|w| w == [0x46, 1, 2, 3, 4, 5, 6]));
        let back: CameraFrame = decode(&bytes).expect("decode");
        assert_eq!(back, frame);
        let json = value_to_json_string(&value);
        assert!(json.contains("\"data\":\"<6 bytes>\""), "{json}");
        assert!(json.contains("\"encoding\":\"Rgb8\""), "{json}");
    }

    #[test]
    fn newer_schema_is_rejected_with_both_versions() {
        let mut js = JointState { name: vec!["waist".into()], position: vec![0.5], ..Default::default() };
        js.header.schema = SCHEMA_VERSION + 1;
        let bytes = encode(&js).expect("encode");
        let err = decode::<JointState>(&bytes).expect_err("must reject");
        assert_eq!(err, DecodeError::NewerSchema { got: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION });
        let text = err.to_string();
        assert!(
            text.contains(&(SCHEMA_VERSION + 1).to_string()) && text.contains(&SCHEMA_VERSION.to_string()),
            "{text}"
        );
    }

    #[test]
    fn newer_schema_with_unknown_layout_is_classified() {
        // A future message whose fields changed type: only the header probe decodes.
        let future = Value::Map(vec![
            (Value::Text("header".into()), Value::Map(vec![(Value::Text("schema".into()), Value::Integer(7.into()))])),
            (Value::Text("position".into()), Value::Text("not a list".into())),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&future, &mut bytes).expect("encode value");
        let err = decode::<JointState>(&bytes).expect_err("must reject");
        assert_eq!(err, DecodeError::NewerSchema { got: 7, supported: SCHEMA_VERSION });
    }

    #[test]
    fn garbage_is_malformed() {
        let err = decode::<JointState>(&[0xff, 0x00, 0x13]).expect_err("garbage");
        assert!(matches!(err, DecodeError::Malformed { what: "joint_state", len: 3, .. }), "{err}");
    }

    #[test]
    fn json_rendering() {
        let v = Value::Map(vec![
            (Value::Text("a\"b".into()), Value::Array(vec![Value::Float(1.0), Value::Float(f64::NAN)])),
            (Value::Integer(3.into()), Value::Null),
        ]);
        assert_eq!(value_to_json_string(&v), r#"{"a\"b":[1.0,"NaN"],"3":null}"#);
    }
}
