//! Cameras rendered by ray casting through Rapier's query pipeline: RGB with per-object
//! colours and Lambert shading from one directional light, and metric depth.
//!
//! Camera frame (OpenCV convention): +z looks forward, +x to the right of the image, +y down.
//! `pose_world` maps camera-frame points to the world frame. Depth is the z coordinate of the
//! hit point in the camera frame, metres; 0 where the ray hits nothing within `far_m`.

use nalgebra::{Isometry3, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};
use rapier3d::prelude::*;

use crate::world::{collision, SimWorld};

/// Where a camera is attached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CameraMount {
    /// Fixed in the world: the camera pose in the world frame.
    World(Isometry3<f64>),
    /// On the wrist: the camera pose in the finger-tip (ee_gripper) frame.
    Wrist(Isometry3<f64>),
}

/// A camera's description.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraSpec {
    /// Camera name (`front`, `wrist`): the topic is `camera/<name>`.
    pub name: String,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Vertical field of view, radians.
    pub fov_y_rad: f64,
    /// Mount.
    pub mount: CameraMount,
    /// Maximal depth, metres.
    pub far_m: f64,
}

/// Pinhole intrinsics, pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    /// Focal length along x, pixels.
    pub fx: f64,
    /// Focal length along y, pixels.
    pub fy: f64,
    /// Principal point x, pixels.
    pub cx: f64,
    /// Principal point y, pixels.
    pub cy: f64,
}

/// A rendered RGB-D image.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraImage {
    /// Camera name.
    pub name: String,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// sRGB, 8 bits per channel, row-major, 3 bytes per pixel.
    pub rgb: Vec<u8>,
    /// Depth, metres, row-major (0 = no hit).
    pub depth_m: Vec<f32>,
    /// Intrinsics.
    pub intrinsics: Intrinsics,
    /// Camera pose in the world frame (OpenCV camera frame).
    pub pose_world: Isometry3<f64>,
}

/// A camera pose from an eye point looking at a target, world z up, in the OpenCV convention.
pub fn look_at(eye: Point3<f64>, target: Point3<f64>) -> Isometry3<f64> {
    let z = (target - eye).normalize();
    let up = Vector3::z();
    let x = z.cross(&up);
    let x = if x.norm() < 1e-9 { Vector3::x() } else { x.normalize() }; // right
    let y = z.cross(&x); // down
    let rot = Rotation3::from_matrix_unchecked(nalgebra::Matrix3::from_columns(&[x, y, z]));
    Isometry3::from_parts(Translation3::from(eye.coords), UnitQuaternion::from_rotation_matrix(&rot))
}

impl CameraSpec {
    /// The fixed over-the-shoulder camera: behind and above the arm base, looking at the workspace.
    pub fn front(width: u32, height: u32) -> CameraSpec {
        CameraSpec {
            name: "front".into(),
            width,
            height,
            fov_y_rad: 55f64.to_radians(),
            mount: CameraMount::World(look_at(Point3::new(-0.12, -0.28, 0.52), Point3::new(0.30, 0.0, 0.0))),
            far_m: 3.0,
        }
    }

    /// The wrist camera: above the gripper, looking forward and down past the fingers.
    pub fn wrist(width: u32, height: u32) -> CameraSpec {
        // In the tip frame: x forward out of the gripper, z up (at the home pose).
        let eye = Point3::new(-0.10, 0.0, 0.065);
        let target = Point3::new(0.06, 0.0, -0.02);
        let z = (target - eye).normalize();
        let x = Vector3::new(0.0, -1.0, 0.0); // image right = tip −y
        let y = z.cross(&x);
        let x = y.cross(&z);
        let rot = Rotation3::from_matrix_unchecked(nalgebra::Matrix3::from_columns(&[x, y, z]));
        CameraSpec {
            name: "wrist".into(),
            width,
            height,
            fov_y_rad: 75f64.to_radians(),
            mount: CameraMount::Wrist(Isometry3::from_parts(
                Translation3::from(eye.coords),
                UnitQuaternion::from_rotation_matrix(&rot),
            )),
            far_m: 2.0,
        }
    }

    /// Intrinsics from the field of view (square pixels, centred principal point).
    pub fn intrinsics(&self) -> Intrinsics {
        let fy = 0.5 * self.height as f64 / (0.5 * self.fov_y_rad).tan();
        Intrinsics { fx: fy, fy, cx: 0.5 * self.width as f64, cy: 0.5 * self.height as f64 }
    }

    /// The camera pose in the world for the world's current arm state.
    pub fn pose_world(&self, world: &SimWorld) -> Isometry3<f64> {
        match self.mount {
            CameraMount::World(p) => p,
            CameraMount::Wrist(p) => world.arm_state().tip_pose * p,
        }
    }
}

/// Linear → sRGB 8-bit lookup over 1024 linear levels.
fn srgb_lut() -> &'static [u8; 1024] {
    static LUT: std::sync::OnceLock<[u8; 1024]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut lut = [0u8; 1024];
        for (i, v) in lut.iter_mut().enumerate() {
            let l = i as f64 / 1023.0;
            let s = if l <= 0.003_130_8 { 12.92 * l } else { 1.055 * l.powf(1.0 / 2.4) - 0.055 };
            *v = (s * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        lut
    })
}

