//! Sampling one episode of a scene: object poses, colours, dynamics and lighting from a seed.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::color::named_color;
use super::spec::{ObjectKind, SceneSpec};

/// One object placed for an episode (world frame: z up, table top at z = 0).
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedObject {
    /// Name from the scene file.
    pub name: String,
    /// Object kind.
    pub kind: ObjectKind,
    /// Edge length / inner width / side / radius, metres.
    pub size_m: f64,
    /// Bin wall height, metres.
    pub height_m: f64,
    /// Mass after randomisation, kg.
    pub mass_kg: f64,
    /// Linear RGB colour in [0, 1] after jitter.
    pub color: [f32; 3],
    /// Colour name before jitter (for instructions and logs).
    pub color_name: String,
    /// Centre position, metres (for cubes: the resting centre, z = size/2).
    pub position_m: [f64; 3],
    /// Rotation about z, radians.
    pub yaw_rad: f64,
}

/// A directional light.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LightSpec {
    /// Unit vector pointing from the scene towards the light (world frame).
    pub direction: [f64; 3],
    /// Ambient level in [0, 1].
    pub ambient: f64,
}

/// Everything random about one episode, fixed by its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneInstance {
    /// The seed this instance was drawn from.
    pub seed: u64,
    /// Instruction with placeholders filled.
    pub instruction: String,
    /// Objects in scene-file order.
    pub objects: Vec<PlacedObject>,
    /// Friction coefficient of objects and fingers.
    pub friction: f64,
    /// Multiplier on motor stiffness and damping.
    pub motor_gain_scale: f64,
    /// Command latency, milliseconds.
    pub latency_ms: f64,
    /// Scene light.
    pub light: LightSpec,
    /// Initial arm joints, radians.
    pub initial_joints_rad: [f64; 6],
}

/// The default ready pose: finger tip about 0.2 m above the table, pointing down-forward.
pub const READY_POSE_RAD: [f64; 6] = [0.0, -0.6, 0.5, 0.0, 1.2, 0.0];

/// Radius of the circle around an object's table footprint, metres (0 for markers in the air).
fn footprint_radius_m(kind: ObjectKind, size_m: f64) -> f64 {
    match kind {
        ObjectKind::Cube | ObjectKind::Pad => size_m * std::f64::consts::FRAC_1_SQRT_2,
        ObjectKind::Bin => (size_m / 2.0 + crate::world::BIN_WALL_M) * std::f64::consts::SQRT_2,
        ObjectKind::Marker => 0.0,
    }
}

fn uniform(rng: &mut ChaCha8Rng, r: [f64; 2]) -> f64 {
    if r[1] > r[0] {
        rng.random_range(r[0]..=r[1])
    } else {
        r[0]
    }
}

