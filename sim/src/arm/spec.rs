//! The arm's data: joint chain, limits, end-effector offsets and finger travel.
//!
//! [`ArmSpec::default()`] is the WidowX 250 6DOF (Trossen Robotics' published kinematics). The same numbers are written
//! into `sim/assets/widowx250.urdf`; a unit test checks that the two agree.
//!
//! Frames: every joint's origin offset and axis are expressed in its parent link frame. The chain
//! starts in `base_link` (the frame in which the waist joint's origin is given, z up, x forward).
//! All joint origins are pure translations (no rotation), as on the WidowX 250, so at the home
//! pose every link frame is parallel to `base_link`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Number of actuated arm joints (waist … wrist_rotate), excluding the gripper.
pub const NUM_ARM_JOINTS: usize = 6;

/// Names of the arm joints in chain order, as used in the URDF and on the bus.
pub const ARM_JOINT_NAMES: [&str; NUM_ARM_JOINTS] =
    ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"];

/// Limit of the joints that turn almost a full turn (waist, forearm_roll, wrist_rotate), ±rad:
/// the last servo tick inside ±π, as in the driver's WidowX 250 servo map, so the sim and the arm
/// clamp commands to the same limits.
pub const FULL_TURN_LIMIT_RAD: f64 = 3.14158;

/// Name of the URDF link whose frame is the finger-tip (ee_gripper) frame.
pub const EE_GRIPPER_LINK: &str = "ee_gripper_link";
/// Name of the left finger's prismatic joint in the URDF (moves along +y of `gripper_link`).
pub const LEFT_FINGER_JOINT: &str = "left_finger";
/// Name of the right finger's prismatic joint in the URDF (moves along −y of `gripper_link`).
pub const RIGHT_FINGER_JOINT: &str = "right_finger";

/// One revolute joint of the arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointSpec {
    /// Joint name (URDF joint name, e.g. `"waist"`).
    pub name: String,
    /// Rotation axis, a unit vector in the parent link frame (positive rotation is right-handed
    /// about it).
    pub axis: [f64; 3],
    /// Translation from the parent link frame's origin to this joint's origin, metres, parent
    /// link frame.
    pub origin_m: [f64; 3],
    /// Lower position limit, radians.
    pub lower_rad: f64,
    /// Upper position limit, radians.
    pub upper_rad: f64,
    /// Velocity limit, rad/s (symmetric).
    pub velocity_limit_rad_s: f64,
    /// Maximum effort (torque), N·m.
    pub effort_nm: f64,
}

impl JointSpec {
    fn revolute(
        name: &str,
        axis: [f64; 3],
        origin_m: [f64; 3],
        lower_rad: f64,
        upper_rad: f64,
        effort_nm: f64,
    ) -> Self {
        Self {
            name: name.to_owned(),
            axis,
            origin_m,
            lower_rad,
            upper_rad,
            velocity_limit_rad_s: std::f64::consts::PI,
            effort_nm,
        }
    }

    /// Clamps `q_rad` (radians) into `[lower_rad, upper_rad]`. A NaN stays NaN.
    pub fn clamp(&self, q_rad: f64) -> f64 {
        q_rad.clamp(self.lower_rad, self.upper_rad)
    }
}

/// Kinematic and actuation data of a WidowX-style 6-DoF arm with a two-finger prismatic gripper.
///
/// Deserializable from TOML; fields missing in the input take the WidowX 250 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArmSpec {
    /// The six revolute joints in chain order (waist, shoulder, elbow, forearm_roll,
    /// wrist_angle, wrist_rotate).
    pub joints: [JointSpec; NUM_ARM_JOINTS],
    /// Distance from the wrist_rotate joint frame to the `ee_arm` frame along its x axis, metres.
    pub ee_arm_offset_m: f64,
    /// Distance from `ee_arm` to the gripper bar frame along x, metres.
    pub gripper_bar_offset_m: f64,
    /// Distance from the gripper bar to the finger-tip frame (`ee_gripper`) along x, metres.
    pub finger_tip_offset_m: f64,
    /// Finger position when closed, metres: distance of each finger's inner face from the gripper
    /// centre line (x axis of the gripper frame). The opening between the fingers is twice this.
    pub finger_min_m: f64,
    /// Finger position when fully open, metres (same convention as `finger_min_m`).
    pub finger_max_m: f64,
    /// Maximum force of each finger's prismatic drive, newtons.
    pub finger_effort_n: f64,
}

