//! The local-folder destination: copies each file to a temporary name in the target folder,
//! fsyncs it, and renames it over the final name, so readers see whole files only.

use crate::{DeliverError, Destination, FileSet};
use futures_util::future::BoxFuture;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Prefix of temporary files; anything starting with it in the target folder is ours to remove.
const TMP_PREFIX: &str = ".sds-sync-tmp.";

/// `[[destination]] kind = "local"`.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub name: String,
    pub path: PathBuf,
    pub include_license_file: bool,
}

#[derive(Debug, Clone)]
pub struct LocalDestination {
    cfg: LocalConfig,
}

impl LocalDestination {
    pub fn new(cfg: LocalConfig) -> Self {
        LocalDestination { cfg }
    }

    fn err(&self, what: &str, path: &Path, e: &io::Error) -> DeliverError {
        // Local failures (permissions, a full disk, a missing mount) are things an admin fixes
        // while the daemon keeps trying, so they are retryable.
        DeliverError::retryable(
            &self.cfg.name,
            format!(
                "{what} {}: {e}; check that the folder exists, is writable by the sds-sync user and has free space",
                path.display()
            ),
        )
    }

    fn deliver_blocking(&self, set: &FileSet) -> Result<(), DeliverError> {
        let dir = &self.cfg.path;
        fs::create_dir_all(dir).map_err(|e| self.err("cannot create folder", dir, &e))?;
        remove_stale_temps(dir)
            .map_err(|e| self.err("cannot clean temporary files in", dir, &e))?;
        for file in set.files_for(self.cfg.include_license_file) {
            let src = set.dir.join(&file.name);
            let tmp = dir.join(format!("{TMP_PREFIX}{}", file.name));
            let dst = dir.join(&file.name);
            let result = copy_synced(&src, &tmp, file.bytes).and_then(|()| fs::rename(&tmp, &dst));
            if let Err(e) = result {
                let _ = fs::remove_file(&tmp);
                return Err(self.err("cannot write", &dst, &e));
            }
        }
        sync_dir(dir).map_err(|e| self.err("cannot sync folder", dir, &e))?;
        Ok(())
    }

    fn check_blocking(&self) -> Result<(), DeliverError> {
        let dir = &self.cfg.path;
        fs::create_dir_all(dir).map_err(|e| self.err("cannot create folder", dir, &e))?;
        let probe = dir.join(format!("{TMP_PREFIX}probe"));
        fs::write(&probe, b"sds-sync check\n").map_err(|e| self.err("cannot write to", dir, &e))?;
        fs::remove_file(&probe).map_err(|e| self.err("cannot remove probe file in", dir, &e))
    }
}

fn copy_synced(src: &Path, tmp: &Path, expected: u64) -> io::Result<()> {
    let mut from = fs::File::open(src)?;
    let mut to = fs::File::create(tmp)?;
    let copied = io::copy(&mut from, &mut to)?;
    if copied != expected {
        return Err(io::Error::other(format!(
            "copied {copied} bytes but the snapshot says {expected}; the snapshot file changed underneath"
        )));
    }
    to.sync_all()
}

fn remove_stale_temps(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Makes the renames durable: without it a power cut can leave the old directory entries.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl Destination for LocalDestination {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> &'static str {
        "local"
    }
    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let this = self.clone();
            let set = set.clone();
            tokio::task::spawn_blocking(move || this.deliver_blocking(&set))
                .await
                .map_err(|e| {
                    DeliverError::retryable(&self.cfg.name, format!("delivery task failed: {e}"))
                })?
        })
    }
    fn cleanup_after_abandon(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The stuck copy keeps its file descriptor; unlinking the name is still allowed and
            // leaves no temporary file in the folder.
            let dir = self.cfg.path.clone();
            let _ = tokio::task::spawn_blocking(move || remove_stale_temps(&dir)).await;
        })
    }
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(async move {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.check_blocking())
                .await
                .map_err(|e| {
                    DeliverError::retryable(&self.cfg.name, format!("check task failed: {e}"))
                })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SetFile;

    fn set_in(dir: &Path) -> FileSet {
        fs::write(dir.join("School.csv"), b"SIS ID,Name\r\n001,A\r\n").unwrap();
        fs::write(
            dir.join("License.csv"),
            b"Display Name,User Principal Name,Account Sku Id\r\n",
        )
        .unwrap();
        FileSet {
            snapshot_id: "1".into(),
            created_at: "2026-11-28T00:00:00Z".into(),
            dir: dir.to_path_buf(),
            files: vec![
                SetFile {
                    name: "School.csv".into(),
                    bytes: 20,
                    rows: 1,
                    changes: None,
                    license: false,
                },
                SetFile {
                    name: "License.csv".into(),
                    bytes: 50,
                    rows: 0,
                    changes: None,
                    license: true,
                },
            ],
        }
    }

    #[tokio::test]
    async fn delivers_whole_files_and_honours_license_choice() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let set = set_in(src.path());
        // A stale temporary file from an interrupted run must go.
        fs::write(out.path().join(format!("{TMP_PREFIX}School.csv")), b"half").unwrap();
        let dest = LocalDestination::new(LocalConfig {
            name: "t".into(),
            path: out.path().to_path_buf(),
            include_license_file: false,
        });
        dest.deliver(&set).await.unwrap();
        let names: Vec<String> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["School.csv".to_string()]);
        assert_eq!(
            fs::read(out.path().join("School.csv")).unwrap(),
            b"SIS ID,Name\r\n001,A\r\n"
        );
    }

    #[tokio::test]
    async fn size_mismatch_is_an_error_and_leaves_no_temp() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut set = set_in(src.path());
        set.files[0].bytes = 999;
        let dest = LocalDestination::new(LocalConfig {
            name: "t".into(),
            path: out.path().to_path_buf(),
            include_license_file: true,
        });
        let err = dest.deliver(&set).await.unwrap_err();
        assert!(!err.is_permanent());
        assert!(err.message.contains("999"), "{err}");
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn check_leaves_nothing_behind() {
        let out = tempfile::tempdir().unwrap();
        let dest = LocalDestination::new(LocalConfig {
            name: "t".into(),
            path: out.path().join("sub"),
            include_license_file: true,
        });
        dest.check().await.unwrap();
        assert_eq!(fs::read_dir(out.path().join("sub")).unwrap().count(), 0);
    }
}
