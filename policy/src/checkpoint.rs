//! Checkpoint folders.
//!
//! ```text
//! runs/NAME/policy.json        PolicySpec: config, normalisation, vocabulary, action meaning
//! runs/NAME/model.mpk          the policy to use (best periodic evaluation, else the last step)
//! runs/NAME/critic.mpk         its critic (CO-RFT)
//! runs/NAME/metrics.jsonl      one JSON object per logged step / evaluation
//! runs/NAME/resume/            the last step: model, critic, target critic, optimisers, state.json
//! ```
//! Weights are burn `NamedMpk` records at full precision. Loading rebuilds the module from
//! `policy.json` and checks the record's parameter count against it, so an edited or mismatched
//! config is reported instead of failing later inside a matrix multiply. A weight file that does
//! not load is first checked for being a whole MessagePack document: a truncated or corrupt file
//! (an interrupted save or copy) is reported as such, not as an architecture mismatch.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

use crate::error::{PolicyError, Result};

/// The recorder used for every weight file.
pub fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Saves `module` to `stem.mpk` durably ([`save_durably`]).
pub fn save_module<B: Backend, M: Module<B>>(module: &M, stem: &Path) -> Result<()> {
    save_durably(stem, "weights", |partial| {
        module.clone().save_file(partial.to_path_buf(), &recorder()).map_err(|e| e.to_string())
    })
}

/// Writes `stem.mpk` with `write` (given the stem to write to; the recorder adds `.mpk`) the
/// way datasets are written: into `<stem>_partial.mpk`, fsynced, renamed over `stem.mpk`, the
/// folder fsynced, so a crash or power cut leaves the old file or the new one, never a torn one.
/// `what` names the content in errors.
pub fn save_durably(
    stem: &Path,
    what: &str,
    write: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    let path = stem.with_extension("mpk");
    let name = stem.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = stem.with_file_name(format!("{name}_partial"));
    let written = partial.with_extension("mpk");
    if let Err(e) = write(&partial) {
        // Nothing half-written is left behind; the previous file is untouched.
        let _ = std::fs::remove_file(&written);
        return Err(PolicyError::checkpoint(&path, format!("cannot save {what}: {e}")));
    }
    dataset::durable::sync_file(&written)?;
    dataset::durable::commit(&written, &path)?;
    Ok(())
}

/// Loads `stem.mpk` into `fresh` (a module built from the spec) and checks it has the same
/// number of parameters, naming `what` in errors.
pub fn load_module<B: Backend, M: Module<B>>(fresh: M, stem: &Path, what: &str, device: &B::Device) -> Result<M> {
    let path = stem.with_extension("mpk");
    if !path.exists() {
        return Err(PolicyError::checkpoint(&path, format!("missing {what} weights")));
    }
    let expected = fresh.num_params();
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fresh.load_file(stem.to_path_buf(), &recorder(), device)
    }))
    .map_err(|_| unreadable(&path, what, format!("{what} weights do not fit the architecture in policy.json")))?
    .map_err(|e| {
        unreadable(&path, what, format!("{what} weights do not match the architecture in policy.json: {e}"))
    })?;
    let got = loaded.num_params();
    if got != expected {
        return Err(PolicyError::checkpoint(
            &path,
            format!(
                "{what} weights hold {got} parameters but policy.json describes a model with {expected}; \
                 the config does not match these weights (edited policy.json, or files from two runs?)"
            ),
        ));
    }
    Ok(loaded)
}

/// The error for a weight file burn could not load: truncated or corrupt when it is not one whole
/// MessagePack document, else `mismatch` (the file is whole, so its contents do not fit).
fn unreadable(path: &Path, what: &str, mismatch: String) -> PolicyError {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return PolicyError::io(path, e),
    };
    let damage = match msgpack_document_end(&bytes) {
        Ok(end) if end == bytes.len() => return PolicyError::checkpoint(path, mismatch),
        Ok(end) => format!("{} unexpected bytes after the weights end at byte {end}", bytes.len() - end),
        Err(MsgpackDamage::Truncated) => "it ends in the middle of the weights".to_string(),
        Err(MsgpackDamage::Invalid { at }) => format!("byte {at} is not valid MessagePack"),
    };
    PolicyError::checkpoint(
        path,
        format!(
            "the {what} weight file is truncated or corrupt ({} bytes; {damage}): an interrupted save or copy? \
             copy it again or retrain",
            bytes.len()
        ),
    )
}

