//! The policy node on a real zenoh session against the real sim node: commands arrive at the
//! control rate, each answering an observation, with a chunk published per inference.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use burn::module::Module;
use bus::{ActionChunk, Bus, BusConfig, EeDeltaCommand};
use policy::node::{run_policy_node, PolicyNodeConfig};
use policy::{Cpu, Policy, PolicyConfig, PolicySpec};
use sim::node::{SimNode, SimNodeConfig};

#[test]
fn deploy_tiny_policy_for_50_ticks_at_20_hz() {
    let hz = 20.0;
    let mut config = PolicyConfig::state_only(5, 7, 5, 7);
    config.d_model = 32;
    config.d_ff = 64;
    config.n_layers = 1;
    let mut spec = PolicySpec::untrained(config, Some("pick_cube".into()), hz, vec!["pick up the red cube".into()]);
    let device = Default::default();
    let model = policy::model::ChunkPolicy::<Cpu>::new(&spec.config, &device);
    spec.num_params = model.num_params();
    let policy = Policy { spec: spec.clone(), model, device };

    let robot = format!("deploy_test_{}", std::process::id());
    let bus = Bus::open(&BusConfig { robot, zenoh_config: None, discovery_dir: None }).unwrap();
    let commands = bus.subscriber::<EeDeltaCommand>().unwrap();
    let chunks = bus.subscriber::<ActionChunk>().unwrap();
    let mut env = policy::eval::eval_env(&spec, None).unwrap();
    env.control_hz = hz;
    let sim_cfg = SimNodeConfig {
        env,
        seed: 5,
        as_fast_as_possible: false,
        max_episodes: None,
        max_steps: Some(200),
        name: "sim".into(),
        expert: None,
        lockstep: None,
        reset_pause: Duration::ZERO,
    };
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    let node_cfg = PolicyNodeConfig { max_ticks: Some(50), ..PolicyNodeConfig::new(Duration::from_secs_f64(1.0 / hz)) };
    let (report, sim_report, arrivals) = std::thread::scope(|s| {
        let node = s.spawn(|| {
            let r = run_policy_node(
                &policy,
                &bus,
                &node_cfg,
                &stop,
                Some(&|| {
                    ready.wait();
                }),
            );
            stop.store(true, Ordering::SeqCst);
            r
        });
        // Count commands as they arrive, on this test's own thread.
        let spy = s.spawn(|| {
            let mut arrivals = Vec::new();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Some(c) = commands.recv_timeout(Duration::from_millis(100)) {
                    arrivals.push((Instant::now(), c));
                } else if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            arrivals
        });
        ready.wait();
        let mut sim = SimNode::new(sim_cfg).unwrap();
        let sim_report = sim.run(&bus, &stop).unwrap();
        (node.join().unwrap().unwrap(), sim_report, spy.join().unwrap())
    });
    assert_eq!(report.ticks, 50);
    assert!(report.commands >= 49, "{report:?}");
    assert!(arrivals.len() >= 49, "spy saw {} commands", arrivals.len());
    assert!(arrivals.iter().all(|(_, c)| c.obs_stamp_ns > 0), "every command answers an observation");
    assert!(sim_report.commands.commands_applied >= 45, "{sim_report:?}");
    // Ensembling asks for a chunk every tick; each is also published on command/chunk.
    assert!(report.executor.chunks >= 45, "{report:?}");
    // Every chunk and tick of this EeDelta policy had a tip pose from the live joint_state.
    assert_eq!(report.executor.unposed, 0, "{report:?}");
    let mut published = 0;
    while chunks.try_recv().is_some() {
        published += 1;
    }
    assert!(published >= 45, "{published} chunks on the bus");
    // Commands at the control rate: median interval 50 ms ± 10%.
    let mut gaps: Vec<f64> = arrivals.windows(2).map(|w| (w[1].0 - w[0].0).as_secs_f64() * 1e3).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!((median - 50.0).abs() < 5.0, "median command interval {median:.1} ms");
    assert!(report.obs_to_command.p50_ms < 25.0, "{report:?}");
}
