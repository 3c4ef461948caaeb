//! One target under fire: rounds of hostile cases in a seeded order, e-stop probes spread over
//! the run, and the end of the run (a `Stop` request, or for a recording a second commander).
//!
//! A round sends every garbage kind on every input topic of the target, one huge payload, an
//! episode-control flood, stale releases and (sim, driver) extreme and second-source commands
//! through typed publishers. A probe gets the arm moving, publishes an e-stop engage and release
//! back to back, and while the node holds sends stale and replayed releases and fresh commands;
//! the arm must not move until the fuzzer's own fresh release.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bus::{
    ActionChunk, ActionKind, Bus, EeDeltaCommand, EpisodeControl, EpisodeRequest, Estop, JointCommand, NodeState,
    Publisher,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::Serialize;

use super::kinds::{Context, Generator, Kind};
use super::targets::Target;
use super::watch::Watch;

/// Pause after each case, so that the nodes see the messages spread over many cycles.
const PACE: Duration = Duration::from_millis(2);
/// How long a node has to report an e-stop engage or release on `status`.
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the e-stop probes found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeCounts {
    /// Engage + release pulses sent.
    pub pulses: u64,
    /// Pulses the node never reported as `Estopped` (the engage was lost behind the release).
    pub missed: u64,
    /// Fresh releases after which the node did not report `Running` (a stuck latch).
    pub release_ignored: u64,
}

/// The fuzzer's typed publishers: the commander, a second source, the e-stop and episode control.
struct Typed {
    joint: Publisher<JointCommand>,
    joint2: Publisher<JointCommand>,
    ee: Publisher<EeDeltaCommand>,
    ee2: Publisher<EeDeltaCommand>,
    chunk: Publisher<ActionChunk>,
    chunk2: Publisher<ActionChunk>,
    estop: Publisher<Estop>,
    control: Publisher<EpisodeControl>,
}

/// The fuzzer's side of one target.
pub struct Session<'a> {
    bus: &'a Bus,
    watch: &'a Watch,
    target: Target,
    generator: Generator,
    typed: Typed,
    topics: Vec<String>,
    cameras: Vec<(String, u32, u32)>,
    /// Messages sent per kind.
    pub sent: BTreeMap<Kind, u64>,
    /// What the e-stop probes found.
    pub probes: ProbeCounts,
    total: u64,
}

