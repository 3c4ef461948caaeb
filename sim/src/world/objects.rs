//! Table and scene objects as Rapier bodies and colliders.

use rapier3d::prelude::*;

use crate::scene::{ObjectKind, PlacedObject};

use super::collision;

/// Half extents of the table top (m): 1.2 × 1.2, 4 cm thick, top surface at z = 0.
pub const TABLE_HALF_EXTENTS_M: [f32; 3] = [0.6, 0.6, 0.02];
/// Table colour (light wood).
pub const TABLE_COLOR: [f32; 3] = [0.78, 0.68, 0.52];
/// Bin wall thickness, metres.
pub const BIN_WALL_M: f64 = 0.006;

/// An object inserted in the world.
#[derive(Clone, Debug)]
pub struct ObjectBody {
    /// Scene object name.
    pub name: String,
    /// Kind.
    pub kind: ObjectKind,
    /// Its rigid body.
    pub body: RigidBodyHandle,
}

/// Inserts the fixed table; returns its collider.
pub fn insert_table(world: &mut PhysicsWorld, friction: f64) -> ColliderHandle {
    let [hx, hy, hz] = TABLE_HALF_EXTENTS_M;
    let body = RigidBodyBuilder::fixed().translation(Vector::new(0.3, 0.0, -hz));
    let collider = ColliderBuilder::cuboid(hx, hy, hz)
        .friction(friction as f32)
        .collision_groups(collision::TABLE)
        .user_data(collision::color_tag(TABLE_COLOR));
    world.insert(body, collider).1
}

/// Inserts one placed object.
pub fn insert_object(world: &mut PhysicsWorld, obj: &PlacedObject, friction: f64) -> ObjectBody {
    let tag = collision::color_tag(obj.color);
    let p = obj.position_m;
    let pose = Pose::from_parts(
        Vector::new(p[0] as f32, p[1] as f32, p[2] as f32),
        Rotation::from_rotation_z(obj.yaw_rad as f32),
    );
    let s = obj.size_m as f32;
    let body = match obj.kind {
        ObjectKind::Cube => {
            let rb = RigidBodyBuilder::dynamic().pose(pose).can_sleep(true);
            let volume = s * s * s;
            let collider = ColliderBuilder::cuboid(s / 2.0, s / 2.0, s / 2.0)
                .density(obj.mass_kg as f32 / volume)
                .friction(friction as f32)
                .collision_groups(collision::OBJECT)
                .user_data(tag);
            world.insert(rb, collider).0
        }
        ObjectKind::Bin => {
            let body = world.insert_body(RigidBodyBuilder::fixed().pose(pose));
            let w = BIN_WALL_M as f32;
            let h = obj.height_m as f32;
            let half = s / 2.0 + w / 2.0;
            let parts = [
                // floor
                (Vector::new(0.0, 0.0, w / 2.0), Vector::new(s / 2.0 + w, s / 2.0 + w, w / 2.0)),
                (Vector::new(half, 0.0, h / 2.0), Vector::new(w / 2.0, s / 2.0 + w, h / 2.0)),
                (Vector::new(-half, 0.0, h / 2.0), Vector::new(w / 2.0, s / 2.0 + w, h / 2.0)),
                (Vector::new(0.0, half, h / 2.0), Vector::new(s / 2.0, w / 2.0, h / 2.0)),
                (Vector::new(0.0, -half, h / 2.0), Vector::new(s / 2.0, w / 2.0, h / 2.0)),
            ];
            for (center, he) in parts {
                let c = ColliderBuilder::cuboid(he.x, he.y, he.z)
                    .translation(center)
                    .friction(friction as f32)
                    .collision_groups(collision::OBJECT)
                    .user_data(tag);
                world.insert_collider(c, Some(body));
            }
            body
        }
        ObjectKind::Pad => {
            let rb = RigidBodyBuilder::fixed().pose(pose);
            let collider =
                ColliderBuilder::cuboid(s / 2.0, s / 2.0, 0.0005).collision_groups(collision::MARKER).user_data(tag);
            world.insert(rb, collider).0
        }
        ObjectKind::Marker => {
            let rb = RigidBodyBuilder::fixed().pose(pose);
            let collider = ColliderBuilder::ball(s).sensor(true).collision_groups(collision::MARKER).user_data(tag);
            world.insert(rb, collider).0
        }
    };
    ObjectBody { name: obj.name.clone(), kind: obj.kind, body }
}
