//! Forward kinematics and the geometric Jacobian of the arm, on nalgebra (f64).
//!
//! Frames: everything is expressed in `base_link` (the frame the waist joint's origin is given
//! in; z up, x forward at the home pose). A link frame is its parent joint's frame after the
//! joint's rotation; the tip frame is `ee_gripper` (between the finger tips), reached from the
//! wrist_rotate link frame by [`ArmSpec::ee_gripper_offset_m`] along its x axis.

use nalgebra::{Isometry3, Matrix6, Translation3, Unit, UnitQuaternion, Vector3};

use super::spec::{ArmSpec, ArmSpecError, NUM_ARM_JOINTS};

/// Number of frames returned by [`ArmKinematics::link_frames`]: one per joint plus the tip.
pub const NUM_LINK_FRAMES: usize = NUM_ARM_JOINTS + 1;

/// Forward kinematics of a serial arm described by an [`ArmSpec`].
#[derive(Debug, Clone)]
pub struct ArmKinematics {
    spec: ArmSpec,
    /// Unit joint axes, parent link frame.
    axes: [Unit<Vector3<f64>>; NUM_ARM_JOINTS],
    /// Joint origins, metres, parent link frame.
    origins: [Translation3<f64>; NUM_ARM_JOINTS],
    /// Tip (ee_gripper) offset from the last link frame, metres.
    tip: Translation3<f64>,
}

impl Default for ArmKinematics {
    /// Kinematics of the WidowX 250 ([`ArmSpec::default()`]).
    fn default() -> Self {
        Self::new(ArmSpec::default())
    }
}

impl ArmKinematics {
    /// Builds the kinematics of `spec` without validating it: joint axes are normalised, and an
    /// axis that cannot be (zero or non-finite) is replaced by the parent frame's z axis. Use
    /// [`Self::try_new`] for a spec read from a file.
    pub fn new(spec: ArmSpec) -> Self {
        let axes = std::array::from_fn(|i| {
            let a = spec.joints[i].axis;
            Unit::try_new(Vector3::new(a[0], a[1], a[2]), 1e-12)
                .filter(|u| u.iter().all(|v| v.is_finite()))
                .unwrap_or_else(Vector3::z_axis)
        });
        let origins = std::array::from_fn(|i| {
            let o = spec.joints[i].origin_m;
            Translation3::new(o[0], o[1], o[2])
        });
        let tip = Translation3::new(spec.ee_gripper_offset_m(), 0.0, 0.0);
        Self { spec, axes, origins, tip }
    }

    /// Builds the kinematics of `spec` after checking it with [`ArmSpec::validate`].
    pub fn try_new(spec: ArmSpec) -> Result<Self, ArmSpecError> {
        spec.validate()?;
        Ok(Self::new(spec))
    }

    /// The arm data these kinematics were built from.
    pub fn spec(&self) -> &ArmSpec {
        &self.spec
    }

    /// Pose of the finger-tip frame (`ee_gripper`) in `base_link` for joint positions `q`
    /// (radians, chain order). Translation in metres.
    pub fn fk(&self, q: &[f64; NUM_ARM_JOINTS]) -> Isometry3<f64> {
        let mut pose = Isometry3::identity();
        for (i, q_i) in q.iter().enumerate() {
            pose *= self.joint_transform(i, *q_i);
        }
        pose * self.tip
    }

    /// Poses in `base_link` of the six link frames (frame `i` is the child frame of joint `i`,
    /// after its rotation; its origin is joint `i`'s origin) followed by the finger-tip frame
    /// (`ee_gripper`). Translations in metres; `q` in radians, chain order.
    pub fn link_frames(&self, q: &[f64; NUM_ARM_JOINTS]) -> [Isometry3<f64>; NUM_LINK_FRAMES] {
        let mut frames = [Isometry3::identity(); NUM_LINK_FRAMES];
        let mut pose = Isometry3::identity();
        for (i, (frame, q_i)) in frames.iter_mut().zip(q.iter()).enumerate() {
            pose *= self.joint_transform(i, *q_i);
            *frame = pose;
        }
        frames[NUM_ARM_JOINTS] = pose * self.tip;
        frames
    }