impl SceneInstance {
    /// Draws an episode of `spec` from `seed`. The same (spec, seed) always gives the same instance.
    pub fn sample(spec: &SceneSpec, seed: u64) -> SceneInstance {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Choices: draw without repetition inside a group.
        let mut chosen: Vec<(String, String)> = Vec::new();
        let mut used: Vec<(String, String)> = Vec::new();
        for choice in &spec.choices {
            let mut options: Vec<&String> = choice
                .options
                .iter()
                .filter(|o| choice.group.is_empty() || !used.iter().any(|(g, v)| g == &choice.group && v == *o))
                .collect();
            if options.is_empty() {
                options = choice.options.iter().collect();
            }
            options.shuffle(&mut rng);
            let pick = options[0].clone();
            used.push((choice.group.clone(), pick.clone()));
            chosen.push((choice.name.clone(), pick));
        }
        let lookup = |name: &str| chosen.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let r = &spec.randomization;
        let friction = uniform(&mut rng, r.friction);
        let mass_scale = uniform(&mut rng, r.mass_scale);
        let motor_gain_scale = uniform(&mut rng, r.motor_gain_scale);
        let latency_ms = uniform(&mut rng, r.latency_ms);
        let azimuth = uniform(&mut rng, r.light_azimuth_rad);
        let elevation = uniform(&mut rng, r.light_elevation_rad);
        let ambient = uniform(&mut rng, r.ambient);
        let light = LightSpec {
            direction: [elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()],
            ambient,
        };

        let mut objects: Vec<PlacedObject> = Vec::with_capacity(spec.objects.len());
        for obj in &spec.objects {
            let color_name = match obj.color.strip_prefix('$') {
                Some(choice) => lookup(choice).unwrap_or_else(|| "grey".to_string()),
                None => obj.color.clone(),
            };
            let base = named_color(&color_name).unwrap_or([0.5, 0.5, 0.5]);
            let mut color = base;
            for c in &mut color {
                let jitter =
                    if r.color_jitter > 0.0 { rng.random_range(-r.color_jitter..=r.color_jitter) } else { 0.0 };
                *c = (*c + jitter as f32).clamp(0.0, 1.0);
            }
            // Rejection sampling: table objects never overlap (footprint circles plus 1 cm), and
            // keep `min_separation_m` between centres; falls back to the last draw after 200 tries.
            let mut xy = [0.0; 2];
            let radius = footprint_radius_m(obj.kind, obj.size_m);
            for _ in 0..200 {
                xy = [uniform(&mut rng, obj.x_m), uniform(&mut rng, obj.y_m)];
                let clear = objects.iter().all(|o| {
                    let d = ((o.position_m[0] - xy[0]).powi(2) + (o.position_m[1] - xy[1]).powi(2)).sqrt();
                    let needed = if radius > 0.0 && footprint_radius_m(o.kind, o.size_m) > 0.0 {
                        radius + footprint_radius_m(o.kind, o.size_m) + 0.01
                    } else {
                        0.0
                    };
                    d >= obj.min_separation_m.max(needed)
                });
                if clear {
                    break;
                }
            }
            let z = match obj.kind {
                ObjectKind::Cube => obj.size_m / 2.0,
                ObjectKind::Bin => 0.0,
                ObjectKind::Pad => 0.0005,
                ObjectKind::Marker => uniform(&mut rng, obj.z_m),
            };
            let yaw_rad = uniform(&mut rng, obj.yaw_rad);
            objects.push(PlacedObject {
                name: obj.name.clone(),
                kind: obj.kind,
                size_m: obj.size_m,
                height_m: obj.height_m,
                mass_kg: obj.mass_kg * mass_scale,
                color,
                color_name,
                position_m: [xy[0], xy[1], z],
                yaw_rad,
            });
        }
        let mut initial = spec.initial_joints_rad.unwrap_or(READY_POSE_RAD);
        if spec.initial_joint_noise_rad > 0.0 {
            for q in &mut initial {
                *q += rng.random_range(-spec.initial_joint_noise_rad..=spec.initial_joint_noise_rad);
            }
        }
        let mut instruction = spec.instruction.clone();
        for (name, value) in &chosen {
            instruction = instruction.replace(&format!("{{{name}}}"), value);
        }
        SceneInstance {
            seed,
            instruction,
            objects,
            friction,
            motor_gain_scale,
            latency_ms,
            light,
            initial_joints_rad: initial,
        }
    }

    /// The placed object called `name`.
    pub fn object(&self, name: &str) -> Option<&PlacedObject> {
        self.objects.iter().find(|o| o.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::load_scene;

    #[test]
    fn same_seed_same_instance_and_seeds_differ() {
        let spec = load_scene("sort").unwrap();
        let a = SceneInstance::sample(&spec, 7);
        assert_eq!(a, SceneInstance::sample(&spec, 7));
        assert_ne!(a.objects[0].position_m, SceneInstance::sample(&spec, 8).objects[0].position_m);
    }

    #[test]
    fn grouped_choices_never_repeat_and_fill_instruction() {
        let spec = load_scene("sort").unwrap();
        for seed in 0..50 {
            let inst = SceneInstance::sample(&spec, seed);
            assert!(!inst.instruction.contains('{'), "{}", inst.instruction);
            let a = &inst.object("cube_a").unwrap().color_name;
            let b = &inst.object("cube_b").unwrap().color_name;
            assert_ne!(a, b);
            assert!(inst.instruction.contains(&format!("the {a} cube")));
            let cube_a = inst.object("cube_a").unwrap().position_m;
            let cube_b = inst.object("cube_b").unwrap().position_m;
            let d = ((cube_a[0] - cube_b[0]).powi(2) + (cube_a[1] - cube_b[1]).powi(2)).sqrt();
            assert!(d >= 0.08 - 1e-9, "seed {seed}: cubes {d} m apart");
            for bin in ["bin_a", "bin_b"] {
                let b = inst.object(bin).unwrap().position_m;
                for c in [cube_a, cube_b] {
                    let d = ((b[0] - c[0]).powi(2) + (b[1] - c[1]).powi(2)).sqrt();
                    let needed = footprint_radius_m(ObjectKind::Bin, 0.11) + footprint_radius_m(ObjectKind::Cube, 0.04);
                    assert!(d >= needed, "seed {seed}: a cube overlaps {bin} ({d} m < {needed} m)");
                }
            }
        }
    }
}
