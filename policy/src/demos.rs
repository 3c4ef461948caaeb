//! Scripted demonstrations: the scene's expert at a [`DemoQuality`] (expert, mixed with
//! recorded mistakes, or noisy), rolled out in a vectorised env and written as a LeRobot dataset
//! (state, object state, end-effector delta actions, rewards, cameras when the env renders
//! them). Each episode records the quality and its mistake (`armstack/demo_quality`,
//! `armstack/mistake`). Failed episodes stay in the dataset with `success = false`, as offline
//! RL wants.

use dataset::writer::{DatasetSpec, DatasetWriter, FrameRecord};
use sim::{Action, DemoQuality, EnvConfig, Expert, VecEnv};

use crate::error::Result;
use crate::features::{env_state_of, state_of};

/// What a collection produced.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CollectReport {
    /// Episodes written.
    pub episodes: u64,
    /// Successful episodes.
    pub successes: u64,
    /// Frames written.
    pub frames: u64,
}

/// The action row of an end-effector action: [dx, dy, dz, droll, dpitch, dyaw, gripper].
pub fn action_row(a: &Action) -> Vec<f32> {
    match a {
        Action::EeDelta { xyz_m, rpy_rad, gripper } => {
            xyz_m.iter().chain(rpy_rad).chain(std::iter::once(gripper)).map(|v| *v as f32).collect()
        }
        Action::Joint { q_rad, gripper } => q_rad.iter().chain(std::iter::once(gripper)).map(|v| *v as f32).collect(),
    }
}

/// Component names of an end-effector action row.
pub const EE_DELTA_ACTION_NAMES: [&str; 7] =
    ["delta_x_m", "delta_y_m", "delta_z_m", "delta_roll_rad", "delta_pitch_rad", "delta_yaw_rad", "gripper"];

/// The dataset layout for `env`'s observations with end-effector actions and cameras.
pub fn dataset_spec(env: &EnvConfig, cameras: Vec<dataset::writer::CameraFeature>) -> DatasetSpec {
    let objects: Vec<String> = env.scene.objects.iter().map(|o| o.name.clone()).collect();
    DatasetSpec {
        fps: env.control_hz,
        robot_type: "widowx250".into(),
        state_names: sim::node::joint_state_names(),
        action_names: EE_DELTA_ACTION_NAMES.map(String::from).to_vec(),
        env_state_names: crate::features::env_state_names(&objects),
        cameras,
        scene: Some(env.scene.name.clone()),
    }
}

/// The dataset camera features of `env`'s cameras (`observation.images.<name>`, their sizes).
pub fn camera_features(env: &EnvConfig) -> Vec<dataset::writer::CameraFeature> {
    env.cameras
        .iter()
        .map(|c| dataset::writer::CameraFeature {
            key: format!("{}{}", crate::features::IMAGE_KEY_PREFIX, c.name),
            width: c.width,
            height: c.height,
        })
        .collect()
}