/// Renders `cam` from `world` into `out` (buffers are reused when the size matches).
pub fn render_into(world: &SimWorld, cam: &CameraSpec, out: &mut CameraImage) {
    let (w, h) = (cam.width as usize, cam.height as usize);
    let k = cam.intrinsics();
    let pose = cam.pose_world(world);
    out.name.clone_from(&cam.name);
    out.width = cam.width;
    out.height = cam.height;
    out.intrinsics = k;
    out.pose_world = pose;
    out.rgb.resize(w * h * 3, 0);
    out.depth_m.resize(w * h, 0.0);

    let light = world.instance.light;
    let l = Vector::new(light.direction[0] as f32, light.direction[1] as f32, light.direction[2] as f32).normalize();
    let ambient = light.ambient as f32;
    let lut = srgb_lut();
    let rot = pose.rotation.to_rotation_matrix();
    let m = rot.matrix();
    let origin = Vector::new(pose.translation.x as f32, pose.translation.y as f32, pose.translation.z as f32);
    // Camera axes in the world frame (columns of R).
    let ax = Vector::new(m[(0, 0)] as f32, m[(1, 0)] as f32, m[(2, 0)] as f32);
    let ay = Vector::new(m[(0, 1)] as f32, m[(1, 1)] as f32, m[(2, 1)] as f32);
    let az = Vector::new(m[(0, 2)] as f32, m[(1, 2)] as f32, m[(2, 2)] as f32);
    // The table is the largest box in the scene and its bounding box encloses everything, so
    // every ray would descend into it: it is left out of the query and its top face, the plane
    // z = 0 within the table's extent, is intersected analytically (the same hit a ray cast on
    // the box returns for cameras above the table). Measured: see `armstack bench sim`.
    let query = world.physics.query_pipeline_with_filter(QueryFilter::default().exclude_collider(world.table));
    let table_color = collision::tag_color(world.physics.colliders.get(world.table).map_or(0, |c| c.user_data));
    let [hx, hy, _] = crate::world::TABLE_HALF_EXTENTS_M;
    let table_center = world.physics.colliders.get(world.table).map_or(Vector::ZERO, |c| c.translation());
    let table_hit = |dir: Vector| -> Option<f32> {
        if dir.z >= -1e-9 || origin.z <= 0.0 {
            return None;
        }
        let t = -origin.z / dir.z;
        let p = origin + dir * t;
        ((p.x - table_center.x).abs() <= hx && (p.y - table_center.y).abs() <= hy).then_some(t)
    };
    let far = cam.far_m as f32;
    let (inv_fx, inv_fy) = (1.0 / k.fx as f32, 1.0 / k.fy as f32);
    for v in 0..h {
        let yc = (v as f32 + 0.5 - k.cy as f32) * inv_fy;
        for u in 0..w {
            let xc = (u as f32 + 0.5 - k.cx as f32) * inv_fx;
            // Unnormalised direction with unit z in the camera frame: toi is then the depth.
            let dir = ax * xc + ay * yc + az;
            let ray = Ray::new(origin, dir);
            let i = v * w + u;
            let table_t = table_hit(dir).filter(|t| *t <= far);
            let object = query.cast_ray_and_get_normal(&ray, table_t.unwrap_or(far), true);
            let (rgb, depth) = match (object, table_t) {
                (Some((handle, hit)), _) => {
                    let tag = world.physics.colliders.get(handle).map_or(0, |c| c.user_data);
                    let base = collision::tag_color(tag);
                    let n = hit.normal;
                    let lambert = n.dot(l).max(0.0);
                    let shade = ambient + (1.0 - ambient) * lambert;
                    ([base[0] * shade, base[1] * shade, base[2] * shade], hit.time_of_impact)
                }
                (None, Some(t)) => {
                    let shade = ambient + (1.0 - ambient) * l.z.max(0.0);
                    ([table_color[0] * shade, table_color[1] * shade, table_color[2] * shade], t)
                }
                (None, None) => {
                    // Background: a soft grey gradient, brighter towards the top of the image.
                    let g = 0.55 + 0.25 * (1.0 - v as f32 / h as f32);
                    ([g * 0.92, g * 0.95, g], 0.0)
                }
            };
            let px = &mut out.rgb[i * 3..i * 3 + 3];
            for c in 0..3 {
                px[c] = lut[((rgb[c].clamp(0.0, 1.0)) * 1023.0) as usize];
            }
            out.depth_m[i] = depth;
        }
    }
}

/// Renders `cam` from `world` into a new image.
pub fn render(world: &SimWorld, cam: &CameraSpec) -> CameraImage {
    let mut out = CameraImage {
        name: String::new(),
        width: 0,
        height: 0,
        rgb: Vec::new(),
        depth_m: Vec::new(),
        intrinsics: cam.intrinsics(),
        pose_world: Isometry3::identity(),
    };
    render_into(world, cam, &mut out);
    out
}
