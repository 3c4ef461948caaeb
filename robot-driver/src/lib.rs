//! Armstack robot driver: Dynamixel Protocol 2.0, serial transport, servo emulator, WidowX arm
//! mapping, safety and the driver node (DESIGN.md §3). Filled by the robot-driver issue.
