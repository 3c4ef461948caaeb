//! The policy node fed on a real loopback bus with messages it cannot use: it counts them on its
//! `status` and in its report, and keeps answering the usable observations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use burn::module::Module;
use bus::{Bus, BusConfig, JointState, NodeState, ObjectPose, Pose, SceneState, Status};
use policy::node::{run_policy_node, PolicyNodeConfig, POLICY_NODE};
use policy::{Cpu, Policy, PolicyConfig, PolicySpec};

/// Joint positions of the policy's state (six joints and the gripper).
const STATE_DIM: usize = 7;
/// Control rate of the scripted robot, Hz.
const HZ: f64 = 20.0;

/// A tiny untrained state-only policy taking 7 joint positions and one object's state.
fn tiny_policy() -> Policy<Cpu> {
    let mut config = PolicyConfig::state_only(5, STATE_DIM, 5, 7);
    config.d_model = 32;
    config.d_ff = 64;
    config.n_layers = 1;
    let mut spec = PolicySpec::untrained(config, Some("pick_cube".into()), HZ, vec!["pick up the red cube".into()]);
    let device = Default::default();
    let model = policy::model::ChunkPolicy::<Cpu>::new(&spec.config, &device);
    spec.num_params = model.num_params();
    Policy { spec, model, device }
}

fn joint_state(stamp_ns: u64, position: Vec<f64>) -> JointState {
    let mut m = JointState { position, ee_pose: Some(Pose::default()), ..Default::default() };
    m.header.stamp_ns = stamp_ns;
    m
}

fn scene_state(stamp_ns: u64, objects: usize) -> SceneState {
    let pose = Pose { translation_m: [0.3, 0.0, 0.02], rotation_xyzw: [0.0, 0.0, 0.0, 1.0] };
    let mut m = SceneState {
        objects: (0..objects).map(|i| ObjectPose { name: format!("cube{i}"), pose: pose.clone() }).collect(),
        ..Default::default()
    };
    m.header.stamp_ns = stamp_ns;
    m
}

/// Sets the stop flag when dropped (also when the test panics).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn counted(s: &Status, name: &str) -> u64 {
    s.counters.get(name).copied().unwrap_or(0)
}

/// A `joint_state` of 5 joints, one with a NaN, a `scene_state` without the policy's object,
/// garbage and a newer-schema `joint_state`: each is counted (`malformed`, `decode_errors`,
/// `newer_schema`) and none stops the node, which goes on answering the robot's ticks. A 5-joint
/// `joint_state` used to reach the model and end the node with a width mismatch.
#[test]
fn messages_the_policy_cannot_use_are_counted_on_status_and_never_stop_it() {
    let policy = tiny_policy();
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = Bus::open(&BusConfig::with_discovery_dir("arm0", dir.path().join("bus"))).expect("loopback bus");
    let statuses = bus.subscriber::<Status>().expect("status subscriber");
    let joint = bus.publisher::<JointState>().expect("joint_state publisher");
    let scene = bus.publisher::<SceneState>().expect("scene_state publisher");
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    let node_cfg = PolicyNodeConfig::new(Duration::from_secs_f64(1.0 / HZ));
    let (result, status) = std::thread::scope(|s| {
        let node = s.spawn(|| {
            let start = || {
                ready.wait();
            };
            let r = run_policy_node(&policy, &bus, &node_cfg, &stop, Some(&start));
            stop.store(true, Ordering::SeqCst);
            r
        });
        // A failing assertion below stops the node too, so the test fails instead of hanging.
        let _stop_node = StopOnDrop(&stop);
        ready.wait();
        let mut newer = joint_state(bus::now_ns(), vec![0.0; STATE_DIM]);
        newer.header.schema = bus::SCHEMA_VERSION + 1;
        bus.put_raw(&bus.key(bus::topics::JOINT_STATE), vec![0xff, 0x00, 0x13]).expect("put");
        bus.put_raw(&bus.key(bus::topics::JOINT_STATE), bus::encode(&newer).expect("encode")).expect("put");
        // The robot ticks at 20 Hz; one tick of each kind of malformed message, then usable
        // ticks until the node's status has counted everything (or 20 s passed).
        let started = Instant::now();
        let mut tick = 0u64;
        let mut last_status = None;
        let status = loop {
            assert!(started.elapsed() < Duration::from_secs(20), "no status as expected: {last_status:?}");
            assert!(!node.is_finished(), "the policy node stopped");
            let stamp = bus::now_ns();
            // Each tick's scene state, then its joint state.
            let (objects, position) = match tick {
                0 => (1, vec![0.0; 5]),
                1 => (1, vec![f64::NAN; STATE_DIM]),
                2 => (0, vec![0.0; STATE_DIM]),
                _ => (1, vec![0.0; STATE_DIM]),
            };
            scene.publish(&mut scene_state(stamp, objects)).expect("publish");
            joint.publish(&mut joint_state(stamp, position)).expect("publish");
            tick += 1;
            std::thread::sleep(Duration::from_secs_f64(1.0 / HZ));
            let mut done = None;
            while let Some(s) = statuses.try_recv() {
                let complete = counted(&s, "malformed") >= 3
                    && counted(&s, bus::STATUS_DECODE_ERRORS) >= 1
                    && counted(&s, bus::STATUS_NEWER_SCHEMA) >= 1
                    && counted(&s, "commands") >= 3;
                if s.node == POLICY_NODE && complete {
                    done = Some(s.clone());
                }
                last_status = Some(s);
            }
            if let Some(s) = done {
                break s;
            }
        };
        stop.store(true, Ordering::SeqCst);
        (node.join().expect("the policy node thread"), status)
    });
    let report = result.expect("the policy node survives every message");
    assert_eq!(status.state, NodeState::Running, "{status:?}");
    assert_eq!(counted(&status, "malformed"), 3, "{status:?}");
    assert_eq!(counted(&status, bus::STATUS_DECODE_ERRORS), 1, "{status:?}");
    assert_eq!(counted(&status, bus::STATUS_NEWER_SCHEMA), 1, "{status:?}");
    assert_eq!((report.malformed, report.decode_errors, report.newer_schema), (3, 1, 1), "{report:?}");
    assert!(report.commands >= 3, "{report:?}");
}
