//! Scripted experts on the real simulator: the clean expert succeeds on every scene, the
//! `expert` level is varied yet always correct and short, the `mixed` level contains recorded
//! mistakes of every kind, the noisy level fails by mistakes rather than by dithering into a
//! timeout, and every emitted action is inside the env's limits.

use sim::env::{MAX_DELTA_RPY_RAD, MAX_DELTA_XYZ_M};
use sim::{load_scene, Action, DemoQuality, Env, EnvConfig, Expert, Mistake};

/// One rolled-out episode.
#[derive(Clone, Debug)]
struct Episode {
    success: bool,
    steps: u32,
    mistake: Mistake,
    /// The expert had finished its plan when the episode ended.
    finished: bool,
}

fn rollout(scene: &str, quality: DemoQuality, seeds: std::ops::Range<u64>) -> Vec<Episode> {
    rollout_until(scene, quality, seeds, true)
}

/// Rolls episodes out; with `stop`, an episode also ends when the demonstrator stops recording.
fn rollout_until(scene: &str, quality: DemoQuality, seeds: std::ops::Range<u64>, stop: bool) -> Vec<Episode> {
    let spec = load_scene(scene).expect("scene");
    let mut env = Env::new(EnvConfig::new(spec.clone())).expect("env");
    let mut expert = Expert::with_quality(&spec, quality, seeds.start);
    seeds
        .map(|seed| {
            expert.reset(seed);
            let mut obs = env.reset(seed).expect("reset");
            loop {
                let action = expert.act(&obs);
                if let Action::EeDelta { xyz_m, rpy_rad, gripper } = action {
                    assert!(xyz_m.iter().all(|v| v.abs() <= MAX_DELTA_XYZ_M), "{scene} seed {seed}: {action:?}");
                    assert!(rpy_rad.iter().all(|v| v.abs() <= MAX_DELTA_RPY_RAD), "{scene} seed {seed}: {action:?}");
                    assert!((0.0..=1.0).contains(&gripper), "{scene} seed {seed}: {action:?}");
                }
                let step = env.step(&action).expect("step");
                assert!(!step.clamped, "{scene} seed {seed}: the env clamped the expert's action {action:?}");
                obs = step.obs;
                // A recording ends at the scene's end or when the demonstrator stops recording
                // after its plan (`Expert::stopped`), as `record` and `demo` store it.
                if step.done || (stop && expert.stopped()) {
                    return Episode {
                        success: step.success,
                        steps: obs.step,
                        mistake: expert.mistake(),
                        finished: expert.finished(),
                    };
                }
            }
        })
        .collect()
}

fn success_rate(episodes: &[Episode]) -> f64 {
    episodes.iter().filter(|e| e.success).count() as f64 / episodes.len().max(1) as f64
}

fn mean_steps(episodes: &[Episode]) -> f64 {
    episodes.iter().map(|e| f64::from(e.steps)).sum::<f64>() / episodes.len().max(1) as f64
}

#[test]
fn every_expert_succeeds_on_at_least_90_percent_of_20_seeds() {
    for scene in sim::scene::builtin_names() {
        let rate = success_rate(&rollout(scene, DemoQuality::noisy(0.0), 0..20));
        println!("{scene}: {:.0}%", rate * 100.0);
        assert!(rate >= 0.9, "{scene}: expert success {rate} < 0.9");
    }
}

#[test]
fn expert_level_succeeds_on_every_seed_and_stays_as_short_as_the_clean_expert() {
    for scene in sim::scene::builtin_names() {
        let clean = mean_steps(&rollout(scene, DemoQuality::noisy(0.0), 0..20));
        let episodes = rollout(scene, DemoQuality::Expert, 0..20);
        let failed: Vec<usize> = (0..20).filter(|i| !episodes[*i].success).collect();
        let steps = mean_steps(&episodes);
        println!("{scene}: clean {clean:.1} steps, expert level {steps:.1} steps, failed seeds {failed:?}");
        assert!(failed.is_empty(), "{scene}: expert level failed on seeds {failed:?}");
        assert!(episodes.iter().all(|e| e.mistake == Mistake::None), "{scene}: expert level made a mistake");
        assert!(steps <= clean * 1.25, "{scene}: expert level mean length {steps:.1} vs clean {clean:.1}");
    }
}

