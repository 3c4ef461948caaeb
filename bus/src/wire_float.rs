//! Lenient decoding of float fields: a CBOR integer is accepted wherever a float is expected.
//!
//! Clients in dynamic languages write whole numbers as integers (Python's `cbor2.dumps(1)` is the
//! CBOR unsigned integer 1, not the float 1.0), and ciborium refuses an integer for an `f32`/`f64`
//! field. Every float field of every message in [`crate::messages`] therefore decodes through one
//! of the `deserialize_with` functions here. Encoding is unchanged: floats are always written as
//! CBOR floats.

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// A number read from the wire as `f64`, whether it was encoded as a float or an integer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WireFloat(pub f64);

impl<'de> Deserialize<'de> for WireFloat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;

        impl Visitor<'_> for NumberVisitor {
            type Value = WireFloat;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number (float or integer)")
            }

            fn visit_f64<E: Error>(self, v: f64) -> Result<WireFloat, E> {
                Ok(WireFloat(v))
            }

            fn visit_i64<E: Error>(self, v: i64) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }

            fn visit_u64<E: Error>(self, v: u64) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }

            fn visit_i128<E: Error>(self, v: i128) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }

            fn visit_u128<E: Error>(self, v: u128) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }
        }

        deserializer.deserialize_any(NumberVisitor)
    }
}

/// `deserialize_with` for an `f64` field.
pub fn f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    WireFloat::deserialize(deserializer).map(|w| w.0)
}

/// `deserialize_with` for a `Vec<f64>` field.
pub fn f64_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    Vec::<WireFloat>::deserialize(deserializer).map(|v| v.into_iter().map(|w| w.0).collect())
}

/// `deserialize_with` for a `Vec<f32>` field (values are rounded to the nearest `f32`).
pub fn f32_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
    Vec::<WireFloat>::deserialize(deserializer).map(|v| v.into_iter().map(|w| w.0 as f32).collect())
}

/// `deserialize_with` for an `[f64; N]` field.
pub fn f64_array<'de, D, const N: usize>(deserializer: D) -> Result<[f64; N], D::Error>
where
    D: Deserializer<'de>,
    [WireFloat; N]: Deserialize<'de>,
{
    <[WireFloat; N]>::deserialize(deserializer).map(|a| a.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: ciborium::Value) -> Result<WireFloat, ciborium::de::Error<std::io::Error>> {
        let mut bytes = Vec::new();
        ciborium::into_writer(&value, &mut bytes).expect("encode");
        ciborium::from_reader(bytes.as_slice())
    }

    #[test]
    fn integers_and_floats_of_every_width_decode() {
        assert_eq!(decode(ciborium::Value::Integer(1.into())).expect("uint"), WireFloat(1.0));
        assert_eq!(decode(ciborium::Value::Integer((-3).into())).expect("nint"), WireFloat(-3.0));
        assert_eq!(decode(ciborium::Value::Float(0.25)).expect("float"), WireFloat(0.25));
        // Half-precision 1.5 (0xf9 0x3e 0x00), as a compact encoder writes it.
        assert_eq!(ciborium::from_reader::<WireFloat, _>(&[0xf9u8, 0x3e, 0x00][..]).expect("half"), WireFloat(1.5));
    }

    /// Re-encodes `value` the way a Python client writes it: every whole-number float becomes a
    /// CBOR integer (`cbor2.dumps(1)`). Returns the value and how many floats were turned.
    fn as_python_writes_it(value: ciborium::Value) -> (ciborium::Value, usize) {
        use ciborium::Value;
        match value {
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => (Value::Integer((f as i64).into()), 1),
            Value::Array(items) => {
                let (items, counts): (Vec<_>, Vec<_>) = items.into_iter().map(as_python_writes_it).unzip();
                (Value::Array(items), counts.iter().sum())
            }
            Value::Map(entries) => {
                let mut turned = 0;
                let entries = entries
                    .into_iter()
                    .map(|(k, v)| {
                        let (v, n) = as_python_writes_it(v);
                        turned += n;
                        (k, v)
                    })
                    .collect();
                (Value::Map(entries), turned)
            }
            other => (other, 0),
        }
    }

    /// Encodes `msg`, turns its whole-number floats into integers, and decodes it back.
    fn assert_integers_accepted<M: crate::Message + PartialEq + std::fmt::Debug>(msg: M, floats: usize) {
        let bytes = crate::encode(&msg).expect("encode");
        let (python, turned) = as_python_writes_it(crate::decode_value(&bytes).expect("value"));
        assert_eq!(turned, floats, "{}: every float field of the sample is a whole number", M::TOPIC);
        let mut python_bytes = Vec::new();
        ciborium::into_writer(&python, &mut python_bytes).expect("encode value");
        let back: M = crate::decode(&python_bytes).unwrap_or_else(|e| panic!("{}: {e}", M::TOPIC));
        assert_eq!(back, msg);
    }

    #[test]
    fn every_float_field_of_every_message_accepts_an_integer() {
        use crate::messages::*;
        // The premise: ciborium alone refuses an integer for a float.
        let mut one = Vec::new();
        ciborium::into_writer(&1u8, &mut one).expect("encode");
        assert!(ciborium::from_reader::<f64, _>(one.as_slice()).is_err());

        let pose = Pose { translation_m: [1.0, -2.0, 0.0], rotation_xyzw: [0.0, 0.0, 0.0, 1.0] };
        let js = JointState {
            name: vec!["waist".into()],
            position: vec![1.0, -1.0],
            velocity: vec![2.0],
            effort: vec![-3.0],
            ee_pose: Some(pose.clone()),
            ..Default::default()
        };
        assert_integers_accepted(js, 4 + 7);
        let frame = CameraFrame {
            camera: "front".into(),
            width: 1,
            height: 1,
            data: vec![1, 2, 3],
            intrinsics: CameraIntrinsics { fx: 100.0, fy: 101.0, cx: 64.0, cy: -64.0 },
            extrinsics: pose.clone(),
            ..Default::default()
        };
        assert_integers_accepted(frame, 4 + 7);
        let joint = JointCommand { position: vec![0.0, 1.0, -1.0, 2.0, 0.0, 3.0], gripper: 1.0, ..Default::default() };
        assert_integers_accepted(joint, 7);
        let ee = EeDeltaCommand {
            delta_xyz_m: [0.0, 1.0, -1.0],
            delta_rpy_rad: [2.0, 0.0, -2.0],
            gripper: 0.0,
            ..Default::default()
        };
        assert_integers_accepted(ee, 7);
        let chunk = ActionChunk { horizon: 1, dim: 3, values: vec![1.0, -1.0, 0.0], ..Default::default() };
        assert_integers_accepted(chunk, 3);
        let event = EpisodeEvent { reward: 1.0, ..Default::default() };
        assert_integers_accepted(event, 1);
        let scene = SceneState { objects: vec![ObjectPose { name: "cube".into(), pose }], ..Default::default() };
        assert_integers_accepted(scene, 7);
    }

    #[test]
    fn text_is_still_an_error() {
        let err = decode(ciborium::Value::Text("1".into())).expect_err("text is not a number");
        assert!(err.to_string().contains("a number"), "{err}");
    }
}
