//! A chain of emulated servos on one bus: executes instruction packets the way X-series firmware
//! does and produces the status packets the servos would send, in bus order.

use crate::control_table::{self as ct, LimitRegisters, TABLE_SIZE, WRITABLE_FIELDS};
use crate::protocol::{status_packet, ErrorNumber, Instruction, Packet, StatusError, BROADCAST_ID};
use crate::servo_bus::decode_signed;

use super::servo::EmulatedServo;

/// Servos sharing one bus.
#[derive(Clone, Debug, Default)]
pub struct ServoChain {
    /// The servos, in any order.
    pub servos: Vec<EmulatedServo>,
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

impl ServoChain {
    /// Advances every servo's dynamics.
    pub fn step(&mut self, dt_s: f64) {
        for s in &mut self.servos {
            s.step(dt_s);
        }
    }

    /// The servo with primary `id`.
    pub fn servo_mut(&mut self, id: u8) -> Option<&mut EmulatedServo> {
        self.servos.iter_mut().find(|s| s.id() == id)
    }

    /// The servo with primary `id`.
    pub fn servo(&self, id: u8) -> Option<&EmulatedServo> {
        self.servos.iter().find(|s| s.id() == id)
    }

    /// Executes one instruction packet; returns the status packets sent back, in order.
    pub fn execute(&mut self, p: &Packet) -> Vec<Packet> {
        let Some(inst) = Instruction::from_code(p.instruction) else {
            // Unknown instruction: an addressed, answering servo says so.
            return self.reply_if_addressed(p.id, |_| (err(ErrorNumber::Instruction), Vec::new()));
        };
        match inst {
            Instruction::Ping => {
                let targets: Vec<u8> = self.primaries(p.id);
                targets
                    .into_iter()
                    .filter_map(|id| {
                        let s = self.servo(id)?;
                        let mut data = (s.model.number).to_le_bytes().to_vec();
                        data.push(s.table[ct::FIRMWARE_VERSION.address as usize]);
                        s.answering.then(|| status_packet(id, alert(s), &data))
                    })
                    .collect()
            }
            Instruction::Read => {
                if p.params.len() != 4 {
                    return self.reply_if_addressed(p.id, |_| (err(ErrorNumber::DataLength), Vec::new()));
                }
                let (addr, len) = (le16(&p.params[0..]), le16(&p.params[2..]));
                self.reply_if_addressed(p.id, |s| read_table(s, addr, len))
            }
            Instruction::Write | Instruction::RegWrite => {
                if p.params.len() < 3 {
                    return self.reply_if_addressed(p.id, |_| (err(ErrorNumber::DataLength), Vec::new()));
                }
                let addr = le16(&p.params);
                let data = p.params[2..].to_vec();
                let reg = inst == Instruction::RegWrite;
                self.for_each_target(p.id, |s| {
                    if reg {
                        s.registered = Some((addr, data.clone()));
                        (StatusError::default(), Vec::new())
                    } else {
                        (write_table(s, addr, &data), Vec::new())
                    }
                })
            }
            Instruction::Action => self.for_each_target(p.id, |s| match s.registered.take() {
                Some((addr, data)) => (write_table(s, addr, &data), Vec::new()),
                None => (err(ErrorNumber::Instruction), Vec::new()),
            }),
            Instruction::Reboot => self.for_each_target(p.id, |s| {
                s.reboot();
                (StatusError::default(), Vec::new())
            }),
            Instruction::FactoryReset => self.reply_if_addressed(p.id, |_| (err(ErrorNumber::ResultFail), Vec::new())),
            Instruction::SyncRead => {
                if p.params.len() < 4 || p.id != BROADCAST_ID {
                    return Vec::new();
                }
                let (addr, len) = (le16(&p.params[0..]), le16(&p.params[2..]));
                let ids = p.params[4..].to_vec();
                self.reply_each(&ids.iter().map(|&id| (id, addr, len)).collect::<Vec<_>>())
            }
            Instruction::BulkRead => {
                if !p.params.len().is_multiple_of(5) || p.id != BROADCAST_ID {
                    return Vec::new();
                }
                let items: Vec<(u8, u16, u16)> =
                    p.params.chunks(5).map(|c| (c[0], le16(&c[1..]), le16(&c[3..]))).collect();
                self.reply_each(&items)
            }
            Instruction::SyncWrite => {
                if p.params.len() < 4 || p.id != BROADCAST_ID {
                    return Vec::new();
                }
                let (addr, len) = (le16(&p.params[0..]), le16(&p.params[2..]) as usize);
                for item in p.params[4..].chunks(len + 1) {
                    if item.len() == len + 1 {
                        self.write_silently(item[0], addr, &item[1..]);
                    }
                }
                Vec::new()
            }
            Instruction::BulkWrite => {
                let mut rest = &p.params[..];
                while rest.len() >= 5 {
                    let (id, addr, len) = (rest[0], le16(&rest[1..]), le16(&rest[3..]) as usize);
                    let Some(data) = rest.get(5..5 + len) else { break };
                    self.write_silently(id, addr, data);
                    rest = &rest[5 + len..];
                }
                Vec::new()
            }
        }
    }

