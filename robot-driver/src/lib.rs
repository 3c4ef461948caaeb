//! Armstack robot driver: Dynamixel Protocol 2.0, serial transport, servo emulator, WidowX arm
//! mapping, safety and the driver node.

pub mod arm;
pub mod calibrate;
pub mod control_table;
pub mod emulator;
pub mod episodes;
pub mod fuzzing;
pub mod node;
pub mod protocol;
pub mod safety;
pub mod servo_bus;
pub mod servo_map;
pub mod transport;
