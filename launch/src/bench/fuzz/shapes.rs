//! The fuzzer's messages before they are mangled ([`Msg`]: a well-formed message of any input
//! topic), and the mangling that keeps them decodable or nearly so: wrong shapes, non-finite
//! values, huge payloads.

use anyhow::Result;
use bus::{
    ActionChunk, ActionKind, CameraFrame, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind,
    EpisodeRequest, Estop, Header, ImageEncoding, JointCommand, JointState, Message, NodeState, ObjectPose, Pose,
    SceneState, Status, Task, Value,
};
use rand::seq::IndexedRandom;
use rand::Rng;

use super::kinds::{Context, Generator};

/// A message of any input topic, typed, before it is mangled.
pub(super) enum Msg {
    Joint(JointState),
    Scene(SceneState),
    Camera(CameraFrame),
    JointCmd(JointCommand),
    Ee(EeDeltaCommand),
    Chunk(ActionChunk),
    Control(EpisodeControl),
    Estop(Estop),
    Episode(EpisodeEvent),
    Task(Task),
    Status(Status),
}

macro_rules! each_msg {
    ($m:expr, $v:ident => $body:expr) => {
        match $m {
            Msg::Joint($v) => $body,
            Msg::Scene($v) => $body,
            Msg::Camera($v) => $body,
            Msg::JointCmd($v) => $body,
            Msg::Ee($v) => $body,
            Msg::Chunk($v) => $body,
            Msg::Control($v) => $body,
            Msg::Estop($v) => $body,
            Msg::Episode($v) => $body,
            Msg::Task($v) => $body,
            Msg::Status($v) => $body,
        }
    };
}

impl Msg {
    pub(super) fn header_mut(&mut self) -> &mut Header {
        each_msg!(self, m => m.header_mut())
    }

    pub(super) fn encode(&self) -> Result<Vec<u8>> {
        Ok(each_msg!(self, m => bus::encode(m))?)
    }
}

impl Generator {
    /// The well-formed message of `topic` (every value plausible), stamped `stamp_ns`.
    pub(super) fn base(&mut self, topic: &str, ctx: &Context, stamp_ns: u64) -> Msg {
        let header = self.header(stamp_ns);
        let q: Vec<f64> = ctx.pose_rad.to_vec();
        match topic {
            bus::topics::JOINT_STATE => Msg::Joint(JointState {
                header,
                name: sim::node::joint_state_names(),
                position: q.iter().copied().chain([1.0]).collect(),
                velocity: vec![0.0; 7],
                effort: vec![0.0; 7],
                ee_pose: Some(Pose::default()),
            }),
            bus::topics::SCENE_STATE => {
                let objects = ctx.scene.as_ref().map(|s| s.objects.clone()).unwrap_or_default();
                Msg::Scene(SceneState { header, objects })
            }
            bus::topics::COMMAND_JOINT => {
                Msg::JointCmd(JointCommand { header, position: q, gripper: 1.0, obs_stamp_ns: 0 })
            }
            bus::topics::COMMAND_EE_DELTA => Msg::Ee(EeDeltaCommand {
                header,
                delta_xyz_m: [0.0; 3],
                delta_rpy_rad: [0.0; 3],
                gripper: 1.0,
                obs_stamp_ns: 0,
            }),
            bus::topics::COMMAND_CHUNK => Msg::Chunk(ActionChunk {
                header,
                kind: ActionKind::JointTarget,
                horizon: 2,
                dim: 7,
                period_ns: 100_000_000,
                values: q.iter().chain(&[1.0]).chain(&q).chain(&[1.0]).map(|v| *v as f32).collect(),
                obs_stamp_ns: 0,
            }),
            bus::topics::COMMAND_EPISODE => {
                let request = *[EpisodeRequest::EndEpisode, EpisodeRequest::Rerecord]
                    .choose(&mut self.rng)
                    .unwrap_or(&EpisodeRequest::EndEpisode);
                Msg::Control(EpisodeControl { header, request })
            }
            bus::topics::ESTOP => Msg::Estop(Estop { header, engaged: false, reason: "fuzz".into() }),
            bus::topics::EPISODE => Msg::Episode(EpisodeEvent {
                header,
                episode_index: self.rng.random_range(0..8),
                kind: *[EpisodeEventKind::Start, EpisodeEventKind::Step, EpisodeEventKind::End]
                    .choose(&mut self.rng)
                    .unwrap_or(&EpisodeEventKind::Step),
                step: self.rng.random_range(0..200),
                scene: "fuzz".into(),
                ..Default::default()
            }),
            bus::topics::TASK => Msg::Task(Task { header, instruction: "fuzz the arm".into(), scene: "fuzz".into() }),
            bus::topics::STATUS => Msg::Status(Status {
                header,
                node: "fuzz".into(),
                state: NodeState::Running,
                message: String::new(),
                counters: Default::default(),
            }),
            _ => {
                let (w, h) = ctx.cameras.iter().find(|c| topic.ends_with(&c.0)).map_or((2, 2), |c| (c.1, c.2));
                let camera = topic.rsplit('/').next().unwrap_or_default().to_string();
                let data = vec![0u8; (w * h * 3) as usize];
                Msg::Camera(CameraFrame {
                    header,
                    camera,
                    width: w,
                    height: h,
                    encoding: ImageEncoding::Rgb8,
                    data,
                    ..Default::default()
                })
            }
        }
    }

