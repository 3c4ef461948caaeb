//! Start-up of the arm: pings and model checks, configuration of every servo from the servo map
//! (each value checked against the control table's documented range first), and the checks of
//! voltage, hardware errors, joint positions and shadows before torque may be enabled.

use crate::control_table::{
    self as ct, check_write, model_by_number, write_range, Field, LimitRegisters, LIMIT_REGISTERS,
};
use crate::protocol::HardwareError;
use crate::servo_bus::{decode_signed, ServoBusConfig};
use crate::servo_map::ServoRef;

use super::{Arm, ArmError, StartupReport};

impl Arm {
    /// Pings every servo, checks models, turns torque off, writes the map's settings, reads them
    /// back, and checks voltage, hardware errors, joint positions and shadow agreement. Torque
    /// stays off; on any problem the error lists every servo at fault and why.
    pub fn start(&mut self) -> Result<StartupReport, ArmError> {
        self.with_startup_retries(Self::start_checks)
    }

    /// Runs `f` with at least 10 retries per transaction: start-up (and enabling torque) is not
    /// time-critical, so a noisy line must not refuse a healthy arm.
    pub(super) fn with_startup_retries<T>(&mut self, f: impl FnOnce(&mut Arm) -> T) -> T {
        let loop_config = self.bus.config();
        self.bus.set_config(ServoBusConfig { retries: loop_config.retries.max(10), ..loop_config });
        let result = f(self);
        self.bus.set_config(loop_config);
        result
    }

    /// Pings every servo and checks its model against the map; torque is not touched. Returns
    /// (ID, role, model, firmware) per servo, or every problem found.
    pub fn check_servos(&mut self) -> Result<Vec<(u8, String, &'static str, u8)>, ArmError> {
        let mut problems = Vec::new();
        let mut found = Vec::new();
        for s in self.servos.clone() {
            match self.bus.ping(s.id) {
                Ok((number, fw)) if number == s.model.number => found.push((s.id, s.role.clone(), s.model.name, fw)),
                Ok((number, _)) => problems.push(format!(
                    "servo {} ({}) is a {} (model {number}); the servo map says {}",
                    s.id,
                    s.role,
                    model_by_number(number).map_or("unknown model", |m| m.name),
                    s.model.name
                )),
                Err(e) => problems.push(format!("servo {} ({}) did not answer a ping: {e}", s.id, s.role)),
            }
        }
        if problems.is_empty() {
            Ok(found)
        } else {
            Err(ArmError::Startup(problems))
        }
    }

    fn start_checks(&mut self) -> Result<StartupReport, ArmError> {
        let servos = self.check_servos()?;
        let mut problems = Vec::new();
        let mut report = StartupReport { servos, min_voltage_v: f64::INFINITY };
        for s in self.servos.clone() {
            if let Err(e) = self.configure(&s) {
                problems.push(format!("servo {} ({}): {e}", s.id, s.role));
            }
        }
        if !problems.is_empty() {
            return Err(ArmError::Startup(problems));
        }
        for s in self.servos.clone() {
            let hw = HardwareError(self.bus.read_field(s.id, ct::HARDWARE_ERROR_STATUS)? as u8);
            if !hw.is_empty() {
                problems.push(format!(
                    "servo {} ({}) has a latched hardware error: {hw} (reboot or power-cycle it)",
                    s.id, s.role
                ));
            }
            let v = self.bus.read_field(s.id, ct::PRESENT_INPUT_VOLTAGE)? as f64 / 10.0;
            report.min_voltage_v = report.min_voltage_v.min(v);
            let safety = &self.map.safety;
            if v < safety.min_voltage_v || v > safety.max_voltage_v {
                problems.push(format!(
                    "servo {} ({}) sees {v:.1} V, outside {:.1}–{:.1} V",
                    s.id, s.role, safety.min_voltage_v, safety.max_voltage_v
                ));
            }
        }
        match self.read_state() {
            Ok(state) => {
                for (i, j) in self.map.joints.iter().enumerate() {
                    let q = state.q_rad[i];
                    if q < j.min_rad - 0.02 || q > j.max_rad + 0.02 {
                        problems.push(format!(
                            "joint {} is at {q:.3} rad, outside its limits [{}, {}]: move it inside by hand (torque is off)",
                            j.name, j.min_rad, j.max_rad
                        ));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(ArmError::Startup(problems))
        }
    }

    /// Writes one servo's settings with torque off, verifies them and reads the limit registers
    /// the goal ranges depend on. Every value is checked against its documented range
    /// before the first write, so a servo is never left half configured by a refused value.
    fn configure(&mut self, s: &ServoRef) -> Result<(), String> {
        let id = s.id;
        let settings = self.map.register_settings(s);
        let k = self.index(id).map_err(|e| e.to_string())?;
        for &(f, v) in &settings {
            check_write(f, v, s.model, &self.limits[k]).map_err(|e| format!("refusing to write {e}"))?;
        }
        self.write_register(id, ct::TORQUE_ENABLE, 0).map_err(|e| e.to_string())?;
        for &(f, v) in &settings {
            self.write_register(id, f, v).map_err(|e| format!("writing {}: {e}", f.name))?;
        }
        // One block read verifies every setting and fetches the limits this driver does not set
        // (Current_Limit, Velocity_Limit, PWM_Limit outside PWM mode), so goals are checked
        // against what the servo holds. Its length is unique, so a late reply to an earlier
        // request cannot pass for it.
        let wide = LimitRegisters::widest(s.model);
        let limit_fields = LIMIT_REGISTERS.into_iter().filter(|&f| write_range(f, s.model, &wide).is_some());
        let fields: Vec<Field> = settings.iter().map(|&(f, _)| f).chain(limit_fields.clone()).collect();
        let start = fields.iter().map(|f| f.address).min().unwrap_or(0);
        let end = fields.iter().map(|f| f.address + f.size).max().unwrap_or(start);
        let block = self.bus.read(id, start, end - start).map_err(|e| format!("reading the settings back: {e}"))?;
        let value = |f: Field| {
            let at = usize::from(f.address - start);
            decode_signed(&block.data[at..at + usize::from(f.size)])
        };
        for &(f, v) in &settings {
            // 1-byte fields read back unsigned.
            let want = if f.size == 1 { v & 0xFF } else { v };
            if value(f) != want {
                return Err(format!("{} reads back {} after writing {want}", f.name, value(f)));
            }
        }
        for f in limit_fields {
            self.limits[k].record(f, value(f));
        }
        Ok(())
    }
}
