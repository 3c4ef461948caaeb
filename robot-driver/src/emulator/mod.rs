//! A servo-chain emulator that speaks Protocol 2.0: the driver's real code runs against it over a
//! pseudo-terminal ([`PtyServer`], the full serial path) or in process ([`EmulatedPort`]).
//!
//! Dynamics are plain but plausible (first-order tracking, limits, PWM grippers on their stops);
//! time is the wall clock, advanced whenever a packet arrives. Faults are injected at the wire:
//! dropped replies, corrupted bytes in either direction, servos that stop answering, and latched
//! hardware errors (which drop torque, as the firmware does). Replies can be paced at the baud rate
//! so a benchmark over the emulator sees the bus time a real chain would take.

mod chain;
mod port;
mod pty;
mod servo;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use chain::ServoChain;
pub use port::EmulatedPort;
pub use pty::PtyServer;
pub use servo::{EmulatedServo, Hand, TRACKING_TAU_S};

use crate::control_table::{self as ct, rad_to_ticks};
use crate::protocol::instruction::Instruction;
use crate::protocol::{PacketReader, Parsed};
use crate::servo_map::{ServoMap, NUM_JOINTS};

/// Faults injected on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a servo's reply is not sent.
    pub drop_reply: f64,
    /// Probability that each byte (request or reply) has one bit flipped.
    pub corrupt_byte: f64,
    /// Seed of the fault generator.
    pub seed: u64,
}

/// Emulator settings.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Baud rate the emulated bus runs at, bit/s (pacing).
    pub baud: u32,
    /// Delay replies by the bus time of request + reply (10 bits per byte).
    pub paced: bool,
    /// Faults.
    pub faults: Faults,
    /// Arm pose at power-on, rad (6 joints).
    pub pose_rad: [f64; NUM_JOINTS],
    /// Gripper opening at power-on, 0…1.
    pub gripper_opening: f64,
    /// Mechanical offset of each servo's encoder (servo ID → ticks): what `armstack calibrate`
    /// measures. The raw tick at joint angle θ is `2048 + θ/rad_per_tick + offset`.
    pub mount_offset_ticks: BTreeMap<u8, i32>,
    /// Extra delay before every reply (zero by default): a host too busy to serve the emulator
    /// at once, or a slow adapter.
    pub reply_latency: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            baud: 1_000_000,
            paced: true,
            faults: Faults::default(),
            pose_rad: [0.0, -1.80, 1.55, 0.0, 0.8, 0.0],
            gripper_opening: 0.5,
            mount_offset_ticks: BTreeMap::new(),
            reply_latency: Duration::ZERO,
        }
    }
}

/// Counters of what the emulator saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmulatorStats {
    /// Instruction packets executed.
    pub packets: u64,
    /// Sync reads executed (a driver reads its state with one per cycle).
    pub sync_reads: u64,
    /// Requests the servos could not parse (corrupted on the way in).
    pub bad_requests: u64,
    /// Replies dropped by fault injection.
    pub dropped_replies: u64,
    /// Bytes corrupted by fault injection.
    pub corrupted_bytes: u64,
}

struct State {
    chain: ServoChain,
    config: EmulatorConfig,
    rng: u64,
    last_step: Instant,
    stats: EmulatorStats,
}

impl State {
    fn advance(&mut self) {
        let now = Instant::now();
        let dt = (now - self.last_step).as_secs_f64();
        self.last_step = now;
        self.chain.step(dt);
    }

    /// splitmix64 → uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn corrupt(&mut self, bytes: &mut [u8]) {
        let p = self.config.faults.corrupt_byte;
        if p <= 0.0 {
            return;
        }
        for b in bytes {
            if self.uniform() < p {
                let bit = (self.uniform() * 8.0) as u32 % 8;
                *b ^= 1 << bit;
                self.stats.corrupted_bytes += 1;
            }
        }
    }
}

/// A handle on one emulated chain (cheap to clone; all clones share the servos).
#[derive(Clone)]
pub struct Emulator {
    state: Arc<Mutex<State>>,
}