/// Rolls out the expert at `quality` for `episodes` episodes (seeds `seed`, `seed + 1`, …; the
/// legacy noise knob is `DemoQuality::noisy(noise)`) on `num_envs` envs and appends them to
/// `writer`.
pub fn collect(
    env: &EnvConfig,
    writer: &mut DatasetWriter,
    episodes: u64,
    quality: DemoQuality,
    seed: u64,
    num_envs: usize,
) -> Result<CollectReport> {
    let n = num_envs.clamp(1, episodes.max(1) as usize);
    writer.set_expert_noise(Some(quality.noise()));
    writer.set_demo_quality(Some(quality.name()));
    let mut vec_env = VecEnv::new(env, n, 0)?;
    let mut report = CollectReport::default();
    let mut next = 0u64;
    let mut experts: Vec<Expert> = (0..n).map(|i| Expert::with_quality(&env.scene, quality, seed + i as u64)).collect();
    // Per env: (episode seed, frames so far, last observation).
    let mut slots = Vec::new();
    let items: Vec<(usize, u64)> = (0..n.min(episodes as usize)).map(|i| (i, seed + i as u64)).collect();
    next += items.len() as u64;
    slots.resize_with(n, || None);
    for (i, obs) in vec_env.reset_some(&items)? {
        experts[i].reset(seed + i as u64);
        slots[i] = Some((seed + i as u64, Vec::<FrameRecord>::new(), obs));
    }
    while slots.iter().any(Option::is_some) {
        let actions: Vec<Action> = slots
            .iter()
            .zip(experts.iter_mut())
            .map(|(s, e)| s.as_ref().map_or(Action::hold(1.0), |(_, _, obs)| e.act(obs)))
            .collect();
        let steps = vec_env.step(&actions)?;
        let mut resets = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            let Some((ep_seed, frames, obs)) = slots[i].as_mut() else { continue };
            // The demonstrator ends the recording once its attempt is over
            // ([`Expert::stopped`]): a truncation, as when a person ends an episode by hand.
            let stopped = !step.done && experts[i].stopped();
            frames.push(FrameRecord {
                state: state_of(obs),
                action: action_row(&actions[i]),
                env_state: env_state_of(obs),
                reward: step.reward as f32,
                done: step.done || stopped,
                truncated: step.truncated || stopped,
                success: step.success,
                images: obs.images.iter().map(|im| im.rgb.clone()).collect(),
            });
            *obs = step.obs;
            if step.done || stopped {
                writer.set_mistake(Some(experts[i].mistake().name()));
                writer.begin_episode(&obs.instruction)?;
                for f in frames.iter() {
                    writer.add_frame(f)?;
                }
                writer.end_episode(Some(*ep_seed), Some(step.success))?;
                report.episodes += 1;
                report.successes += u64::from(step.success);
                report.frames += frames.len() as u64;
                if next < episodes {
                    resets.push((i, seed + next));
                    next += 1;
                } else {
                    slots[i] = None;
                }
            }
        }
        for (i, obs) in vec_env.reset_some(&resets)? {
            let s = resets.iter().find(|(j, _)| *j == i).map_or(0, |(_, s)| *s);
            experts[i].reset(s);
            slots[i] = Some((s, Vec::new(), obs));
        }
    }
    tracing::info!(episodes = report.episodes, successes = report.successes, frames = report.frames, "collected");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use dataset::reader::Dataset;
    use sim::{DemoQuality, Expert, Mistake};

    use super::*;

    /// Mixed-quality demonstrations on the real sim into a real dataset: every episode stores the
    /// quality and the mistake its expert made (the one drawn from its seed), and they read back.
    #[test]
    fn collected_episodes_record_quality_and_mistake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = EnvConfig::new(sim::load_scene("pick_cube").expect("scene"));
        let mut writer = DatasetWriter::create(dir.path(), &dataset_spec(&env, Vec::new())).expect("create");
        let quality = DemoQuality::mixed(1.0);
        let report = collect(&env, &mut writer, 6, quality, 40, 3).expect("collect");
        writer.finish().expect("finish");
        let ds = Dataset::open(dir.path()).expect("open");
        assert_eq!(ds.episodes().len(), 6);
        let mut failed_mistakes = 0;
        for e in ds.episodes() {
            let seed = e.seed.expect("seed stored");
            let expected = Expert::planned_mistake(&env.scene, quality, seed);
            assert_ne!(expected, Mistake::None, "rate 1: every episode has a mistake");
            assert_eq!(e.mistake.as_deref(), Some(expected.name()), "episode of seed {seed}");
            assert_eq!(e.demo_quality.as_deref(), Some("mixed"));
            assert_eq!(e.expert_noise, Some(0.0));
            failed_mistakes += usize::from(e.success == Some(false));
            let last = e.to_index as usize - 1;
            assert!(ds.done(last), "episode of seed {seed} ends done");
            if e.success == Some(false) {
                // The demonstrator ended the recording once its plan was done: a truncation,
                // well before the time limit, not the arm standing still until it.
                assert!(ds.truncated(last), "failed episode of seed {seed} ends truncated");
                assert!(
                    e.length < u64::from(env.scene.max_steps),
                    "failed episode of seed {seed}: {} frames",
                    e.length
                );
            } else {
                assert!(!ds.truncated(last), "successful episode of seed {seed} ends in a termination");
            }
        }
        assert!(failed_mistakes > 0, "some mistakes of the six fail");
        assert_eq!(report.successes as usize, 6 - failed_mistakes);
    }
}