    /// Geometric Jacobian of the finger-tip frame at `q` (radians), in `base_link`.
    ///
    /// Rows 0–2: linear velocity of the tip point (m/s per rad/s); rows 3–5: angular velocity of
    /// the tip frame (rad/s per rad/s). Column `i` is joint `i`: `[z_i × (p_tip − p_i); z_i]`
    /// with `z_i` the joint axis and `p_i` its origin, both in `base_link`.
    pub fn jacobian(&self, q: &[f64; NUM_ARM_JOINTS]) -> Matrix6<f64> {
        self.fk_and_jacobian(q).1
    }

    /// [`Self::fk`] and [`Self::jacobian`] from one pass over the chain.
    pub fn fk_and_jacobian(&self, q: &[f64; NUM_ARM_JOINTS]) -> (Isometry3<f64>, Matrix6<f64>) {
        let frames = self.link_frames(q);
        let tip = frames[NUM_ARM_JOINTS];
        let p_tip = tip.translation.vector;
        let mut jac = Matrix6::zeros();
        for (i, (frame, axis)) in frames.iter().zip(self.axes.iter()).enumerate() {
            let z = frame.rotation * axis.into_inner();
            let p = frame.translation.vector;
            let v = z.cross(&(p_tip - p));
            jac.fixed_view_mut::<3, 1>(0, i).copy_from(&v);
            jac.fixed_view_mut::<3, 1>(3, i).copy_from(&z);
        }
        (tip, jac)
    }

    /// Transform from joint `i`'s parent link frame to its child link frame at angle `q_rad`.
    fn joint_transform(&self, i: usize, q_rad: f64) -> Isometry3<f64> {
        Isometry3::from_parts(self.origins[i], UnitQuaternion::from_axis_angle(&self.axes[i], q_rad))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Small deterministic generator for test configurations (64-bit LCG, Knuth's constants).
    pub(crate) struct Lcg(u64);

    impl Lcg {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
        }
        /// Uniform in [0, 1).
        pub(crate) fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Uniform in [lo, hi).
        pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.next_f64()
        }
    }

    /// A random configuration within the joint limits, shrunk by `margin_rad`.
    fn random_q(rng: &mut Lcg, spec: &ArmSpec, margin_rad: f64) -> [f64; NUM_ARM_JOINTS] {
        std::array::from_fn(|i| {
            rng.uniform(spec.joints[i].lower_rad + margin_rad, spec.joints[i].upper_rad - margin_rad)
        })
    }

    #[test]
    fn home_pose_matches_published_figures() {
        let kin = ArmKinematics::default();
        let tip = kin.fk(&ArmSpec::home());
        let p = tip.translation.vector;
        assert!((p.x - 0.458325).abs() < 1e-6, "x {}", p.x);
        assert!(p.y.abs() < 1e-6, "y {}", p.y);
        assert!((p.z - 0.36065).abs() < 1e-6, "z {}", p.z);
        assert!(tip.rotation.angle() < 1e-12, "home tip frame is parallel to base_link");

        let frames = kin.link_frames(&ArmSpec::home());
        let expected_x = [0.0, 0.0, 0.04975, 0.22475, 0.29975, 0.36475, 0.458325];
        let expected_z = [0.072, 0.11065, 0.36065, 0.36065, 0.36065, 0.36065, 0.36065];
        for (k, f) in frames.iter().enumerate() {
            assert!((f.translation.x - expected_x[k]).abs() < 1e-9, "frame {k} x");
            assert!((f.translation.z - expected_z[k]).abs() < 1e-9, "frame {k} z");
        }
        assert_eq!(frames[NUM_ARM_JOINTS], tip);
    }

    #[test]
    fn sleep_pose_is_folded_and_above_base() {
        let kin = ArmKinematics::default();
        let p = kin.fk(&ArmSpec::sleep()).translation.vector;
        // Folded back towards the base, a little above the base top.
        assert!(p.x > 0.0 && p.x < 0.2, "x {}", p.x);
        assert!(p.z > 0.05 && p.z < 0.25, "z {}", p.z);
    }

