//! Armstack policies: burn 0.21 models (chunked-action VLA, critics), training algorithms
//! (BC, CO-RFT, EXPO), checkpoints, evaluation and the chunk executor (DESIGN.md §5, §7).
//! Filled by the policy issue; the `cuda` feature selects burn's CUDA backend.
