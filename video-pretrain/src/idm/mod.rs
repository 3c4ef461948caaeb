//! Inverse-dynamics labels for action-free robot episodes (SS-ORL: Zheng et al., 2023,
//! “Semi-Supervised Offline Reinforcement Learning with Action-Free Trajectories”).
//!
//! An inverse-dynamics model (IDM) p(a_t | s_{t−1}, s_t, s_{t+1}) is trained by maximum
//! likelihood on episodes that have actions ([`train`]), then labels episodes that do not
//! ([`label`]): each frame's proxy action is the IDM's clipped mean, written into a new LeRobot
//! dataset with every frame marked recorded or proxy (`action.is_proxy`), so offline RL and BC
//! train on true + proxy labels.

pub mod data;
pub mod label;
pub mod model;
pub mod train;