impl Default for ArmSpec {
    /// The WidowX 250 6DOF (Trossen Robotics' published kinematics).
    fn default() -> Self {
        let turn = FULL_TURN_LIMIT_RAD;
        let x = [1.0, 0.0, 0.0];
        let y = [0.0, 1.0, 0.0];
        let z = [0.0, 0.0, 1.0];
        Self {
            joints: [
                JointSpec::revolute("waist", z, [0.0, 0.0, 0.072], -turn, turn, 10.0),
                JointSpec::revolute("shoulder", y, [0.0, 0.0, 0.03865], -1.885, 1.990, 20.0),
                JointSpec::revolute("elbow", y, [0.04975, 0.0, 0.25], -2.147, 1.606, 15.0),
                JointSpec::revolute("forearm_roll", x, [0.175, 0.0, 0.0], -turn, turn, 2.0),
                JointSpec::revolute("wrist_angle", y, [0.075, 0.0, 0.0], -1.745, 2.147, 5.0),
                JointSpec::revolute("wrist_rotate", x, [0.065, 0.0, 0.0], -turn, turn, 1.0),
            ],
            ee_arm_offset_m: 0.043,
            gripper_bar_offset_m: 0.023,
            finger_tip_offset_m: 0.027575,
            finger_min_m: 0.015,
            finger_max_m: 0.037,
            finger_effort_n: 5.0,
        }
    }
}

/// Why an [`ArmSpec`] (typically read from a file) is unusable.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArmSpecError {
    /// A joint's axis is zero-length or not finite.
    #[error("joint `{joint}`: axis {axis:?} is not a finite non-zero vector")]
    BadAxis {
        /// Joint name.
        joint: String,
        /// The offending axis.
        axis: [f64; 3],
    },
    /// A joint's lower limit exceeds its upper limit, or a limit is NaN.
    #[error("joint `{joint}`: limits [{lower_rad}, {upper_rad}] rad are not ordered")]
    BadLimits {
        /// Joint name.
        joint: String,
        /// Lower limit, radians.
        lower_rad: f64,
        /// Upper limit, radians.
        upper_rad: f64,
    },
    /// A length, velocity, effort or finger value is negative or not finite.
    #[error("`{field}` = {value} must be finite and non-negative")]
    BadValue {
        /// Field name.
        field: String,
        /// The offending value.
        value: f64,
    },
}

impl ArmSpec {
    /// The home pose (all joints at 0 rad): the arm stretched forward, gripper horizontal.
    pub fn home() -> [f64; NUM_ARM_JOINTS] {
        [0.0; NUM_ARM_JOINTS]
    }

    /// The sleep (rest) pose, radians: the arm folded down onto its base.
    pub fn sleep() -> [f64; NUM_ARM_JOINTS] {
        [0.0, -1.80, 1.55, 0.0, 0.8, 0.0]
    }

    /// Joint names in chain order.
    pub fn joint_names(&self) -> [&str; NUM_ARM_JOINTS] {
        std::array::from_fn(|i| self.joints[i].name.as_str())
    }

    /// Lower joint limits, radians.
    pub fn lower_limits_rad(&self) -> [f64; NUM_ARM_JOINTS] {
        std::array::from_fn(|i| self.joints[i].lower_rad)
    }

    /// Upper joint limits, radians.
    pub fn upper_limits_rad(&self) -> [f64; NUM_ARM_JOINTS] {
        std::array::from_fn(|i| self.joints[i].upper_rad)
    }

    /// Total distance from the wrist_rotate joint frame to the finger-tip frame (`ee_gripper`)
    /// along the gripper's x axis, metres (0.093575 for the WidowX 250).
    pub fn ee_gripper_offset_m(&self) -> f64 {
        self.ee_arm_offset_m + self.gripper_bar_offset_m + self.finger_tip_offset_m
    }

    /// Clamps each joint position (radians) into its limits, in place. Returns how many entries
    /// were changed. A NaN entry is replaced by the nearest limit to 0 rad (0 itself when inside
    /// the limits) and counted as clamped.
    pub fn clamp_to_limits(&self, q_rad: &mut [f64; NUM_ARM_JOINTS]) -> usize {
        let mut clamped = 0;
        for (q, joint) in q_rad.iter_mut().zip(self.joints.iter()) {
            let c = if q.is_nan() { joint.clamp(0.0) } else { joint.clamp(*q) };
            // `c != *q` is also true when `*q` is NaN.
            if c != *q {
                *q = c;
                clamped += 1;
            }
        }
        clamped
    }

