//! Collision groups and collider tags of the simulated scene.
//!
//! Arm links other than the fingers collide with nothing (the real arm's own geometry keeps
//! them clear of the table in the workspace, and skipping those contacts keeps a step cheap);
//! fingers collide with objects and the table; objects collide with everything.

use rapier3d::prelude::{Group, InteractionGroups, InteractionTestMode};

const G_ARM: Group = Group::GROUP_1;
const G_FINGER: Group = Group::GROUP_2;
const G_OBJECT: Group = Group::GROUP_3;
const G_TABLE: Group = Group::GROUP_4;

/// Arm links (not fingers): collide with objects only.
pub const ARM: InteractionGroups = InteractionGroups::new(G_ARM, G_OBJECT, InteractionTestMode::And);
/// Fingers: objects and table.
pub const FINGER: InteractionGroups =
    InteractionGroups::new(G_FINGER, G_OBJECT.union(G_TABLE), InteractionTestMode::And);
/// Dynamic and fixed objects: everything.
pub const OBJECT: InteractionGroups = InteractionGroups::new(G_OBJECT, Group::ALL, InteractionTestMode::And);
/// The table.
pub const TABLE: InteractionGroups =
    InteractionGroups::new(G_TABLE, G_OBJECT.union(G_FINGER), InteractionTestMode::And);
/// Visual-only markers: no contacts.
pub const MARKER: InteractionGroups = InteractionGroups::new(Group::NONE, Group::NONE, InteractionTestMode::And);

/// Collider `user_data` layout: bit 127 set = has a colour in bits 0..24 (RGB, 8 bits each).
const HAS_COLOR: u128 = 1 << 127;

/// Packs a linear RGB colour in [0, 1] into collider `user_data`.
pub fn color_tag(rgb: [f32; 3]) -> u128 {
    let q = |c: f32| (c.clamp(0.0, 1.0) * 255.0).round() as u128;
    HAS_COLOR | (q(rgb[0]) << 16) | (q(rgb[1]) << 8) | q(rgb[2])
}

/// Unpacks a colour from collider `user_data` (grey when none was set).
pub fn tag_color(tag: u128) -> [f32; 3] {
    if tag & HAS_COLOR == 0 {
        return [0.6, 0.6, 0.6];
    }
    let c = |shift: u32| ((tag >> shift) & 0xff) as f32 / 255.0;
    [c(16), c(8), c(0)]
}

/// The colour tag of arm links (dark grey, like the real arm).
pub const ARM_COLOR_TAG: u128 = HAS_COLOR | (0x38 << 16) | (0x38 << 8) | 0x3c;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn color_tag_round_trips_within_quantisation() {
        let c = [0.85, 0.12, 0.5];
        let back = tag_color(color_tag(c));
        for i in 0..3 {
            assert!((back[i] - c[i]).abs() <= 0.5 / 255.0 + 1e-6);
        }
        assert_eq!(tag_color(0), [0.6, 0.6, 0.6]);
    }
}
