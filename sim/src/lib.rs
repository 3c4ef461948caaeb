//! Armstack's simulator: a Rapier world with a WidowX-style arm, scenes as data, ray-cast
//! RGB-D cameras, scripted experts, an in-process (vectorised) environment, and a sim node
//! that runs one environment on the bus in real time.
//!
//! Frames: the world frame has z up, the table top at z = 0 and the arm base at the origin
//! facing +x. Angles are radians, lengths metres, times seconds unless a name says otherwise.

pub mod arm;
pub mod camera;
pub mod env;
pub mod expert;
pub mod node;
pub mod scene;
pub mod task;
pub mod vec_env;
pub mod world;

pub use camera::{CameraImage, CameraSpec};
pub use env::{Action, Env, EnvConfig, Observation, Step};
pub use expert::{DemoQuality, Expert, Mistake};
pub use scene::{load_scene, SceneInstance, SceneSpec};
pub use vec_env::VecEnv;
pub use world::{PhysicsConfig, SimError, SimWorld};
