//! sds-core owns what an SDS export *is*: the source contract (entities and their columns), the
//! export options, the one table per SDS format (v1 / v2 / v2.1: files, columns, keys,
//! references, enumerations) that everything else reads, building the files from records,
//! validation of anyone's file sets and the publish gate's checks, CSV writing, fingerprints and
//! diffs, and the one per-file record (`FileEntry`) that store and destinations share.
//!
//! Architecture invariant: this crate does no I/O other than writing to a `std::io::Write` (and
//! reading back through a `std::io::Read` for diffs). Output is a pure function of
//! (records, options): the same input in any order gives byte-identical files.

pub mod build;
pub mod contract;
pub mod csvout;
pub mod files;
pub mod format;
pub mod options;

pub use build::{BuildError, Builder, Built, DropReason, Dropped};
pub use contract::{ContractColumn, Entity};
pub use files::{FileEntry, RowCounts};
pub use format::{FileSpec, Format};
pub use options::{District, ExportOptions, UsernameRule};
pub mod diff;
pub mod guard;
pub mod validate;
