//! What the fuzzer sends: every kind of hostile message for a topic, built from one seeded
//! generator so that a run is reproducible from `--seed`. The payloads are raw CBOR put on the
//! topic's key ([`bus::Bus::put_raw`]), so nothing here is limited to what the typed encoder
//! would produce.

use anyhow::Result;
use bus::{Estop, Header, SceneState, Value, SCHEMA_VERSION};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::shapes::Msg;

const SECOND_NS: u64 = 1_000_000_000;
const HOUR_NS: u64 = 3_600 * SECOND_NS;

/// A kind of hostile message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Random bytes, and valid encodings truncated or with bytes flipped.
    RandomBytes,
    /// Valid CBOR of another message type, bare scalars, fields missing, null or of another type.
    WrongSchema,
    /// A valid message of a newer schema version.
    NewerSchema,
    /// Wrong lengths and shapes: 5 joints, `ee_pose: null`, an extra scene object at a tick
    /// stamp, camera data of the wrong size, chunks whose size disagrees with horizon × dim.
    WrongShape,
    /// NaN, ±inf and ±1e300 values.
    NonFinite,
    /// Stamps 0, 1 ns, 1970 + 1 s, now ± 1 h, 2^64 − 1, a minute ago (before every scene
    /// state) and a second ahead.
    BadStamp,
    /// One publisher's `seq` jumping 0 → 2^64 − 1 → 0 → 2^64 − 2 → 1.
    SeqJump,
    /// Payloads of several MB (up to `--max-payload-mb`).
    Huge,
    /// Fresh, valid commands from a second publisher.
    SecondSource,
    /// Fresh, valid commands far outside the joint limits, alternating ends (top speed asked).
    Extreme,
    /// An e-stop engage and release published back to back (within one cycle).
    EstopPulse,
    /// Releases stamped 0 (seq 0, any source), before the engage, an hour ahead or 2^64 − 1, and
    /// the pulse's own release replayed once stale.
    StaleRelease,
    /// Bursts of end-episode and re-record requests with any stamp and source, and forged
    /// `episode` events.
    EpisodeFlood,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 13] = [
        Kind::RandomBytes,
        Kind::WrongSchema,
        Kind::NewerSchema,
        Kind::WrongShape,
        Kind::NonFinite,
        Kind::BadStamp,
        Kind::SeqJump,
        Kind::Huge,
        Kind::SecondSource,
        Kind::Extreme,
        Kind::EstopPulse,
        Kind::StaleRelease,
        Kind::EpisodeFlood,
    ];

    /// The kinds sent as payload cases of a round, on every input topic of a target: the first
    /// seven of [`Kind::ALL`] (the others are sent by the round itself: one huge payload, the
    /// typed commands, the floods, the e-stop probes).
    pub fn garbage() -> &'static [Kind] {
        &Kind::ALL[..7]
    }

    /// The name used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::RandomBytes => "random_bytes",
            Kind::WrongSchema => "wrong_schema",
            Kind::NewerSchema => "newer_schema",
            Kind::WrongShape => "wrong_shape",
            Kind::NonFinite => "non_finite",
            Kind::BadStamp => "bad_stamp",
            Kind::SeqJump => "seq_jump",
            Kind::Huge => "huge",
            Kind::SecondSource => "second_source",
            Kind::Extreme => "extreme",
            Kind::EstopPulse => "estop_pulse",
            Kind::StaleRelease => "stale_release",
            Kind::EpisodeFlood => "episode_flood",
        }
    }
}

/// What the generator knows of the robot when it builds a case.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The fuzzer's wall clock, ns since the UNIX epoch.
    pub now_ns: u64,
    /// The robot's latest measured arm joints, rad.
    pub pose_rad: [f64; 6],
    /// The robot's latest `scene_state` (a template for forged ones), if it publishes one.
    pub scene: Option<SceneState>,
    /// Stamp of the robot's latest observation (a tick stamp), ns.
    pub tick_stamp_ns: u64,
    /// Camera topics the robot publishes, with their image size (width, height), pixels.
    pub cameras: Vec<(String, u32, u32)>,
    /// Commands must never be admissible during an episode (the recorder stops at a second
    /// command source): command topics only get stamps outside every episode.
    pub commands_outside_episodes: bool,
}