#[test]
fn expert_level_varies_the_plan_but_the_clean_expert_does_not() {
    let spec = load_scene("pick_cube").expect("scene");
    let mut env = Env::new(EnvConfig::new(spec.clone())).expect("env");
    let first_action = |quality: DemoQuality, expert_seed: u64, env: &mut Env| {
        let obs = env.reset(3).expect("reset");
        Expert::with_quality(&spec, quality, expert_seed).act(&obs)
    };
    let (a, b) = (first_action(DemoQuality::Expert, 1, &mut env), first_action(DemoQuality::Expert, 2, &mut env));
    assert_ne!(a, b, "expert level: different episode seeds should vary the plan");
    let (a, b) = (first_action(DemoQuality::noisy(0.0), 1, &mut env), first_action(DemoQuality::noisy(0.0), 2, &mut env));
    assert_eq!(a, b, "noise 0 is the deterministic clean expert");
}

#[test]
fn mixed_level_contains_every_mistake_kind_and_some_fail() {
    let mut kinds = std::collections::BTreeSet::new();
    let (mut with_mistake, mut total, mut mistake_failures) = (0, 0, 0);
    for (k, scene) in ["pick_cube", "place_in_bin", "sort", "push_to_target", "reach"].into_iter().enumerate() {
        // Different seeds per scene: the mistake draw depends on the seed only.
        let first = 20 * k as u64;
        let episodes = rollout(scene, DemoQuality::mixed(0.5), first..first + 20);
        for e in &episodes {
            total += 1;
            if e.mistake != Mistake::None {
                with_mistake += 1;
                mistake_failures += usize::from(!e.success);
                kinds.insert(e.mistake.name());
            }
        }
        // (The clean push expert itself fails about one seed in 50.)
        let clean: Vec<Episode> = episodes.iter().filter(|e| e.mistake == Mistake::None).cloned().collect();
        assert!(success_rate(&clean) >= 0.9, "{scene}: mixed level's mistake-free episodes succeed: {clean:?}");
    }
    let share = with_mistake as f64 / total as f64;
    println!("mistakes in {with_mistake}/{total} episodes, {mistake_failures} of them failed; kinds {kinds:?}");
    assert!((0.35..=0.65).contains(&share), "mistake share {share} at rate 0.5");
    let expected: std::collections::BTreeSet<&str> = Mistake::NAMES.iter().copied().filter(|n| *n != "none").collect();
    assert_eq!(kinds, expected, "every mistake kind appears");
    assert!(mistake_failures > 0 && mistake_failures < with_mistake, "some but not all mistakes end in failure");
}

#[test]
fn the_demonstrator_stops_recording_after_a_failed_attempt_and_never_cuts_a_success_short() {
    // Every episode has a mistake, so many fail; played to the scene's end instead, the same
    // episodes (same seeds) succeed and fail alike, and those that fail with the plan done
    // stood still for the rest of the time limit.
    for scene in ["pick_cube", "place_in_bin", "sort"] {
        let max_steps = load_scene(scene).expect("scene").max_steps;
        let stopped = rollout_until(scene, DemoQuality::mixed(1.0), 0..16, true);
        let to_the_end = rollout_until(scene, DemoQuality::mixed(1.0), 0..16, false);
        let mut cut = 0;
        for (seed, (a, b)) in stopped.iter().zip(&to_the_end).enumerate() {
            assert_eq!(a.success, b.success, "{scene} seed {seed}: {a:?} vs {b:?}");
            if a.success {
                assert_eq!(a.steps, b.steps, "{scene} seed {seed}: a success is not cut");
            } else if a.finished {
                assert!(a.steps < b.steps && b.steps == max_steps, "{scene} seed {seed}: {a:?} vs {b:?}");
                cut += 1;
            }
        }
        assert!(cut > 0, "{scene}: some failed attempts end before the time limit");
    }
    // The noisy level records on: its corrections at the last waypoint still succeed at times.
    let noisy = |stop| rollout_until("reach", DemoQuality::noisy(1.0), 0..50, stop);
    let (a, b) = (noisy(true), noisy(false));
    for (seed, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a.steps == b.steps && a.success == b.success, "reach at noise 1, seed {seed}: {a:?} vs {b:?}");
    }
}