    /// A message that decodes but has the wrong dimensions or contents for its topic.
    pub(super) fn wrong_shape(&mut self, msg: Msg, ctx: &Context) -> Result<Vec<u8>> {
        let variant = self.rng.random_range(0..4);
        let msg = match msg {
            Msg::Joint(mut m) => {
                match variant {
                    0 => {
                        m.position.truncate(5);
                        m.name.truncate(5);
                    }
                    1 => m.ee_pose = None,
                    2 => m.position.clear(),
                    _ => m.position.resize(64, 0.0),
                }
                Msg::Joint(m)
            }
            Msg::Scene(mut m) => {
                // At the robot's tick stamp: the recorder already holds a scene state there.
                m.header.stamp_ns = ctx.tick_stamp_ns.max(1);
                match variant {
                    0 | 1 => m.objects.push(ObjectPose { name: "intruder".into(), pose: Pose::default() }),
                    2 => m.objects.clear(),
                    _ => {
                        let copy = m.objects.clone();
                        m.objects.extend(copy);
                    }
                }
                Msg::Scene(m)
            }
            Msg::Camera(mut m) => {
                match variant {
                    0 => {
                        m.data.pop();
                    }
                    1 => {
                        m.width = 0;
                        m.height = 0;
                        m.data.clear();
                    }
                    2 => {
                        m.encoding = ImageEncoding::Mono8;
                        m.data.truncate((m.width * m.height) as usize);
                    }
                    _ => m.width = 1 << 16,
                }
                Msg::Camera(m)
            }
            Msg::JointCmd(mut m) => {
                m.position.resize([0, 5, 7, 100][variant], 0.0);
                Msg::JointCmd(m)
            }
            Msg::Chunk(mut m) => {
                match variant {
                    0 => m.horizon = 3,
                    1 => m.dim = 0,
                    2 => m.horizon = u32::MAX,
                    _ => {
                        m.dim = 6;
                        m.horizon = 2;
                        m.values.truncate(12);
                    }
                }
                Msg::Chunk(m)
            }
            Msg::Episode(mut m) => {
                m.kind = EpisodeEventKind::Step;
                m.step = u64::MAX;
                m.episode_index = [u64::MAX, 0, 1, 2][variant];
                Msg::Episode(m)
            }
            Msg::Estop(mut m) => {
                m.reason = "x".repeat(64 * 1024);
                Msg::Estop(m)
            }
            Msg::Task(mut m) => {
                m.instruction = ["", "\u{0}\u{7f}\u{202e}"][variant % 2].repeat(1 + variant * 1000);
                Msg::Task(m)
            }
            Msg::Status(mut m) => {
                m.node.clear();
                m.counters = (0..1000).map(|i| (format!("c{i}"), u64::MAX)).collect();
                Msg::Status(m)
            }
            // Fixed-size arrays and enums: the wrong length only exists on the wire.
            other @ (Msg::Ee(_) | Msg::Control(_)) => {
                let mut value = bus::decode_value(&other.encode()?)?;
                if let Value::Map(fields) = &mut value {
                    for (key, field) in fields.iter_mut() {
                        match (key.as_text(), field) {
                            (Some("delta_xyz_m"), Value::Array(a)) => a.truncate(2),
                            (Some("delta_rpy_rad"), Value::Array(a)) => a.push(Value::Float(0.0)),
                            (Some("request"), field) => *field = Value::Text("Teleport".into()),
                            _ => {}
                        }
                    }
                }
                return Ok(bus::encode_value(&value)?);
            }
        };
        msg.encode()
    }

