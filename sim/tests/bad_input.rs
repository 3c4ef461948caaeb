//! Bad input gets a clear error or a safe behaviour.

use sim::{load_scene, Action, Env, EnvConfig};

fn env() -> Env {
    let mut env = Env::new(EnvConfig::new(load_scene("pick_cube").unwrap())).unwrap();
    env.reset(0).unwrap();
    env
}

#[test]
fn nan_action_is_rejected_and_the_arm_holds() {
    let mut env = env();
    for _ in 0..5 {
        env.step(&Action::hold(1.0)).unwrap();
    }
    let before = env.step(&Action::hold(1.0)).unwrap().obs.arm;
    let (target_before, _) = env.target();
    for action in [
        Action::EeDelta { xyz_m: [f64::NAN, 0.0, 0.0], rpy_rad: [0.0; 3], gripper: 1.0 },
        Action::Joint { q_rad: [0.0, f64::INFINITY, 0.0, 0.0, 0.0, 0.0], gripper: 0.0 },
        Action::Joint { q_rad: [0.3; 6], gripper: f64::NAN },
    ] {
        let step = env.step(&action).unwrap();
        assert!(step.rejected);
        assert_eq!(env.target().0, target_before, "targets changed after a NaN action");
        let moved = (step.obs.arm.tip_pose.translation.vector - before.tip_pose.translation.vector).norm();
        assert!(moved < 1e-3, "the arm moved {moved} m after a NaN action");
    }
    assert_eq!(env.counters().rejected_actions, 3);
}

#[test]
fn out_of_range_action_is_clamped_and_counted() {
    let mut env = env();
    let before = env.step(&Action::hold(1.0)).unwrap().obs.arm.tip_pose.translation.vector;
    let step = env.step(&Action::EeDelta { xyz_m: [0.0, 0.0, 1.0], rpy_rad: [0.0; 3], gripper: 3.0 }).unwrap();
    assert!(step.clamped);
    assert_eq!(env.counters().clamped_actions, 1);
    let dz = step.obs.arm.tip_pose.translation.vector.z - before.z;
    assert!(dz > 0.03 && dz < 0.055, "a 1 m request moved the tip {dz} m (limit 0.05 m per step)");
    assert!(step.obs.arm.gripper_opening <= 1.0);
    // The limit itself, as a policy computing in f32 sends it, is not out of range.
    let at_limit = f64::from(0.05f32);
    let step = env.step(&Action::EeDelta { xyz_m: [0.0, 0.0, -at_limit], rpy_rad: [0.0; 3], gripper: 1.0 }).unwrap();
    assert!(!step.clamped);
    assert_eq!(env.counters().clamped_actions, 1);
}

#[test]
fn unknown_scene_and_bad_rates_are_errors() {
    let err = load_scene("no_such_scene").unwrap_err().to_string();
    assert!(err.contains("no_such_scene") && err.contains("pick_cube"), "{err}");
    let mut cfg = EnvConfig::new(load_scene("reach").unwrap());
    cfg.control_hz = 7.0;
    let err = Env::new(cfg).err().expect("7 Hz does not divide 500 Hz").to_string();
    assert!(err.contains("whole multiple"), "{err}");
    let mut env = Env::new(EnvConfig::new(load_scene("reach").unwrap())).unwrap();
    assert!(env.step(&Action::hold(1.0)).is_err(), "step before reset must be an error");
}