/// Why bytes are not a MessagePack document.
#[derive(Debug, PartialEq, Eq)]
enum MsgpackDamage {
    /// The bytes end inside a value.
    Truncated,
    /// The byte at `at` starts no MessagePack value.
    Invalid {
        /// Offset of the byte.
        at: usize,
    },
}

/// Walks the MessagePack value at the start of `bytes` (without decoding it) and returns where it
/// ends.
fn msgpack_document_end(bytes: &[u8]) -> Result<usize, MsgpackDamage> {
    let mut pos = 0usize;
    // Values still to read: the document, then each container's elements.
    let mut pending: u64 = 1;
    let take = |pos: &mut usize, n: usize| -> Result<usize, MsgpackDamage> {
        let start = *pos;
        let end = start.checked_add(n).filter(|e| *e <= bytes.len()).ok_or(MsgpackDamage::Truncated)?;
        *pos = end;
        Ok(start)
    };
    let uint = |pos: &mut usize, n: usize| -> Result<u64, MsgpackDamage> {
        let start = take(pos, n)?;
        Ok(bytes[start..start + n].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    while pending > 0 {
        pending -= 1;
        let at = pos;
        let marker = bytes[take(&mut pos, 1)?];
        // (payload bytes to skip, values the container holds)
        let (skip, children): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (uint(&mut pos, 1)?, 0),
            0xc5 | 0xda => (uint(&mut pos, 2)?, 0),
            0xc6 | 0xdb => (uint(&mut pos, 4)?, 0),
            0xc7 => (uint(&mut pos, 1)? + 1, 0),
            0xc8 => (uint(&mut pos, 2)? + 1, 0),
            0xc9 => (uint(&mut pos, 4)? + 1, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, uint(&mut pos, 2)?),
            0xdd => (0, uint(&mut pos, 4)?),
            0xde => (0, 2 * uint(&mut pos, 2)?),
            0xdf => (0, 2 * uint(&mut pos, 4)?),
            0xc1 => return Err(MsgpackDamage::Invalid { at }),
        };
        take(&mut pos, usize::try_from(skip).map_err(|_| MsgpackDamage::Truncated)?)?;
        pending = pending.saturating_add(children);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_walk_finds_the_end_truncation_and_invalid_bytes() {
        // {"a": [1, -1, 2.5f64], "b": bin8 of 3 bytes}
        let mut doc = vec![0x82, 0xa1, b'a', 0x93, 0x01, 0xff, 0xcb];
        doc.extend_from_slice(&2.5f64.to_be_bytes());
        doc.extend_from_slice(&[0xa1, b'b', 0xc4, 3, 7, 8, 9]);
        assert_eq!(msgpack_document_end(&doc), Ok(doc.len()));
        for cut in 0..doc.len() {
            assert_eq!(msgpack_document_end(&doc[..cut]), Err(MsgpackDamage::Truncated), "cut at {cut}");
        }
        let mut trailing = doc.clone();
        trailing.push(0x00);
        assert_eq!(msgpack_document_end(&trailing), Ok(doc.len()));
        assert_eq!(msgpack_document_end(&[0x91, 0xc1]), Err(MsgpackDamage::Invalid { at: 1 }));
    }

    /// A save replaces the file whole and leaves no partial file; a failed one keeps the old
    /// file as it was.
    #[test]
    fn a_durable_save_replaces_the_file_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let stem = tmp.path().join("model");
        let config = crate::PolicyConfig::state_only(2, 7, 5, 7);
        let dev = Default::default();
        let model = crate::model::ChunkPolicy::<crate::Cpu>::new(&config, &dev);
        save_module(&model, &stem).unwrap();
        let first = std::fs::read(stem.with_extension("mpk")).unwrap();
        assert!(msgpack_document_end(&first).is_ok());
        save_module(&crate::model::ChunkPolicy::<crate::Cpu>::new(&config, &dev), &stem).unwrap();
        let second = std::fs::read(stem.with_extension("mpk")).unwrap();
        assert_ne!(first, second, "fresh weights replaced the file");
        let err = save_durably(&stem, "weights", |partial| {
            std::fs::write(partial.with_extension("mpk"), b"torn").unwrap();
            Err("disk full".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("cannot save weights: disk full"), "{err}");
        assert_eq!(std::fs::read(stem.with_extension("mpk")).unwrap(), second);
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["model.mpk"], "only the saved file, no partial one");
    }
}