    /// The joint position and velocity limits as the shared command filter takes them.
    pub fn joint_limits(&self) -> arm_command::JointLimits {
        arm_command::JointLimits {
            joints: std::array::from_fn(|i| {
                let j = &self.joints[i];
                arm_command::JointLimit {
                    lower_rad: j.lower_rad,
                    upper_rad: j.upper_rad,
                    max_velocity_rad_s: j.velocity_limit_rad_s,
                }
            }),
        }
    }

    /// True when every joint position (radians) is within its limits (inclusive) and finite.
    pub fn within_limits(&self, q_rad: &[f64; NUM_ARM_JOINTS]) -> bool {
        q_rad.iter().zip(self.joints.iter()).all(|(q, j)| *q >= j.lower_rad && *q <= j.upper_rad)
    }

    /// Maps a gripper opening command, 0 (closed) … 1 (open), to the finger joint position in
    /// metres (distance of each finger's inner face from the centre line), `finger_min_m` …
    /// `finger_max_m`. The opening is clamped to 0…1; NaN maps to closed.
    pub fn gripper_opening_to_finger_m(&self, opening: f64) -> f64 {
        let t = if opening.is_nan() { 0.0 } else { opening.clamp(0.0, 1.0) };
        self.finger_min_m + t * (self.finger_max_m - self.finger_min_m)
    }

    /// Inverse of [`Self::gripper_opening_to_finger_m`]: finger joint position (metres, inner
    /// face from the centre line) to opening 0 (closed) … 1 (open), clamped to 0…1. NaN maps to 0.
    pub fn finger_m_to_gripper_opening(&self, finger_m: f64) -> f64 {
        let span = self.finger_max_m - self.finger_min_m;
        if span.is_nan() || span <= 0.0 || finger_m.is_nan() {
            return 0.0;
        }
        ((finger_m - self.finger_min_m) / span).clamp(0.0, 1.0)
    }

