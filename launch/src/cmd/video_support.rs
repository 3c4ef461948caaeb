//! What a build without the `video` feature (the GPU build: no FFmpeg) answers when a verb needs
//! to decode or encode video.

/// The error for `what` (a verb or flag that decodes or encodes video) in a build without video.
pub fn missing(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this armstack build has no video support: {what} needs the `video` feature (FFmpeg). \
         Vision training works here from a frame cache: run `armstack dataset cache DATASET` in a \
         build with video, then copy the dataset folder with its cache/ folder"
    )
}
