//! Ray-cast cameras: depth matches the scene geometry, and intrinsics/extrinsics project world
//! points onto the pixels that show them.

use nalgebra::{Point3, Vector3};
use sim::camera::{render, CameraSpec};
use sim::{load_scene, PhysicsConfig, SceneInstance, SimWorld};

fn world(scene: &str, seed: u64) -> SimWorld {
    SimWorld::new(SceneInstance::sample(&load_scene(scene).unwrap(), seed), PhysicsConfig::default()).unwrap()
}

#[test]
fn depth_on_the_table_plane_matches_geometry_within_1_cm() {
    let w = world("reach", 0);
    let cam = CameraSpec::front(128, 128);
    let img = render(&w, &cam);
    let k = img.intrinsics;
    let pose = img.pose_world;
    let mut checked = 0;
    let mut max_err: f64 = 0.0;
    for v in (0..128).step_by(3) {
        for u in (0..128).step_by(3) {
            // The pixel's ray in the world, with unit z in the camera frame.
            let d_cam = Vector3::new((u as f64 + 0.5 - k.cx) / k.fx, (v as f64 + 0.5 - k.cy) / k.fy, 1.0);
            let d = pose.rotation * d_cam;
            let o = pose.translation.vector;
            if d.z >= -1e-6 {
                continue;
            }
            let t = -o.z / d.z; // ray parameter = camera-frame depth at the plane z = 0
            let hit = o + d * t;
            // Keep points on the table top, clear of the arm's base and of every object.
            let clear_of_arm = (hit.x.powi(2) + hit.y.powi(2)).sqrt() > 0.15;
            let clear_of_objects = w
                .instance
                .objects
                .iter()
                .all(|o| ((o.position_m[0] - hit.x).powi(2) + (o.position_m[1] - hit.y).powi(2)).sqrt() > 0.1);
            let on_table = hit.x > -0.29 && hit.x < 0.89 && hit.y.abs() < 0.59;
            if !(clear_of_arm && clear_of_objects && on_table) {
                continue;
            }
            let depth = img.depth_m[v * 128 + u] as f64;
            if depth == 0.0 || depth < t - 0.05 {
                continue; // occluded by an arm link above the table
            }
            let err = (depth - t).abs();
            max_err = max_err.max(err);
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} table pixels checked");
    assert!(max_err < 0.01, "table depth off by up to {max_err} m");
}

#[test]
fn extrinsics_project_the_cube_onto_its_colour() {
    let w = world("pick_cube", 4);
    let cube = w.instance.object("cube").unwrap().clone();
    {
        let img = render(&w, &CameraSpec::front(128, 128));
        let k = img.intrinsics;
        // The top face centre of the cube, projected with the published intrinsics/extrinsics.
        let top = Point3::new(cube.position_m[0], cube.position_m[1], cube.size_m);
        let p = img.pose_world.inverse_transform_point(&top);
        assert!(p.z > 0.0, "cube behind the camera");
        let u = (k.fx * p.x / p.z + k.cx) as usize;
        let v = (k.fy * p.y / p.z + k.cy) as usize;
        assert!(u < 128 && v < 128, "cube projects outside the image ({u}, {v})");
        let px = &img.rgb[(v * 128 + u) * 3..(v * 128 + u) * 3 + 3];
        // The cube's dominant channel is the brightest at that pixel (shading keeps hue).
        let c = cube.color;
        let dominant = (0..3).max_by(|a, b| c[*a].total_cmp(&c[*b])).unwrap();
        let brightest = (0..3).max_by_key(|i| px[*i]).unwrap();
        assert_eq!(dominant, brightest, "{} cube: pixel ({u}, {v}) is {px:?}", cube.color_name);
        // And the depth there is the distance to the top face along the optical axis.
        let depth = img.depth_m[v * 128 + u] as f64;
        assert!((depth - p.z).abs() < 0.01, "depth {depth} vs {}", p.z);
    }
}

#[test]
fn wrist_camera_moves_with_the_gripper() {
    let mut w = world("reach", 1);
    let cam = CameraSpec::wrist(64, 64);
    let before = cam.pose_world(&w);
    let q = [0.5, -0.3, 0.4, 0.0, 1.0, 0.0];
    w.arm.set_joint_positions(&mut w.physics, &q, 0.03);
    let after = cam.pose_world(&w);
    let tip = w.kinematics().fk(&q);
    let expected = tip
        * match cam.mount {
            sim::camera::CameraMount::Wrist(m) => m,
            sim::camera::CameraMount::World(_) => unreachable!(),
        };
    // Joint coordinates are stored as f32 in Rapier: agree to 0.1 mm.
    assert!((after.translation.vector - expected.translation.vector).norm() < 1e-4);
    assert!((after.translation.vector - before.translation.vector).norm() > 0.05);
}

#[test]
fn analytic_table_pixels_equal_rapier_ray_casts_on_the_table_box() {
    // The renderer intersects the table top analytically; Rapier's own ray cast against the
    // table's box (nothing excluded) must give the same depth wherever the table is seen.
    let w = world("place_in_bin", 3);
    for cam in [CameraSpec::front(96, 96), CameraSpec::wrist(96, 96)] {
        let img = render(&w, &cam);
        let (k, pose) = (img.intrinsics, img.pose_world);
        let query = w.physics.query_pipeline();
        let mut compared = 0;
        for v in (0..96).step_by(4) {
            for u in (0..96).step_by(4) {
                let d_cam = Vector3::new((u as f64 + 0.5 - k.cx) / k.fx, (v as f64 + 0.5 - k.cy) / k.fy, 1.0);
                let d = pose.rotation * d_cam;
                let o = pose.translation.vector;
                let ray = rapier3d::prelude::Ray::new(
                    rapier3d::prelude::Vector::new(o.x as f32, o.y as f32, o.z as f32),
                    rapier3d::prelude::Vector::new(d.x as f32, d.y as f32, d.z as f32),
                );
                let Some((handle, toi)) = query.cast_ray(&ray, 3.0, true) else { continue };
                if handle != w.table {
                    continue;
                }
                let depth = img.depth_m[v * 96 + u];
                assert!((depth - toi).abs() < 1e-3, "{} ({u}, {v}): rendered {depth} vs rapier {toi}", cam.name);
                compared += 1;
            }
        }
        assert!(compared > 100, "{}: only {compared} table pixels compared", cam.name);
    }
}
