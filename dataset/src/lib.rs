//! Armstack datasets: LeRobot v3.0 read/write (parquet + mp4), statistics, quality metrics and
//! an episode replay source (DESIGN.md §4). Filled by the teleoperate-and-record issue; video
//! decoding sits behind the `video` feature so a GPU build links no FFmpeg.