    /// Checks that the spec is usable: finite non-zero axes, ordered limits, finite non-negative
    /// offsets, velocities, efforts and finger travel (`finger_min_m <= finger_max_m`).
    pub fn validate(&self) -> Result<(), ArmSpecError> {
        for j in &self.joints {
            let n2: f64 = j.axis.iter().map(|a| a * a).sum();
            if !n2.is_finite() || n2 < 1e-12 {
                return Err(ArmSpecError::BadAxis { joint: j.name.clone(), axis: j.axis });
            }
            if j.lower_rad.is_nan() || j.upper_rad.is_nan() || j.lower_rad > j.upper_rad {
                return Err(ArmSpecError::BadLimits {
                    joint: j.name.clone(),
                    lower_rad: j.lower_rad,
                    upper_rad: j.upper_rad,
                });
            }
            if j.origin_m.iter().any(|v| !v.is_finite()) {
                let value = j.origin_m.iter().copied().find(|v| !v.is_finite()).unwrap_or(f64::NAN);
                return Err(ArmSpecError::BadValue { field: format!("{}.origin_m", j.name), value });
            }
            for (field, value) in [("velocity_limit_rad_s", j.velocity_limit_rad_s), ("effort_nm", j.effort_nm)] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(ArmSpecError::BadValue { field: format!("{}.{field}", j.name), value });
                }
            }
        }
        for (field, value) in [
            ("ee_arm_offset_m", self.ee_arm_offset_m),
            ("gripper_bar_offset_m", self.gripper_bar_offset_m),
            ("finger_tip_offset_m", self.finger_tip_offset_m),
            ("finger_min_m", self.finger_min_m),
            ("finger_max_m", self.finger_max_m),
            ("finger_effort_n", self.finger_effort_n),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ArmSpecError::BadValue { field: field.to_owned(), value });
            }
        }
        if self.finger_min_m > self.finger_max_m {
            return Err(ArmSpecError::BadValue {
                field: "finger_max_m (below finger_min_m)".to_owned(),
                value: self.finger_max_m,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URDF: &str = include_str!("../../assets/widowx250.urdf");

    /// Minimal attribute scan: the value of `attr="…"` inside `tag_text`.
    fn attr<'a>(tag_text: &'a str, attr: &str) -> Option<&'a str> {
        let key = format!("{attr}=\"");
        let start = tag_text.find(&key)? + key.len();
        let len = tag_text[start..].find('"')?;
        Some(&tag_text[start..start + len])
    }

    fn floats(s: &str) -> Vec<f64> {
        s.split_whitespace().map(|t| t.parse::<f64>().expect("number in URDF")).collect()
    }

    /// The text of `<joint name="NAME" …> … </joint>` in the URDF.
    fn joint_block(name: &str) -> &'static str {
        let key = format!("<joint name=\"{name}\"");
        let start = URDF.find(&key).unwrap_or_else(|| panic!("joint {name} missing from URDF"));
        let len = URDF[start..].find("</joint>").expect("unterminated joint");
        &URDF[start..start + len]
    }

    fn sub_tag<'a>(block: &'a str, tag: &str) -> &'a str {
        let key = format!("<{tag} ");
        let start = block.find(&key).unwrap_or_else(|| panic!("<{tag}> missing"));
        let len = block[start..].find("/>").expect("unterminated tag");
        &block[start..start + len]
    }

    fn assert_close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() < 1e-9, "{what}: URDF {a} vs spec {b}");
    }

    #[test]
    fn urdf_matches_spec() {
        let spec = ArmSpec::default();
        let mut previous_child: Option<String> = None;
        for j in &spec.joints {
            let block = joint_block(&j.name);
            assert_eq!(attr(block, "type"), Some("revolute"), "{}", j.name);
            let origin = sub_tag(block, "origin");
            let xyz = floats(attr(origin, "xyz").expect("xyz"));
            let rpy = floats(attr(origin, "rpy").unwrap_or("0 0 0"));
            for k in 0..3 {
                assert_close(xyz[k], j.origin_m[k], &format!("{} origin[{k}]", j.name));
                assert_close(rpy[k], 0.0, &format!("{} rpy[{k}]", j.name));
            }
            let axis = floats(attr(sub_tag(block, "axis"), "xyz").expect("axis"));
            for (k, (a, b)) in axis.iter().zip(j.axis.iter()).enumerate() {
                assert_close(*a, *b, &format!("{} axis[{k}]", j.name));
            }
            let limit = sub_tag(block, "limit");
            let get = |a: &str| -> f64 { attr(limit, a).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{a}")) };
            assert_close(get("lower"), j.lower_rad, &format!("{} lower", j.name));
            assert_close(get("upper"), j.upper_rad, &format!("{} upper", j.name));
            assert_close(get("effort"), j.effort_nm, &format!("{} effort", j.name));
            assert_close(get("velocity"), j.velocity_limit_rad_s, &format!("{} velocity", j.name));
            // Chain order: each joint's parent is the previous joint's child.
            let parent = attr(sub_tag(block, "parent"), "link").expect("parent").to_owned();
            let child = attr(sub_tag(block, "child"), "link").expect("child").to_owned();
            match &previous_child {
                None => assert_eq!(parent, "base_link"),
                Some(prev) => assert_eq!(&parent, prev, "{} parent", j.name),
            }
            previous_child = Some(child);
        }
        assert_eq!(previous_child.as_deref(), Some("gripper_link"));

        // Fingers: mirrored prismatic joints with the spec's travel and effort.
        for (name, sign) in [(LEFT_FINGER_JOINT, 1.0), (RIGHT_FINGER_JOINT, -1.0)] {
            let block = joint_block(name);
            assert_eq!(attr(block, "type"), Some("prismatic"));
            let axis = floats(attr(sub_tag(block, "axis"), "xyz").expect("axis"));
            assert_eq!(axis, vec![0.0, sign, 0.0]);
            let limit = sub_tag(block, "limit");
            let get = |a: &str| -> f64 { attr(limit, a).and_then(|s| s.parse().ok()).expect(a) };
            assert_close(get("lower"), spec.finger_min_m, "finger lower");
            assert_close(get("upper"), spec.finger_max_m, "finger upper");
            assert_close(get("effort"), spec.finger_effort_n, "finger effort");
        }

        // Finger-tip frame.
        let block = joint_block("ee_gripper");
        assert_eq!(attr(sub_tag(block, "child"), "link"), Some(EE_GRIPPER_LINK));
        let xyz = floats(attr(sub_tag(block, "origin"), "xyz").expect("xyz"));
        assert_close(xyz[0], spec.ee_gripper_offset_m(), "ee_gripper x");
        assert_close(xyz[1], 0.0, "ee_gripper y");
        assert_close(xyz[2], 0.0, "ee_gripper z");
    }

    #[test]
    fn urdf_has_only_primitive_shapes() {
        assert!(!URDF.contains("<mesh"), "meshes are not allowed");
        assert!(!URDF.contains("<sphere"), "spheres are not used");
    }

    #[test]
    fn urdf_loads_in_rapier() {
        use rapier3d_urdf::{UrdfLoaderOptions, UrdfRobot};
        let options = UrdfLoaderOptions { make_roots_fixed: true, ..Default::default() };
        let (robot, urdf) = UrdfRobot::from_str(URDF, options, std::path::Path::new(".")).expect("URDF parses");
        // 10 URDF links (base, 6 arm links, 2 fingers, ee_gripper) and 9 joints; the loader
        // drops the empty ee_gripper frame, leaving 9 simulated links and 8 joints.
        assert_eq!(urdf.links.len(), 10);
        assert_eq!(urdf.joints.len(), 9);
        assert_eq!(robot.links.len(), 9);
        assert_eq!(robot.joints.len(), 8);
        let moving_mass: f64 = urdf.links.iter().skip(1).map(|l| l.inertial.mass.value).sum();
        assert!((1.0..2.5).contains(&moving_mass), "moving mass {moving_mass} kg");
    }

    #[test]
    fn default_values() {
        let spec = ArmSpec::default();
        spec.validate().expect("default spec is valid");
        assert_eq!(spec.joint_names(), ARM_JOINT_NAMES);
        assert!((spec.ee_gripper_offset_m() - 0.093575).abs() < 1e-12);
        assert!(spec.within_limits(&ArmSpec::home()));
        assert!(spec.within_limits(&ArmSpec::sleep()));
    }

    #[test]
    fn clamp_counts() {
        let spec = ArmSpec::default();
        let mut q = [0.0, -3.0, 3.0, 0.5, f64::NAN, 0.0];
        assert_eq!(spec.clamp_to_limits(&mut q), 3);
        assert_eq!(q, [0.0, -1.885, 1.606, 0.5, 0.0, 0.0]);
        assert_eq!(spec.clamp_to_limits(&mut q), 0);
    }

    #[test]
    fn gripper_mapping_round_trip() {
        let spec = ArmSpec::default();
        assert!((spec.gripper_opening_to_finger_m(0.0) - 0.015).abs() < 1e-12);
        assert!((spec.gripper_opening_to_finger_m(1.0) - 0.037).abs() < 1e-12);
        assert!((spec.gripper_opening_to_finger_m(2.0) - 0.037).abs() < 1e-12);
        assert!((spec.gripper_opening_to_finger_m(f64::NAN) - 0.015).abs() < 1e-12);
        for i in 0..=10 {
            let o = i as f64 / 10.0;
            let back = spec.finger_m_to_gripper_opening(spec.gripper_opening_to_finger_m(o));
            assert!((back - o).abs() < 1e-12);
        }
    }

    #[test]
    fn toml_partial_and_errors() {
        let spec: ArmSpec = toml::from_str("").expect("empty TOML gives the default");
        assert_eq!(spec, ArmSpec::default());
        let spec: ArmSpec = toml::from_str("finger_effort_n = 3.0").expect("partial TOML");
        assert_eq!(spec.finger_effort_n, 3.0);
        assert_eq!(spec.joints, ArmSpec::default().joints);
        let text = toml::to_string(&ArmSpec::default()).expect("serialize");
        let back: ArmSpec = toml::from_str(&text).expect("round trip");
        assert_eq!(back, ArmSpec::default());

        let mut bad = ArmSpec::default();
        bad.joints[2].axis = [0.0; 3];
        assert!(matches!(bad.validate(), Err(ArmSpecError::BadAxis { .. })));
        let mut bad = ArmSpec::default();
        bad.joints[1].lower_rad = 3.0;
        assert!(matches!(bad.validate(), Err(ArmSpecError::BadLimits { .. })));
        let bad = ArmSpec { finger_min_m: 0.05, ..Default::default() };
        assert!(matches!(bad.validate(), Err(ArmSpecError::BadValue { .. })));
    }
}