    /// Primary IDs a packet to `id` addresses (all servos for broadcast).
    fn primaries(&self, id: u8) -> Vec<u8> {
        if id == BROADCAST_ID {
            self.servos.iter().map(|s| s.id()).collect()
        } else {
            vec![id]
        }
    }

    /// Applies `f` to every servo addressed by `id` (primary, secondary or broadcast); only a
    /// primary addressed by its own ID replies.
    fn for_each_target(
        &mut self,
        id: u8,
        mut f: impl FnMut(&mut EmulatedServo) -> (StatusError, Vec<u8>),
    ) -> Vec<Packet> {
        let mut out = Vec::new();
        for s in &mut self.servos {
            if !s.answering {
                continue;
            }
            let primary = s.id() == id;
            if primary || id == BROADCAST_ID || s.secondary_id() == Some(id) {
                let (e, data) = f(s);
                if primary {
                    out.push(status_packet(s.id(), with_alert(e, s), &data));
                }
            }
        }
        out
    }

    fn reply_if_addressed(
        &mut self,
        id: u8,
        f: impl FnMut(&mut EmulatedServo) -> (StatusError, Vec<u8>),
    ) -> Vec<Packet> {
        if id == BROADCAST_ID {
            return Vec::new();
        }
        self.for_each_target(id, f)
    }

    /// Sync/bulk read replies, in list order; silent and unknown servos leave a gap.
    fn reply_each(&mut self, items: &[(u8, u16, u16)]) -> Vec<Packet> {
        items
            .iter()
            .filter_map(|&(id, addr, len)| {
                let s = self.servo(id)?;
                if !s.answering {
                    return None;
                }
                let (e, data) = read_table(s, addr, len);
                Some(status_packet(id, with_alert(e, s), &data))
            })
            .collect()
    }

    fn write_silently(&mut self, id: u8, addr: u16, data: &[u8]) {
        for s in &mut self.servos {
            if s.answering && (s.id() == id || s.secondary_id() == Some(id)) {
                write_table(s, addr, data);
            }
        }
    }
}

fn err(e: ErrorNumber) -> StatusError {
    StatusError { alert: false, error: Some(e) }
}

fn alert(s: &EmulatedServo) -> StatusError {
    StatusError { alert: !s.hardware_error().is_empty(), error: None }
}

fn with_alert(e: StatusError, s: &EmulatedServo) -> StatusError {
    StatusError { alert: !s.hardware_error().is_empty(), ..e }
}

fn read_table(s: &EmulatedServo, addr: u16, len: u16) -> (StatusError, Vec<u8>) {
    let (a, n) = (addr as usize, len as usize);
    if a + n > TABLE_SIZE {
        return (err(ErrorNumber::DataRange), Vec::new());
    }
    (StatusError::default(), s.table[a..a + n].to_vec())
}

/// Writes with the firmware's checks: EEPROM (below Torque_Enable) is locked while torque is on,
/// read-only fields reject writes, a value outside its register's documented range (goals:
/// outside the limit registers) is a Data Range error and nothing is stored, torque cannot be
/// enabled with a latched hardware error.
fn write_table(s: &mut EmulatedServo, addr: u16, data: &[u8]) -> StatusError {
    let (a, n) = (addr as usize, data.len());
    if a + n > TABLE_SIZE {
        return err(ErrorNumber::DataRange);
    }
    let torque = ct::TORQUE_ENABLE.address as usize;
    if a < torque && s.torque_on() {
        return err(ErrorNumber::Access);
    }
    let read_only = [(0, 7), (ct::HARDWARE_ERROR_STATUS.address as usize, 1), (120, 27)];
    if read_only.iter().any(|&(ro, len)| a < ro + len && ro < a + n) {
        return err(ErrorNumber::Access);
    }
    if !in_documented_range(s, a, data) {
        return err(ErrorNumber::DataRange);
    }
    if (a..a + n).contains(&torque) && data[torque - a] != 0 && !s.hardware_error().is_empty() {
        return StatusError { alert: true, error: Some(ErrorNumber::ResultFail) };
    }
    s.table[a..a + n].copy_from_slice(data);
    s.refresh_present();
    StatusError::default()
}

/// Whether every register the write of `data` at byte `a` touches would hold a value in its
/// documented range for the servo's model, judged against the limit registers as they are.
fn in_documented_range(s: &EmulatedServo, a: usize, data: &[u8]) -> bool {
    let mut written = s.table;
    written[a..a + data.len()].copy_from_slice(data);
    let limits = LimitRegisters::read(|f| s.get(f));
    WRITABLE_FIELDS.iter().all(|&f| {
        let (start, end) = (f.address as usize, (f.address + f.size) as usize);
        let touched = start < a + data.len() && a < end;
        let value = decode_signed(&written[start..end]);
        !touched || ct::write_range(f, s.model, &limits).is_none_or(|range| range.contains(value))
    })
}
