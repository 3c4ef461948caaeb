//! Training, checkpoints and the chunked TD target on real (tiny) datasets written by the sim's
//! scripted expert.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use burn::module::Module;
use dataset::writer::{DatasetWriter, FrameRecord};
use dataset::Dataset;
use policy::batch::{to_vec, HostObs};
use policy::checkpoint::{load_module, save_module};
use policy::features::RawObs;
use policy::model::ChunkPolicy;
use policy::train::co_rft::td_target;
use policy::train::data::chunk_return;
use policy::train::jobs::{run_bc, run_co_rft, BcJob, CoRftJob};
use policy::train::TrainSettings;
use policy::{Cpu, CpuTrain, Policy, PolicySpec, Variant};

fn collect(dir: &Path, episodes: u64, noise: f64) -> Dataset {
    let env = sim::EnvConfig::new(sim::load_scene("pick_cube").unwrap());
    let mut w = DatasetWriter::create(dir, &policy::demos::dataset_spec(&env, Vec::new())).unwrap();
    let r = policy::demos::collect(&env, &mut w, episodes, sim::DemoQuality::noisy(noise), 7, 2).unwrap();
    assert_eq!(r.episodes, episodes);
    w.finish().unwrap();
    let ds = Dataset::open(dir).unwrap();
    // Each episode records the expert's noise and its own seed (7, 8, … in some order).
    let mut seeds: Vec<u64> = ds.episodes().iter().map(|e| e.seed.expect("seed stored")).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, (7..7 + episodes).collect::<Vec<_>>());
    assert!(ds.episodes().iter().all(|e| e.expert_noise == Some(noise)), "expert noise stored per episode");
    ds
}

/// `episodes` clean expert demonstrations of `scene` (seeds 0…).
fn collect_expert(dir: &Path, scene: &str, episodes: u64) -> Dataset {
    let env = sim::EnvConfig::new(sim::load_scene(scene).unwrap());
    let mut w = DatasetWriter::create(dir, &policy::demos::dataset_spec(&env, Vec::new())).unwrap();
    policy::demos::collect(&env, &mut w, episodes, sim::DemoQuality::Expert, 0, 2).unwrap();
    w.finish().unwrap();
    Dataset::open(dir).unwrap()
}

fn settings(steps: u64) -> TrainSettings {
    TrainSettings {
        steps,
        batch_size: 32,
        lr: 1e-3,
        seed: 3,
        eval_every: 0,
        log_every: 5,
        checkpoint_every: 1000,
        prefetch: 2,
        progress: false,
        skip_proxy_labels: false,
        // The recipe: warm-up (short for short runs) and cosine decay, the default weight
        // average and held-out episodes.
        lr_schedule: policy::train::schedule::LrSchedule::WarmupCosine { warmup_steps: 10, final_fraction: 0.1 },
        ..TrainSettings::default()
    }
}

fn bc_job(out: &Path, steps: u64, resume: bool) -> BcJob {
    BcJob {
        out: out.to_path_buf(),
        variant: Variant::StateOnly,
        horizon: 5,
        config: None,
        tip_features: None,
        action_targets: None,
        settings: settings(steps),
        eval: None,
        resume,
        encoder: None,
    }
}

fn losses(dir: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get(key)?.as_f64())
        .collect()
}

/// Outputs of the policy in `dir` on the first frames of `ds`.
fn outputs(dir: &Path, ds: &Dataset) -> Vec<Vec<f32>> {
    let p = Policy::<Cpu>::load(dir, &Default::default()).unwrap();
    let obs: Vec<RawObs> = (0..8)
        .map(|i| RawObs {
            state: ds.state(i).to_vec(),
            env_state: ds.env_state(i).to_vec(),
            instruction: ds.task(i).to_string(),
            images: Vec::new(),
        })
        .collect();
    p.act(&obs).unwrap()
}

