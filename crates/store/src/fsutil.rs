//! Small file-system helpers: private directories, fsync of files and directories, and removal
//! that treats "already gone" as success.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Result, StoreError};

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

/// Creates `path` (and missing parents) readable by the owner only: exports carry names and
/// possibly passwords.
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(io_err("create directory", path))
}

/// Flushes a file's data and metadata to the disk. Opening read-only is enough for fsync on the
/// platforms we run on.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    let f = fs::File::open(path).map_err(io_err("open for fsync", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

/// Makes a directory's entries (creations, renames) durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let f = fs::File::open(path).map_err(io_err("open directory for fsync", path))?;
        f.sync_all().map_err(io_err("fsync directory", path))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Removes a file or a directory tree; a path that does not exist is fine.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    let res = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Runs blocking file work (fsync of large files, renames, tree removal) off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only happens while the runtime shuts down; the crash-safe ordering covers the rest.
        Err(_) => Err(StoreError::Interrupted),
    }
}