impl Emulator {
    /// A chain of factory-fresh servos with the IDs and models of `map`, the arm at
    /// `config.pose_rad`. Settings the driver configures (modes, limits, secondary IDs, drive
    /// modes, homing offsets) are left at factory values, so the driver's start-up does the work.
    pub fn from_map(map: &ServoMap, config: EmulatorConfig) -> Emulator {
        let mut servos = Vec::new();
        let raw =
            |id: u8, rad: f64| (rad_to_ticks(rad) + config.mount_offset_ticks.get(&id).copied().unwrap_or(0)) as f64;
        for (j, q) in map.joints.iter().zip(config.pose_rad) {
            let model = ct::model_by_name(&j.model).unwrap_or(&ct::MODELS[0]);
            servos.push(EmulatedServo::new(j.id, model, raw(j.id, q)));
            if let Some(s) = j.shadow_id {
                servos.push(EmulatedServo::new(s, model, raw(s, q)));
            }
        }
        let g = &map.gripper;
        let model = ct::model_by_name(&g.model).unwrap_or(&ct::MODELS[0]);
        servos.push(EmulatedServo::new(g.id, model, raw(g.id, map.gripper_rad(config.gripper_opening))));
        let rng = config.faults.seed;
        Emulator {
            state: Arc::new(Mutex::new(State {
                chain: ServoChain { servos },
                config,
                rng,
                last_step: Instant::now(),
                stats: EmulatorStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the chain after advancing its dynamics to now (inspection and scripted faults).
    pub fn with_chain<R>(&self, f: impl FnOnce(&mut ServoChain) -> R) -> R {
        let mut s = self.lock();
        s.advance();
        f(&mut s.chain)
    }

    /// Replaces the wire faults.
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.lock();
        s.rng = faults.seed;
        s.config.faults = faults;
    }

    /// Makes servo `id` stop (or resume) answering.
    pub fn set_answering(&self, id: u8, answering: bool) {
        self.with_chain(|c| c.servo_mut(id).map(|s| s.answering = answering));
    }

    /// Latches hardware error bits on servo `id` (torque drops).
    pub fn raise_hardware_error(&self, id: u8, bits: u8) {
        self.with_chain(|c| c.servo_mut(id).map(|s| s.raise_hardware_error(bits)));
    }

    /// Puts a hand on servo `id` (moves it while torque is off).
    pub fn set_hand(&self, id: u8, hand: Hand) {
        self.with_chain(|c| {
            if let Some(s) = c.servo_mut(id) {
                s.hand = hand;
                s.hand_time_s = 0.0;
            }
        });
    }

    /// Present position of servo `id` as its control table shows it, ticks.
    pub fn present_ticks(&self, id: u8) -> Option<f64> {
        self.with_chain(|c| c.servo(id).map(|s| s.present_ticks()))
    }

    /// Counters so far.
    pub fn stats(&self) -> EmulatorStats {
        self.lock().stats
    }

    /// The configuration (baud, faults, pose, mount offsets).
    pub fn config(&self) -> EmulatorConfig {
        self.lock().config.clone()
    }

    /// Feeds request bytes from the host; returns the reply bytes and how long the bus would
    /// have been busy (request + reply at the baud rate, when paced, plus the reply latency).
    pub fn exchange(&self, request: &[u8], reader: &mut PacketReader) -> (Vec<u8>, Duration) {
        let mut s = self.lock();
        let mut bytes = request.to_vec();
        s.corrupt(&mut bytes);
        reader.push(&bytes);
        let mut reply = Vec::new();
        loop {
            match reader.next_packet() {
                Parsed::Packet(p, _) if !p.is_status() => {
                    s.advance();
                    s.stats.packets += 1;
                    if p.instruction == Instruction::SyncRead as u8 {
                        s.stats.sync_reads += 1;
                    }
                    for status in s.chain.execute(&p) {
                        if s.config.faults.drop_reply > 0.0 && s.uniform() < s.config.faults.drop_reply {
                            s.stats.dropped_replies += 1;
                            continue;
                        }
                        let start = reply.len();
                        status.encode_into(&mut reply);
                        let tail = &mut reply[start..];
                        s.corrupt(tail);
                    }
                }
                Parsed::Packet(..) => {}
                Parsed::Error(_) => s.stats.bad_requests += 1,
                Parsed::Incomplete => break,
            }
        }
        let mut busy = if s.config.paced {
            Duration::from_secs_f64((request.len() + reply.len()) as f64 * 10.0 / s.config.baud.max(1) as f64)
        } else {
            Duration::ZERO
        };
        if !reply.is_empty() {
            busy += s.config.reply_latency;
        }
        (reply, busy)
    }

    /// An in-process port onto this chain.
    pub fn port(&self) -> EmulatedPort {
        EmulatedPort::new(self.clone())
    }

    /// Serves this chain on a new pseudo-terminal; the driver opens [`PtyServer::path`].
    pub fn serve_pty(&self) -> std::io::Result<PtyServer> {
        PtyServer::start(self.clone())
    }
}