#[test]
fn bc_loss_falls_and_training_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ds = collect(&data, 4, 0.0);
    let stop = AtomicBool::new(false);
    let dev = Default::default();

    // 60 steps straight.
    let straight = tmp.path().join("straight");
    let report =
        run_bc::<CpuTrain>(&bc_job(&straight, 60, false), vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap();
    assert_eq!(report.steps, 60);
    // One of the four episodes is held out; its loss is reported and logged.
    let held = report.held_out_loss.expect("held-out loss");
    assert!(held.is_finite() && held > 0.0, "{held}");
    assert_eq!(losses(&straight, "bc_held_out").last().copied(), Some(held));
    // The schedule's factor: 1 at the end of the warm-up, 10% at the last step.
    let factors = losses(&straight, "lr_factor");
    assert!((factors.last().unwrap() - 0.1).abs() < 0.02, "{factors:?}");
    let l = losses(&straight, "bc");
    let (first, last) = (l[0], *l.last().unwrap());
    assert!(last < 0.5 * first, "BC loss should fall: first {first}, last {last}");

    // 30 steps, then resumed to 60: the same weights (and weight average) as straight through.
    // A cosine schedule depends on the run's total steps, so a run extended with more --steps
    // follows another one; these runs use a constant rate. (Resuming an interrupted run with the
    // same --steps under the cosine schedule is checked in the reproducibility test below.)
    let constant = |dir: &Path, steps: u64, resume: bool| {
        let mut job = bc_job(dir, steps, resume);
        job.settings.lr_schedule = policy::train::schedule::LrSchedule::Constant;
        run_bc::<CpuTrain>(&job, vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap();
    };
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    constant(&whole, 60, false);
    constant(&split, 30, false);
    constant(&split, 60, true);
    assert_eq!(outputs(&whole, &ds), outputs(&split, &ds), "resumed training must match an uninterrupted run");
}

#[test]
fn checkpoint_round_trips_exactly_and_mismatched_config_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ds = collect(&data, 2, 0.0);
    let dev = Default::default();
    let spec = policy::train::data::TrainingData::fit_spec(
        std::slice::from_ref(&ds),
        &policy::train::data::SpecRequest::new(Variant::StateOnly, 4),
    )
    .unwrap();
    // A state-only policy of pick_cube data takes the finger-tip features by default: the
    // cube's 5 values, then tip position 3 + orientation 6 + cube − tip 3, normalised together.
    assert!(spec.config.tip_features);
    assert_eq!(spec.config.env_input_dim(), 5 + 12);
    assert_eq!(spec.normalizer.env_state.mean.len(), 17);
    // Its action rows are tip targets: the action statistics bound the tip positions the
    // recorded deltas lead to (metres ahead of the base, on or above the table), not the
    // deltas' ±5 cm.
    assert!(spec.config.action_targets);
    let (min, max) = (&spec.normalizer.action.min, &spec.normalizer.action.max);
    assert!(min[0] > 0.1 && max[0] < 0.6 && min[2] > -0.01, "target x/z range {min:?} {max:?}");
    for i in 0..ds.len() {
        let tip = policy::features::tip_pose(ds.state(i)).unwrap();
        let row = policy::train::data::action_row(&spec.config, &ds, i);
        let target = policy::action_targets::target_pose(&row);
        let reached = target.translation.vector - tip.translation.vector;
        let delta = ds.action(i);
        for k in 0..3 {
            assert!(
                (reached[k] - f64::from(delta[k]).clamp(-0.05, 0.05)).abs() < 1e-5,
                "frame {i}: {reached} vs {delta:?}"
            );
        }
    }
    let model = ChunkPolicy::<Cpu>::new(&spec.config, &dev);
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = spec;
    spec.num_params = model.num_params();
    spec.save(&dir).unwrap();
    save_module(&model, &dir.join("model")).unwrap();
    let loaded = load_module(ChunkPolicy::<Cpu>::new(&spec.config, &dev), &dir.join("model"), "policy", &dev).unwrap();
    let mut host = HostObs::default();
    for i in 0..5 {
        host.push(
            &spec,
            &RawObs {
                state: ds.state(i).to_vec(),
                env_state: ds.env_state(i).to_vec(),
                instruction: ds.task(i).into(),
                images: vec![],
            },
        )
        .unwrap();
    }
    let batch = host.to_batch::<Cpu>(&spec.config, &dev);
    assert_eq!(to_vec(model.forward(&batch)), to_vec(loaded.forward(&batch)), "bit-exact round trip");

    // Edit the architecture in policy.json: loading must say the config does not match.
    let mut edited: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("policy.json")).unwrap()).unwrap();
    edited["config"]["d_model"] = serde_json::json!(32);
    edited["config"]["d_ff"] = serde_json::json!(64);
    std::fs::write(dir.join("policy.json"), edited.to_string()).unwrap();
    let err = Policy::<Cpu>::load(&dir, &dev).unwrap_err().to_string();
    assert!(err.contains("model.mpk") && err.contains("policy.json"), "{err}");
    assert!(err.contains("do not match") || err.contains("does not match") || err.contains("do not fit"), "{err}");

    // A policy.json written before the finger-tip features (no `tip_features`) reads as without them.
    let mut old: serde_json::Value = serde_json::to_value(&spec).unwrap();
    old["config"].as_object_mut().unwrap().remove("tip_features");
    let old: policy::PolicySpec = serde_json::from_value(old).unwrap();
    assert!(!old.config.tip_features);
    assert_eq!(old.config.env_input_dim(), 5);

    // A folder without policy.json.
    let err = Policy::<Cpu>::load(tmp.path(), &dev).unwrap_err().to_string();
    assert!(err.contains("policy.json"), "{err}");
}