#[test]
fn noisy_expert_fails_by_mistakes_not_by_dithering_into_timeouts() {
    // A failure where the expert had not finished its plan is a time-out (it was still trying
    // to reach a waypoint). Before the fix most noisy failures were, and noisy successes took
    // twice the clean length (34 steps on pick_cube, 65 on place_in_bin), holding still until a
    // noisy step happened to land within the reach tolerance.
    let (mut failures, mut timeouts) = (0, 0);
    for scene in ["pick_cube", "place_in_bin"] {
        let clean = mean_steps(&rollout(scene, DemoQuality::noisy(0.0), 0..30));
        let episodes = rollout(scene, DemoQuality::noisy(0.3), 0..30);
        let successes: Vec<Episode> = episodes.iter().filter(|e| e.success).cloned().collect();
        let failed: Vec<&Episode> = episodes.iter().filter(|e| !e.success).collect();
        failures += failed.len();
        timeouts += failed.iter().filter(|e| !e.finished).count();
        let rate = success_rate(&episodes);
        let steps = mean_steps(&successes);
        println!("{scene} at noise 0.3: {:.0}% success, {steps:.1} steps (clean {clean:.1})", rate * 100.0);
        assert!(rate >= 0.8, "{scene}: noise 0.3 success {rate}");
        assert!(steps <= clean * 1.5, "{scene}: noisy successes take {steps:.1} steps, clean {clean:.1}");
    }
    println!("{timeouts} of {failures} failures are time-outs");
    assert!(timeouts * 2 <= failures, "{timeouts} of {failures} noisy failures are time-outs");
}

#[test]
fn noisy_expert_fails_some_episodes() {
    let rate = success_rate(&rollout("pick_cube", DemoQuality::noisy(1.0), 100..120));
    println!("pick_cube at noise 1: {:.0}%", rate * 100.0);
    assert!(rate < 0.9, "noise 1 should make the expert fail sometimes (got {rate})");
    assert!(rate > 0.1, "noise 1 should not make almost every episode fail (got {rate})");
}

/// Prints the README's table: success and mean length per scene and level, and per mistake.
#[test]
#[ignore = "measurement (50 seeds per scene and level); run with --ignored --nocapture"]
fn measure_quality_levels() {
    let seeds = 0..50;
    for scene in sim::scene::builtin_names() {
        for quality in [DemoQuality::noisy(0.0), DemoQuality::Expert, DemoQuality::mixed(0.5), DemoQuality::noisy(0.3), DemoQuality::noisy(0.6), DemoQuality::noisy(1.0)] {
            let eps = rollout(scene, quality, seeds.clone());
            let fails = eps.iter().filter(|e| !e.success).count();
            let timeouts = eps.iter().filter(|e| !e.success && !e.finished).count();
            println!("| {scene} | {quality} | {:.0}% | {:.1} | {timeouts}/{fails} |", success_rate(&eps) * 100.0, mean_steps(&eps));
        }
        let eps = rollout(scene, DemoQuality::mixed(1.0), 0..100);
        for name in Mistake::NAMES {
            let of: Vec<Episode> = eps.iter().filter(|e| e.mistake.name() == name).cloned().collect();
            if !of.is_empty() {
                println!("| {scene} | {name} | {}/{} | {:.1} |", of.iter().filter(|e| e.success).count(), of.len(), mean_steps(&of));
            }
        }
    }
}
