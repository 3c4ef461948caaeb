//! Armstack video pre-training: video decoding, frame caches, ICVF value pre-training on
//! action-free video and inverse-dynamics labels (DESIGN.md §5, §7). Filled by the video
//! pre-training issue.