/// Writes episodes with the given rewards, each ending on its last frame: a termination
/// (`true`: the task succeeded) or a truncation (`false`: the time limit).
fn reward_dataset(dir: &Path, episodes: &[(&[f32], bool)]) -> Dataset {
    let env = sim::EnvConfig::new(sim::load_scene("pick_cube").unwrap());
    let mut w = DatasetWriter::create(dir, &policy::demos::dataset_spec(&env, Vec::new())).unwrap();
    for (rewards, terminal) in episodes {
        w.begin_episode("pick up the cube").unwrap();
        for (k, r) in rewards.iter().enumerate() {
            let last = k + 1 == rewards.len();
            w.add_frame(&FrameRecord {
                state: vec![k as f32; 7],
                action: vec![0.0; 7],
                env_state: vec![0.0; 5],
                reward: *r,
                done: last,
                truncated: last && !terminal,
                success: last && *terminal,
                images: vec![],
            })
            .unwrap();
        }
        w.end_episode(Some(0), Some(*terminal)).unwrap();
    }
    w.finish().unwrap();
    Dataset::open(dir).unwrap()
}

#[test]
fn chunked_td_target_matches_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    // Episode 0: 7 frames, reward 1 on the last, a termination (success). Episode 1: frames
    // 7, 8, 9 with rewards ½, ¼, ⅛, cut by the time limit (a truncation).
    let ds = reward_dataset(tmp.path(), &[(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], true), (&[0.5, 0.25, 0.125], false)]);
    assert!(ds.terminal(6) && !ds.truncated(6) && ds.truncated(9) && ds.done(9) && !ds.terminal(9));
    let (h, gamma) = (3, 0.9f32);
    let check = |i: usize, r: f32, g: f32, next: usize| {
        let got = chunk_return(&ds, i, h, f64::from(gamma));
        assert!((got.0 - r).abs() < 1e-6 && (got.1 - g).abs() < 1e-6 && got.2 == next, "frame {i}: {got:?}");
    };
    // Frame 0: no reward in the chunk, bootstrap γ³ from frame 3.
    check(0, 0.0, 0.729, 3);
    // Frame 4: rewards 0, 0, 1 → R = γ² = 0.81; the episode terminates inside the chunk → g = 0.
    check(4, 0.81, 0.0, 6);
    // Frame 5: rewards 0, 1, then the termination → R = 0.9, g = 0, the index stays in the episode.
    check(5, 0.9, 0.0, 6);
    // Frame 7: the chunk reaches the truncated end. The state after frame 9 is not stored, so
    // R = ½ + γ·¼ = 0.725 and the bootstrap γ² V(s₉) covers r₉ and after.
    check(7, 0.5 + 0.9 * 0.25, 0.81, 9);
    // Frame 8: R = ¼, bootstrap γ·V(s₉).
    check(8, 0.25, 0.9, 9);
    // Frame 9, the last: R = ⅛ and γ·V(s₉) stands in for γ·V(s₁₀).
    check(9, 0.125, 0.9, 9);

    // y = R + g · min over the subset of target critics: K = 3, subset {0, 2}.
    let target_q = [0.5, 0.1, 0.7, /* row 2 */ 0.2, 0.3, 0.4];
    let y = td_target(&[0.0, 0.81], &[0.729, 0.0], &target_q, 3, &[0, 2]);
    assert!((f64::from(y[0]) - 0.729 * 0.5).abs() < 1e-6, "{}", y[0]);
    assert!((f64::from(y[1]) - 0.81).abs() < 1e-6, "masked bootstrap: {}", y[1]);
}