/// Builds hostile payloads deterministically from a seed.
pub struct Generator {
    pub(super) rng: ChaCha8Rng,
    source_id: u64,
    seq: u64,
    pub(super) max_payload_bytes: usize,
}

/// Whether `topic` moves the robot.
pub fn is_command(topic: &str) -> bool {
    matches!(topic, bus::topics::COMMAND_JOINT | bus::topics::COMMAND_EE_DELTA | bus::topics::COMMAND_CHUNK)
}

impl Generator {
    /// A generator seeded with `seed`, whose huge payloads are at most `max_payload_bytes`.
    pub fn new(seed: u64, max_payload_bytes: usize) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let source_id = rng.random::<u64>().max(1);
        Generator { rng, source_id, seq: 0, max_payload_bytes: max_payload_bytes.max(1) }
    }

    /// The generator's random source (case order, pacing).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub(super) fn header(&mut self, stamp_ns: u64) -> Header {
        self.seq += 1;
        Header { schema: SCHEMA_VERSION, stamp_ns, seq: self.seq, source_id: self.source_id }
    }

    /// A stamp no episode holds, for commands a recorder must not take for a second commander.
    fn stamp_outside_episodes(&mut self, now_ns: u64) -> u64 {
        let stamps = [0, 1, SECOND_NS, now_ns.saturating_sub(HOUR_NS), now_ns.saturating_add(HOUR_NS), u64::MAX];
        *stamps.choose(&mut self.rng).unwrap_or(&0)
    }

    /// A fresh stamp, or one outside every episode for commands when the context asks.
    fn stamp_for(&mut self, topic: &str, ctx: &Context) -> u64 {
        if ctx.commands_outside_episodes && is_command(topic) {
            self.stamp_outside_episodes(ctx.now_ns)
        } else {
            ctx.now_ns
        }
    }

    /// One of NaN, ±inf, ±1e300; only non-finite values where a finite one would be admissible.
    pub(super) fn bad_float(&mut self, finite_allowed: bool) -> f64 {
        let values: &[f64] = if finite_allowed {
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300]
        } else {
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
        };
        *values.choose(&mut self.rng).unwrap_or(&f64::NAN)
    }

    /// The payloads of one case: `kind` (one of [`Kind::garbage`], or [`Kind::Huge`]) on `topic`.
    pub fn case(&mut self, kind: Kind, topic: &str, ctx: &Context) -> Result<Vec<Vec<u8>>> {
        let stamp = self.stamp_for(topic, ctx);
        let mut msg = self.base(topic, ctx, stamp);
        Ok(match kind {
            Kind::RandomBytes => vec![self.random_bytes(msg.encode()?)],
            Kind::WrongSchema => vec![self.wrong_schema(topic, ctx, &msg)?],
            Kind::NewerSchema => {
                msg.header_mut().schema = *[SCHEMA_VERSION + 1, u16::MAX].choose(&mut self.rng).unwrap_or(&u16::MAX);
                vec![msg.encode()?]
            }
            Kind::WrongShape => vec![self.wrong_shape(msg, ctx)?],
            Kind::NonFinite => {
                let finite_allowed = !(ctx.commands_outside_episodes && is_command(topic));
                vec![self.non_finite(msg, finite_allowed)?]
            }
            Kind::BadStamp => {
                let now = ctx.now_ns;
                msg.header_mut().stamp_ns = if ctx.commands_outside_episodes && is_command(topic) {
                    self.stamp_outside_episodes(now)
                } else {
                    let stamps = [
                        0,
                        1,
                        SECOND_NS,
                        now.saturating_sub(HOUR_NS),
                        now.saturating_add(HOUR_NS),
                        u64::MAX,
                        now.saturating_sub(60 * SECOND_NS),
                        now.saturating_add(SECOND_NS),
                    ];
                    *stamps.choose(&mut self.rng).unwrap_or(&0)
                };
                vec![msg.encode()?]
            }
            Kind::SeqJump => {
                let mut out = Vec::new();
                for seq in [0, u64::MAX, 0, u64::MAX - 1, 1] {
                    msg.header_mut().seq = seq;
                    out.push(msg.encode()?);
                }
                out
            }
            Kind::Huge => vec![self.huge(msg)?],
            _ => anyhow::bail!("{} is not a payload case", kind.name()),
        })
    }

    /// Pure random bytes, or `valid` truncated, or `valid` with a few bytes flipped.
    fn random_bytes(&mut self, mut valid: Vec<u8>) -> Vec<u8> {
        match self.rng.random_range(0..3) {
            0 => {
                let mut bytes = vec![0u8; self.rng.random_range(0..=512)];
                self.rng.fill(&mut bytes[..]);
                bytes
            }
            1 => {
                let keep = self.rng.random_range(0..valid.len().max(1));
                valid.truncate(keep);
                valid
            }
            _ => {
                for _ in 0..self.rng.random_range(1..=8) {
                    if valid.is_empty() {
                        break;
                    }
                    let i = self.rng.random_range(0..valid.len());
                    valid[i] ^= self.rng.random_range(1..=255u8);
                }
                valid
            }
        }
    }

    /// Another topic's message, a bare scalar, or this message with one field missing, null or
    /// of another type.
    fn wrong_schema(&mut self, topic: &str, ctx: &Context, msg: &Msg) -> Result<Vec<u8>> {
        let value = match self.rng.random_range(0..3) {
            0 => {
                let others: Vec<&str> = bus::topic_names()
                    .iter()
                    .copied()
                    .filter(|t| *t != topic && *t != bus::topics::CAMERA && *t != bus::topics::COMMAND_EPISODE)
                    .collect();
                let other = others.choose(&mut self.rng).copied().unwrap_or(bus::topics::TASK);
                let stamp = self.stamp_for(topic, ctx);
                return self.base(other, ctx, stamp).encode();
            }
            1 => [
                Value::Integer(self.rng.random::<u32>().into()),
                Value::Text("armstack".into()),
                Value::Array(vec![Value::Null; 3]),
                Value::Null,
                Value::Bool(true),
                Value::Float(f64::NAN),
            ]
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or(Value::Null),
            _ => {
                let mut value = bus::decode_value(&msg.encode()?)?;
                if let Value::Map(fields) = &mut value {
                    if !fields.is_empty() {
                        let i = self.rng.random_range(0..fields.len());
                        match self.rng.random_range(0..4) {
                            0 => {
                                fields.remove(i);
                            }
                            1 => fields[i].1 = Value::Null,
                            2 => fields[i].1 = Value::Text("fuzz".into()),
                            _ => fields[i].1 = Value::Array(vec![Value::Integer(1.into()); 2]),
                        }
                    }
                }
                value
            }
        };
        Ok(bus::encode_value(&value)?)
    }

    /// A burst of end-episode and re-record requests (never `Stop`) with any stamp and source,
    /// or (`episode`) forged episode events stamped now.
    pub fn episode_flood(&mut self, topic: &str, ctx: &Context) -> Result<Vec<Vec<u8>>> {
        let n = self.rng.random_range(20..=50);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let stamp =
                *[ctx.now_ns, 0, ctx.now_ns.saturating_add(HOUR_NS), u64::MAX].choose(&mut self.rng).unwrap_or(&0);
            let mut msg = self.base(topic, ctx, stamp);
            msg.header_mut().source_id = self.rng.random::<u64>();
            out.push(msg.encode()?);
        }
        Ok(out)
    }

    /// Releases no latch may obey: stamped 0 with seq 0 from a random source, just before
    /// `engaged_ns`, an hour ahead, and 2^64 − 1.
    pub fn stale_releases(&mut self, engaged_ns: u64, now_ns: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for stamp_ns in [0, engaged_ns.saturating_sub(1), now_ns.saturating_add(HOUR_NS), u64::MAX] {
            let source_id = self.rng.random::<u64>();
            let header = Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id };
            out.push(bus::encode(&Estop { header, engaged: false, reason: "replayed".into() })?);
        }
        Ok(out)
    }

    /// Joint targets far outside the limits (±10 rad, ±1e300, alternating ends) for the typed
    /// commander.
    pub fn extreme_joints(&mut self) -> [f64; 6] {
        let ends = [-10.0, 10.0, -1e300, 1e300, -4.0, 4.0];
        std::array::from_fn(|_| *ends.choose(&mut self.rng).unwrap_or(&10.0))
    }

    /// End-effector deltas far beyond the per-step bound (±1 m, ±1e300).
    pub fn extreme_delta(&mut self) -> [f64; 3] {
        let ends = [-1.0, 1.0, -1e300, 1e300];
        std::array::from_fn(|_| *ends.choose(&mut self.rng).unwrap_or(&1.0))
    }
}