impl<'a> Session<'a> {
    /// A session against `target` (watched by `watch`) on `bus`, seeded with `seed`.
    pub fn new(
        bus: &'a Bus,
        watch: &'a Watch,
        target: Target,
        seed: u64,
        max_payload_bytes: usize,
        cameras: Vec<(String, u32, u32)>,
    ) -> Result<Session<'a>> {
        let typed = Typed {
            joint: bus.publisher()?,
            joint2: bus.publisher()?,
            ee: bus.publisher()?,
            ee2: bus.publisher()?,
            chunk: bus.publisher()?,
            chunk2: bus.publisher()?,
            estop: bus.publisher()?,
            control: bus.publisher()?,
        };
        let sent = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        Ok(Session {
            bus,
            watch,
            target,
            generator: Generator::new(seed, max_payload_bytes),
            typed,
            topics: target.input_topics(&cameras),
            cameras,
            sent,
            probes: ProbeCounts::default(),
            total: 0,
        })
    }

    fn count(&mut self, kind: Kind, n: u64) {
        *self.sent.entry(kind).or_default() += n;
        self.total += n;
    }

    fn put(&mut self, kind: Kind, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.bus.put_raw(&self.bus.key(topic), payload)?;
        self.count(kind, 1);
        Ok(())
    }

    fn context(&self) -> Context {
        let (pose_rad, scene, tick_stamp_ns) = self.watch.latest();
        Context {
            now_ns: bus::now_ns(),
            pose_rad,
            scene,
            tick_stamp_ns,
            cameras: self.cameras.clone(),
            commands_outside_episodes: self.target == Target::Record,
        }
    }

    /// One round's cases, shuffled.
    fn round(&mut self) -> Vec<(Kind, String)> {
        let mut cases: Vec<(Kind, String)> =
            Kind::garbage().iter().flat_map(|k| self.topics.iter().map(|t| (*k, t.clone()))).collect();
        let huge_topic = self.topics.choose(self.generator.rng()).cloned().unwrap_or_default();
        cases.push((Kind::Huge, huge_topic));
        cases.push((Kind::EpisodeFlood, bus::topics::COMMAND_EPISODE.into()));
        cases.push((Kind::StaleRelease, bus::topics::ESTOP.into()));
        if self.target == Target::Record {
            cases.push((Kind::EpisodeFlood, bus::topics::EPISODE.into()));
        } else {
            for topic in [bus::topics::COMMAND_JOINT, bus::topics::COMMAND_EE_DELTA, bus::topics::COMMAND_CHUNK] {
                cases.push((Kind::Extreme, topic.into()));
                cases.push((Kind::SecondSource, topic.into()));
            }
        }
        cases.shuffle(self.generator.rng());
        cases
    }

    /// Sends rounds until `messages` are sent, `node_ended()` or `interrupted`, with `pulses`
    /// e-stop probes spread over the run (all of them even when the messages run out first).
    pub fn fuzz(
        &mut self,
        messages: u64,
        pulses: u32,
        node_ended: &dyn Fn() -> bool,
        interrupted: &AtomicBool,
    ) -> Result<()> {
        let probe_every = (messages / (u64::from(pulses) + 1)).max(1);
        let mut next_probe = probe_every;
        let mut probes = 0;
        let going = |s: &Self| !node_ended() && !interrupted.load(Ordering::Relaxed) && s.total < messages;
        'rounds: while going(self) {
            for (kind, topic) in self.round() {
                if !going(self) {
                    break 'rounds;
                }
                if probes < pulses && self.total >= next_probe {
                    self.estop_probe(node_ended)?;
                    probes += 1;
                    next_probe += probe_every;
                }
                self.send_case(kind, &topic)?;
                std::thread::sleep(PACE);
            }
        }
        while probes < pulses && !node_ended() && !interrupted.load(Ordering::Relaxed) {
            self.estop_probe(node_ended)?;
            probes += 1;
        }
        Ok(())
    }

    fn send_case(&mut self, kind: Kind, topic: &str) -> Result<()> {
        let ctx = self.context();
        let payloads = match kind {
            Kind::EpisodeFlood => self.generator.episode_flood(topic, &ctx)?,
            Kind::StaleRelease => self.generator.stale_releases(ctx.now_ns, ctx.now_ns)?,
            Kind::Extreme => return self.extreme(topic, 3),
            Kind::SecondSource => return self.second_source(topic),
            Kind::EstopPulse => return Ok(()),
            _ => self.generator.case(kind, topic, &ctx)?,
        };
        for payload in payloads {
            self.put(kind, topic, payload)?;
        }
        Ok(())
    }

    /// `n` fresh commands from the commander far outside the limits, alternating ends.
    fn extreme(&mut self, topic: &str, n: u64) -> Result<()> {
        for _ in 0..n {
            let gripper = *[-5.0, 5.0, 1e300].choose(self.generator.rng()).unwrap_or(&5.0);
            match topic {
                bus::topics::COMMAND_JOINT => {
                    let position = self.generator.extreme_joints().to_vec();
                    self.typed.joint.publish(&mut JointCommand { position, gripper, ..Default::default() })?;
                }
                bus::topics::COMMAND_EE_DELTA => {
                    let (delta_xyz_m, delta_rpy_rad) = (self.generator.extreme_delta(), self.generator.extreme_delta());
                    let mut cmd = EeDeltaCommand { delta_xyz_m, delta_rpy_rad, gripper, ..Default::default() };
                    self.typed.ee.publish(&mut cmd)?;
                }
                _ => {
                    let rows = 10;
                    let values = (0..rows * 7).map(|i| if (i / 7) % 2 == 0 { 10.0 } else { -1e30 }).collect();
                    let mut chunk = ActionChunk {
                        kind: ActionKind::JointTarget,
                        horizon: rows,
                        dim: 7,
                        period_ns: 1_000_000,
                        values,
                        ..Default::default()
                    };
                    self.typed.chunk.publish(&mut chunk)?;
                }
            }
            self.count(Kind::Extreme, 1);
        }
        Ok(())
    }

    /// A fresh, valid command near the measured pose from a second publisher.
    fn second_source(&mut self, topic: &str) -> Result<()> {
        let (q, _, _) = self.watch.latest();
        let rng = self.generator.rng();
        let target: Vec<f64> = q.iter().map(|x| x + rng.random_range(-0.3..0.3)).collect();
        match topic {
            bus::topics::COMMAND_JOINT => {
                self.typed.joint2.publish(&mut JointCommand { position: target, gripper: 0.5, ..Default::default() })?
            }
            bus::topics::COMMAND_EE_DELTA => {
                let delta_xyz_m = [rng.random_range(-0.01..0.01), 0.0, 0.0];
                self.typed.ee2.publish(&mut EeDeltaCommand { delta_xyz_m, gripper: 0.5, ..Default::default() })?
            }
            _ => {
                let values = target.iter().chain(&[0.5]).map(|v| *v as f32).collect();
                let mut chunk = ActionChunk {
                    kind: ActionKind::JointTarget,
                    horizon: 1,
                    dim: 7,
                    period_ns: 100_000_000,
                    values,
                    ..Default::default()
                };
                self.typed.chunk2.publish(&mut chunk)?
            }
        }
        self.count(Kind::SecondSource, 1);
        Ok(())
    }

    /// Pulses the e-stop while the arm moves and checks that it holds until a fresh release
    /// (a node that ended meanwhile reports nothing, which is no missed pulse).
    fn estop_probe(&mut self, node_ended: &dyn Fn() -> bool) -> Result<()> {
        let record = self.target == Target::Record;
        if !record {
            // Get the arm moving: half a radian on the waist, towards the middle of its range.
            let (mut q, _, _) = self.watch.latest();
            q[0] += if q[0] > 0.0 { -0.5 } else { 0.5 };
            self.typed.joint.publish(&mut JointCommand { position: q.to_vec(), gripper: 0.5, ..Default::default() })?;
            self.count(Kind::EstopPulse, 1);
            std::thread::sleep(Duration::from_millis(30));
        }
        let since = Instant::now();
        let mut engage = Estop { engaged: true, reason: "fuzz pulse".into(), ..Default::default() };
        let mut release = Estop { engaged: false, reason: "fuzz pulse".into(), ..Default::default() };
        self.typed.estop.publish(&mut engage)?;
        self.typed.estop.publish(&mut release)?;
        self.count(Kind::EstopPulse, 2);
        self.probes.pulses += 1;
        if !self.watch.wait_state(NodeState::Estopped, since, REPORT_TIMEOUT) {
            if node_ended() {
                return Ok(());
            }
            self.probes.missed += 1;
            tracing::warn!(target = self.target.name(), "an e-stop pulse was missed");
            // Engage plainly, so that the hold is still checked.
            let since = Instant::now();
            self.typed.estop.publish(&mut Estop { engaged: true, reason: "fuzz".into(), ..Default::default() })?;
            self.count(Kind::EstopPulse, 1);
            if !self.watch.wait_state(NodeState::Estopped, since, REPORT_TIMEOUT) {
                return Ok(());
            }
        }
        // The sim holds from its next step; the driver's servos need a few cycles to stop.
        self.watch.begin_hold(if self.target == Target::Driver { 2 } else { 0 });
        let hold = if self.target == Target::Driver { Duration::from_millis(800) } else { Duration::from_millis(1500) };
        let mut replayed = false;
        while since.elapsed() < hold {
            let now = bus::now_ns();
            for payload in self.generator.stale_releases(engage.header.stamp_ns, now)? {
                self.put(Kind::StaleRelease, bus::topics::ESTOP, payload)?;
            }
            // The pulse's own release again, once it is stale.
            if !replayed && since.elapsed() > Duration::from_millis(600) {
                self.put(Kind::StaleRelease, bus::topics::ESTOP, bus::encode(&release)?)?;
                replayed = true;
            }
            if !record {
                self.extreme(bus::topics::COMMAND_JOINT, 1)?;
                self.second_source(bus::topics::COMMAND_EE_DELTA)?;
                self.second_source(bus::topics::COMMAND_CHUNK)?;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.watch.end_hold();
        let since = Instant::now();
        self.typed.estop.publish(&mut Estop { engaged: false, reason: "fuzz release".into(), ..Default::default() })?;
        self.count(Kind::EstopPulse, 1);
        if !self.watch.wait_state(NodeState::Running, since, REPORT_TIMEOUT) && !node_ended() {
            self.probes.release_ignored += 1;
            tracing::warn!(target = self.target.name(), "a fresh release was not obeyed");
        }
        Ok(())
    }

    /// Ends a robot target: a fresh `Stop` request.
    pub fn request_stop(&mut self) -> Result<()> {
        let mut stop = EpisodeControl { request: EpisodeRequest::Stop, ..Default::default() };
        self.typed.control.publish(&mut stop)?;
        Ok(())
    }

    /// Ends a recording: valid commands from a second publisher, every 100 ms (one lands during
    /// an episode) until `node_ended()` (the recorder refuses to go on) or `timeout`. Whether
    /// the recording ended.
    pub fn second_commander(&mut self, node_ended: &dyn Fn() -> bool, timeout: Duration) -> Result<bool> {
        self.watch.wait_step(Instant::now(), Duration::from_secs(5));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if node_ended() {
                return Ok(true);
            }
            self.typed.ee2.publish(&mut EeDeltaCommand { gripper: 1.0, ..Default::default() })?;
            self.count(Kind::SecondSource, 1);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(node_ended())
    }
}