#[test]
fn co_rft_runs_from_a_bc_policy_and_keeps_losses_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    collect(&data, 4, 0.3);
    let stop = AtomicBool::new(false);
    let dev = Default::default();
    let bc = tmp.path().join("bc");
    run_bc::<CpuTrain>(&bc_job(&bc, 10, false), vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap();
    let mut rl = policy::train::co_rft::CoRftConfig::default();
    rl.critic.ensemble = 3;
    rl.critic.hidden = 32;
    rl.critic.layers = 2;
    rl.cql_samples = 2;
    rl.critic_warmup = 4;
    let out = tmp.path().join("rft");
    let job = CoRftJob {
        init: bc.clone(),
        out: out.clone(),
        rl,
        settings: settings(12),
        eval: None,
        resume: false,
        encoder: None,
    };
    let report = run_co_rft::<CpuTrain>(&job, vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap();
    assert_eq!(report.steps, 12);
    for key in ["td", "cql", "actor"] {
        let l = losses(&out, key);
        assert!(!l.is_empty() && l.iter().all(|v| v.is_finite()), "{key}: {l:?}");
    }
    // The actor moved away from the BC policy; the critic was saved beside it.
    assert!(out.join("critic.mpk").exists() && out.join("resume/target_critic.mpk").exists());
    let ds = Dataset::open(&data).unwrap();
    assert_ne!(outputs(&bc, &ds), outputs(&out, &ds));
    let spec = PolicySpec::load(&out).unwrap();
    assert_eq!(spec.critic.map(|c| c.ensemble), Some(3));
    // A second run from the same seed repeats it bit for bit: actor, critic losses, Q values.
    let again = tmp.path().join("rft_again");
    run_co_rft::<CpuTrain>(&CoRftJob { out: again.clone(), ..job }, vec![Dataset::open(&data).unwrap()], &stop, &dev)
        .unwrap();
    assert!(weights(&out) == weights(&again), "CO-RFT from one seed trained other weights");
    for key in ["td", "cql", "q_data", "actor"] {
        assert_eq!(losses(&out, key), losses(&again, key), "{key}");
    }
}

/// Every parameter of the policy saved in `dir`, in module order (checkpoint bytes differ between
/// runs anyway: burn gives each parameter a random id).
fn weights(dir: &Path) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor<Cpu> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<Cpu, D>>) {
            self.0.extend(to_vec(param.val()));
        }
    }
    let spec = PolicySpec::load(dir).unwrap();
    let dev = Default::default();
    let model = load_module(ChunkPolicy::<Cpu>::new(&spec.config, &dev), &dir.join("model"), "policy", &dev).unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// BC with dropout 0.1 (the vision default) on the state-only model.
fn dropout_job(out: &Path, steps: u64, resume: bool) -> BcJob {
    let config = policy::PolicyConfig { dropout: 0.1, ..policy::PolicyConfig::state_only(5, 7, 5, 7) };
    BcJob { config: Some(config), ..bc_job(out, steps, resume) }
}

