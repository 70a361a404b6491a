//! The one record of a file of an export, from the run that renders it through the state DB
//! that keeps it to the destinations that send it: name, size, hash, whether it is the licence
//! file, and its row counts against the previous snapshot.
//!
//! One type for every crate, so nothing is copied field by field between mirrors. Its serde
//! field names are the state DB's and `status --json`'s: renaming one breaks what older
//! versions wrote.

use serde::{Deserialize, Serialize};

/// One file of a snapshot: what the run measured while rendering it, kept with the snapshot
/// and handed to every destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the snapshot folder (no directories).
    pub name: String,
    /// Data rows, header excluded.
    pub rows: u64,
    /// Size in bytes; checked against the file on publish and on delivery.
    pub bytes: u64,
    /// blake3 hex of the file's bytes: how the next run tells an unchanged file. Destinations
    /// do not read it.
    pub hash: String,
    /// The v1 licence file: each destination decides whether to carry it.
    pub license: bool,
    /// What changed in this file against the snapshot current when it was built (None: nothing
    /// to compare with, as for a first snapshot). Kept so deliveries made later (after a
    /// restart) can still summarise it; absent from records written before it existed.
    #[serde(default)]
    pub changes: Option<RowCounts>,
}

/// Row counts of a file's diff against the previous snapshot (see
/// [`FileDiff::counts`](crate::diff::FileDiff::counts)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Keys only in the new export.
    pub added: u64,
    /// Keys only in the previous export.
    pub removed: u64,
    /// Keys in both whose non-key fields differ.
    pub changed: u64,
}