    /// The message with one float (or, for messages without floats, an extra field) NaN, ±inf
    /// or ±1e300.
    pub(super) fn non_finite(&mut self, msg: Msg, finite_allowed: bool) -> Result<Vec<u8>> {
        let v = self.bad_float(finite_allowed);
        let i = self.rng.random_range(0..6);
        let msg = match msg {
            Msg::Joint(mut m) => {
                m.position[i] = v;
                if let Some(p) = m.ee_pose.as_mut() {
                    p.translation_m[i % 3] = v;
                }
                Msg::Joint(m)
            }
            Msg::Scene(mut m) => {
                match m.objects.first_mut() {
                    Some(o) => o.pose.translation_m[i % 3] = v,
                    None => m.objects.push(ObjectPose {
                        name: "cube".into(),
                        pose: Pose { translation_m: [v; 3], ..Default::default() },
                    }),
                }
                Msg::Scene(m)
            }
            Msg::Camera(mut m) => {
                m.intrinsics.fx = v;
                m.extrinsics.translation_m[i % 3] = v;
                Msg::Camera(m)
            }
            Msg::JointCmd(mut m) => {
                m.position[i] = v;
                Msg::JointCmd(m)
            }
            Msg::Ee(mut m) => {
                if i < 3 {
                    m.delta_xyz_m[i] = v;
                } else {
                    m.gripper = v;
                }
                Msg::Ee(m)
            }
            Msg::Chunk(mut m) => {
                let n = m.values.len();
                m.values[i % n.max(1)] = v as f32;
                Msg::Chunk(m)
            }
            Msg::Episode(mut m) => {
                m.reward = v;
                Msg::Episode(m)
            }
            other => {
                let mut value = bus::decode_value(&other.encode()?)?;
                if let Value::Map(fields) = &mut value {
                    fields.push((Value::Text("fuzz_value".into()), Value::Float(v)));
                }
                return Ok(bus::encode_value(&value)?);
            }
        };
        msg.encode()
    }

    /// A payload of 1 MB up to the maximum: the topic's message with a huge vector, image or
    /// string, or random bytes.
    pub(super) fn huge(&mut self, msg: Msg) -> Result<Vec<u8>> {
        let bytes = self.rng.random_range(self.max_payload_bytes.min(1 << 20)..=self.max_payload_bytes);
        let msg = match msg {
            Msg::Camera(mut m) => {
                m.data = vec![0x5a; bytes];
                Msg::Camera(m)
            }
            Msg::JointCmd(mut m) => {
                m.position = vec![0.0; bytes / 9];
                Msg::JointCmd(m)
            }
            Msg::Joint(mut m) => {
                m.position = vec![0.5; bytes / 9];
                Msg::Joint(m)
            }
            Msg::Chunk(mut m) => {
                // A valid chunk of ~bytes/35 rows that hold the current pose.
                let row: Vec<f32> = m.values[..7].to_vec();
                let rows = (bytes / 35).max(1);
                m.values = row.iter().copied().cycle().take(rows * 7).collect();
                m.horizon = rows as u32;
                Msg::Chunk(m)
            }
            Msg::Task(mut m) => {
                m.instruction = "a".repeat(bytes);
                Msg::Task(m)
            }
            _ => {
                let mut random = vec![0u8; bytes];
                self.rng.fill(&mut random[..]);
                return Ok(random);
            }
        };
        msg.encode()
    }
}