#[test]
fn training_is_bit_for_bit_reproducible_beside_other_trainings_and_across_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    collect(&data, 3, 0.3);
    let stop = AtomicBool::new(false);
    let dev = Default::default();
    let train = |dir: &Path, steps: u64, resume: bool| {
        run_bc::<CpuTrain>(&dropout_job(dir, steps, resume), vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap()
    };
    // Two runs from the same seed at the same time, beside a thread that keeps building and
    // saving fresh models, as the test harness runs tests: all draw initial weights (and the
    // runs dropout masks) from the backend's one generator.
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let config = policy::PolicyConfig::state_only(5, 7, 5, 7);
            let path = tmp.path().join("noise");
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                save_module(&ChunkPolicy::<Cpu>::new(&config, &dev), &path).unwrap();
            }
        });
        let runs = [s.spawn(|| train(&a, 24, false)), s.spawn(|| train(&b, 24, false))];
        let finished: Vec<_> = runs.into_iter().map(|r| r.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(finished.iter().all(Result::is_ok), "a training run panicked");
    });
    let wa = weights(&a);
    assert!(!wa.is_empty());
    assert!(wa == weights(&b), "same seed and data, other weights");
    assert_eq!(losses(&a, "bc"), losses(&b, "bc"), "same seed and data, other losses");
    // Interrupted at step 10 and resumed: the dropout masks of steps 10…23 are those of the
    // uninterrupted run, so are the weights. (The first 10 steps are the schedule's warm-up,
    // the same whatever the run's total; the resumed run then follows the 24-step cosine.)
    // The 10-step run stands for a 24-step one stopped at step 10: its stored recipe says so
    // (a resume with another step count than the run's is refused under the cosine schedule).
    let split = tmp.path().join("split");
    train(&split, 10, false);
    let state_file = split.join("resume/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(state["recipe"]["steps"], 10);
    state["recipe"]["steps"] = 24.into();
    std::fs::write(&state_file, state.to_string()).unwrap();
    train(&split, 24, true);
    assert!(wa == weights(&split), "a resumed run with dropout must match an uninterrupted one");
    // Resuming with another learning rate is refused, naming it.
    let mut job = dropout_job(&split, 30, true);
    job.settings.steps = 24;
    job.settings.lr = 1e-4;
    let err = run_bc::<CpuTrain>(&job, vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap_err().to_string();
    assert!(err.contains("lr: 0.001 in the run, 0.0001 now"), "{err}");
    // So is resuming with another chunk length, or on other data.
    let job = BcJob { horizon: 4, ..dropout_job(&split, 24, true) };
    let err = run_bc::<CpuTrain>(&job, vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap_err().to_string();
    assert!(err.contains("horizon: 5 in the run, 4 now"), "{err}");
    let other_data = tmp.path().join("other_data");
    collect(&other_data, 2, 0.6);
    let job = dropout_job(&split, 24, true);
    let err = run_bc::<CpuTrain>(&job, vec![Dataset::open(&other_data).unwrap()], &stop, &dev).unwrap_err().to_string();
    assert!(err.contains("statistics differ"), "{err}");
    // Another seed gives other weights (the comparison can fail).
    let other = tmp.path().join("other");
    let mut job = dropout_job(&other, 24, false);
    job.settings.seed = 4;
    run_bc::<CpuTrain>(&job, vec![Dataset::open(&data).unwrap()], &stop, &dev).unwrap();
    assert!(wa != weights(&other));
}

/// Filtered BC: the statistics and the training frames come from the successful episodes only.
#[test]
fn successful_only_fits_and_trains_on_the_successful_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    // Episode 0 succeeds (states 0, 1, 2); episode 1 runs to the time limit (states 0…4).
    let ds = reward_dataset(tmp.path(), &[(&[0.0, 0.0, 1.0], true), (&[0.0; 5], false)]);
    let request = |successful_only| policy::train::data::SpecRequest {
        action_targets: Some(false),
        successful_only,
        ..policy::train::data::SpecRequest::new(Variant::StateOnly, 2)
    };
    let fit = |successful_only| {
        policy::train::data::TrainingData::fit_spec(std::slice::from_ref(&ds), &request(successful_only)).unwrap()
    };
    assert!((fit(false).normalizer.state.mean[0] - 13.0 / 8.0).abs() < 1e-6);
    let spec = fit(true);
    assert!((spec.normalizer.state.mean[0] - 1.0).abs() < 1e-6, "{:?}", spec.normalizer.state.mean);
    let data = policy::train::data::TrainingData::new(vec![ds], spec, 0.99).unwrap();
    assert_eq!(data.len(), 8);
    let data = data.successful_only().unwrap();
    assert_eq!(data.len(), 3);
    let tmp2 = tempfile::tempdir().unwrap();
    let failed = reward_dataset(tmp2.path(), &[(&[0.0; 4], false)]);
    let spec = policy::train::data::TrainingData::fit_spec(std::slice::from_ref(&failed), &request(false)).unwrap();
    let err = policy::train::data::TrainingData::new(vec![failed], spec, 0.99).unwrap().successful_only().err();
    assert!(err.is_some_and(|e| e.to_string().contains("no episode succeeds")));
}

/// One policy over scenes with different object counts (pick_cube: the cube; place_in_bin: the
/// cube and the bin): its object state is as wide as the widest scene's whatever the dataset
/// order, the narrower scene's missing object is zeros in the object state and in the tip
/// features, and it trains and acts on both scenes; a one-scene policy still refuses an
/// observation with fewer objects.
#[test]
fn a_multi_task_policy_pads_the_objects_a_scene_lacks() {
    use policy::train::data::{SpecRequest, TrainingData};
    let tmp = tempfile::tempdir().unwrap();
    let (pick_dir, place_dir) = (tmp.path().join("pick"), tmp.path().join("place"));
    let pick = collect_expert(&pick_dir, "pick_cube", 2);
    let place = collect_expert(&place_dir, "place_in_bin", 2);
    assert_eq!((pick.env_state_dim(), place.env_state_dim()), (5, 10));
    let request = SpecRequest::new(Variant::StateOnly, 4);
    let spec =
        TrainingData::fit_spec(&[Dataset::open(&pick_dir).unwrap(), Dataset::open(&place_dir).unwrap()], &request)
            .unwrap();
    let swapped =
        TrainingData::fit_spec(&[Dataset::open(&place_dir).unwrap(), Dataset::open(&pick_dir).unwrap()], &request)
            .unwrap();
    for c in [&spec.config, &swapped.config] {
        assert_eq!(c.env_state_dim, 10);
        assert!(c.pad_objects && c.tip_features);
        assert_eq!(c.env_input_dim(), 10 + 9 + 2 * 3);
    }
    // A pick_cube frame: the cube, then zeros for the absent bin, the tip pose, the cube minus
    // the tip, zeros for the bin minus the tip.
    let raw = RawObs { state: pick.state(5).to_vec(), env_state: pick.env_state(5).to_vec(), ..RawObs::default() };
    let mut row = Vec::new();
    policy::batch::push_env_input(&spec.config, &raw, &mut row);
    assert_eq!(row.len(), 25);
    assert_eq!(&row[..5], pick.env_state(5));
    assert!(row[5..10].iter().all(|v| *v == 0.0), "{row:?}");
    let tip = policy::features::tip_pose(pick.state(5)).unwrap().translation.vector;
    for k in 0..3 {
        assert!((f64::from(row[10 + k]) - tip[k]).abs() < 1e-5);
        assert!((f64::from(row[19 + k]) - (f64::from(pick.env_state(5)[k]) - tip[k])).abs() < 1e-5);
    }
    assert!(row[22..].iter().all(|v| *v == 0.0), "{row:?}");
    // Trains on both and acts on an observation of either scene.
    let out = tmp.path().join("multi");
    let job = BcJob { horizon: 4, ..bc_job(&out, 6, false) };
    let stop = AtomicBool::new(false);
    run_bc::<CpuTrain>(&job, vec![pick, place], &stop, &Default::default()).unwrap();
    let p = Policy::<Cpu>::load(&out, &Default::default()).unwrap();
    let place = Dataset::open(&place_dir).unwrap();
    let obs = [
        RawObs { instruction: "pick up the cube".into(), ..raw.clone() },
        RawObs {
            state: place.state(3).to_vec(),
            env_state: place.env_state(3).to_vec(),
            instruction: place.task(3).to_string(),
            images: Vec::new(),
        },
    ];
    let acts = p.act(&obs).unwrap();
    assert_eq!(acts.len(), 2);
    assert!(acts.iter().flatten().all(|v| v.is_finite()));
    // A policy of place_in_bin alone refuses the pick_cube observation.
    let single = TrainingData::fit_spec(&[place], &request).unwrap();
    assert!(!single.config.pad_objects);
    let err = HostObs::default().push(&single, &raw).unwrap_err();
    assert!(err.to_string().contains("another scene"), "{err}");
    // eval and deploy refuse it before the first step; the five-scene policy runs anywhere.
    let err = policy::eval::eval_env(&single, Some("pick_cube")).unwrap_err().to_string();
    assert!(err.contains("2 objects, scene pick_cube has 1") && err.contains("trained on place_in_bin"), "{err}");
    assert!(policy::eval::eval_env(&spec, Some("pick_cube")).is_ok());
}