    #[test]
    fn waist_rotates_about_base_z() {
        let kin = ArmKinematics::default();
        let q = [std::f64::consts::FRAC_PI_2, 0.0, 0.0, 0.0, 0.0, 0.0];
        let p = kin.fk(&q).translation.vector;
        assert!(p.x.abs() < 1e-9 && (p.y - 0.458325).abs() < 1e-9 && (p.z - 0.36065).abs() < 1e-9);
        // Positive shoulder rotation (about +y) tips the arm forward and down.
        let q = [0.0, 0.3, 0.0, 0.0, 0.0, 0.0];
        assert!(kin.fk(&q).translation.z < 0.36065);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let kin = ArmKinematics::default();
        let mut rng = Lcg::new(7);
        let h = 1e-6;
        for _ in 0..20 {
            let q = random_q(&mut rng, kin.spec(), 0.01);
            let (pose, jac) = kin.fk_and_jacobian(&q);
            assert_eq!(pose, kin.fk(&q));
            assert_eq!(jac, kin.jacobian(&q));
            for i in 0..NUM_ARM_JOINTS {
                let mut qp = q;
                let mut qm = q;
                qp[i] += h;
                qm[i] -= h;
                let (fp, fm) = (kin.fk(&qp), kin.fk(&qm));
                let v = (fp.translation.vector - fm.translation.vector) / (2.0 * h);
                let w = (fp.rotation * fm.rotation.inverse()).scaled_axis() / (2.0 * h);
                for k in 0..3 {
                    assert!((jac[(k, i)] - v[k]).abs() < 1e-5, "linear J[{k},{i}] at {q:?}");
                    assert!((jac[(k + 3, i)] - w[k]).abs() < 1e-5, "angular J[{k},{i}] at {q:?}");
                }
            }
        }
    }

    #[test]
    fn matches_rapier_urdf_link_poses_at_home() {
        use rapier3d_urdf::{UrdfLoaderOptions, UrdfRobot};
        const URDF: &str = include_str!("../../assets/widowx250.urdf");
        let options = UrdfLoaderOptions { make_roots_fixed: true, ..Default::default() };
        let (robot, urdf) = UrdfRobot::from_str(URDF, options, std::path::Path::new(".")).expect("URDF parses");
        let kin = ArmKinematics::default();
        let frames = kin.link_frames(&ArmSpec::home());
        let names = [
            "shoulder_link",
            "upper_arm_link",
            "upper_forearm_link",
            "lower_forearm_link",
            "wrist_link",
            "gripper_link",
            "ee_gripper_link",
        ];
        // ee_gripper_link is an empty frame the loader drops: compare it through gripper_link.
        for (frame, name) in frames.iter().zip(names) {
            let (name, frame) = if name == "ee_gripper_link" {
                let offset = nalgebra::Translation3::new(-ArmSpec::default().ee_gripper_offset_m(), 0.0, 0.0);
                ("gripper_link", *frame * offset)
            } else {
                (name, *frame)
            };
            let link = robot
                .links
                .iter()
                .find(|l| urdf.links[l.urdf_link_index].name == name)
                .unwrap_or_else(|| panic!("{name} not loaded"));
            let t = link.body.translation();
            let p = frame.translation.vector;
            let err = ((t.x as f64 - p.x).powi(2) + (t.y as f64 - p.y).powi(2) + (t.z as f64 - p.z).powi(2)).sqrt();
            assert!(err < 1e-5, "{name}: rapier {t:?} vs fk {p:?}");
        }
    }

    #[test]
    fn rejects_bad_spec() {
        let mut spec = ArmSpec::default();
        spec.joints[0].axis = [f64::NAN, 0.0, 1.0];
        assert!(ArmKinematics::try_new(spec.clone()).is_err());
        // The unchecked constructor still yields finite kinematics.
        let kin = ArmKinematics::new(spec);
        assert!(kin.fk(&ArmSpec::home()).translation.vector.iter().all(|v| v.is_finite()));
        assert!(ArmKinematics::try_new(ArmSpec::default()).is_ok());
    }
}
