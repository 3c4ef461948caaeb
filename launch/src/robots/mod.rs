//! Real robots the CLI can drive, one module per robot (the sim is started from `cmd/`).

pub mod widowx;
