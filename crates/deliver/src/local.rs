//! The local-folder destination: the staged upload of [`crate::staged`] into a folder on this
//! machine (or a mounted share). Temporary files get random names and are created exclusively
//! (`O_CREAT|O_EXCL|O_NOFOLLOW`), so a link planted in the folder by another account receives
//! nothing; each file is fsynced before the renames, and the folder after them. A folder every
//! account may write to is refused; a group-writable one is warned about.

use crate::staged::{self, Fault, Leftovers, Payload, Stage};
use crate::{DeliverError, Destination, ErrorKind, FileSet};
use futures_util::future::BoxFuture;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Bytes per write of an upload.
const CHUNK: usize = 256 * 1024;

/// `[[destination]] kind = "local"`.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub name: String,
    pub path: PathBuf,
    pub include_license_file: bool,
    /// Optional files of the set this folder leaves out ([`crate::FileSet::files_chosen`]).
    pub omit_files: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LocalDestination {
    cfg: LocalConfig,
    fault: Option<Fault>,
}

impl LocalDestination {
    pub fn new(cfg: LocalConfig) -> Self {
        LocalDestination { cfg, fault: None }
    }

    /// Test hook: see [`Fault`].
    #[doc(hidden)]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Warnings to log at start-up, reload, `once` and `check`: a folder its group may write to
    /// (members could swap delivered files). A folder every account may write to is refused
    /// instead ([`LocalDestination::check_offline`]), and said so here too.
    pub fn startup_warnings(&self) -> Vec<String> {
        let dir = &self.cfg.path;
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() && mode_of(&meta) & 0o002 != 0 => vec![format!(
                "destination {:?}: {}",
                self.cfg.name,
                world_writable(dir, mode_of(&meta))
            )],
            Ok(meta) if meta.is_dir() && mode_of(&meta) & 0o020 != 0 => vec![format!(
                "destination {:?}: folder {} is writable by its group (mode {:04o}); group members can replace \
                 delivered files: run `chmod g-w {}` unless that is intended (an ACL that lets an upload agent \
                 delete files also shows this way)",
                self.cfg.name,
                dir.display(),
                mode_of(&meta),
                dir.display()
            )],
            _ => Vec::new(),
        }
    }

    async fn deliver_set(&self, set: &FileSet) -> Result<(), DeliverError> {
        let started = Instant::now();
        let mut folder = Folder::open(&self.cfg).await?;
        let s = staged::deliver(
            &mut folder,
            set,
            self.cfg.include_license_file,
            &self.cfg.omit_files,
            self.fault,
        )
        .await?;
        crate::staged::log_delivered(&self.cfg.name, "local", set, &s, started);
        Ok(())
    }
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_: &fs::Metadata) -> u32 {
    0o700
}

/// Why a folder every account may write to is refused (deliveries, `check`, `check --offline`).
fn world_writable(dir: &Path, mode: u32) -> String {
    format!(
        "folder {path} is writable by every account on this machine (mode {mode:04o}): another account \
         could plant links or swap the delivered files, so sds-sync delivers nothing there; run \
         `chmod o-w {path}` (for a mounted share, mount it with dir_mode=0770 or stricter), then \
         reload sds-sync",
        path = dir.display()
    )
}

/// Runs blocking file system work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("file task failed: {e}"))))
}

/// The target folder, checked.
struct Folder {
    name: String,
    dir: PathBuf,
}

impl Folder {
    /// Creates the folder if missing and refuses one every account may write to.
    async fn open(cfg: &LocalConfig) -> Result<Folder, DeliverError> {
        let folder = Folder {
            name: cfg.name.clone(),
            dir: cfg.path.clone(),
        };
        let dir = folder.dir.clone();
        let meta = blocking(move || {
            fs::create_dir_all(&dir)?;
            fs::metadata(&dir)
        })
        .await
        .map_err(|e| folder.io_error("cannot create or open folder", &folder.dir, &e))?;
        if !meta.is_dir() {
            return Err(folder.error(
                ErrorKind::Permanent,
                format!("{} is not a folder; fix `path`", folder.dir.display()),
            ));
        }
        let mode = mode_of(&meta);
        if mode & 0o002 != 0 {
            return Err(folder.error(ErrorKind::Permanent, world_writable(&folder.dir, mode)));
        }
        Ok(folder)
    }

    fn io_error(&self, what: &str, path: &Path, e: &io::Error) -> DeliverError {
        // Permissions, a full disk, a missing mount: an admin fixes these while the daemon keeps
        // trying, so they are retryable.
        let hint = if e.kind() == io::ErrorKind::StorageFull {
            "the disk is full: free space there; will retry"
        } else {
            "check that the folder exists, is writable by the sds-sync user and has free space; will retry"
        };
        self.error(
            ErrorKind::Retryable,
            format!("{what} {}: {e}; {hint}", path.display()),
        )
    }
}

/// Creates `path` for writing; fails if anything, a link included, is already there.
fn create_exclusive(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // create_new is O_CREAT|O_EXCL, which already refuses an existing link; O_NOFOLLOW says
        // so outright. The mode stays 0666 minus the umask: the daemon's umask (0077) makes the
        // file owner-only, while a default ACL on the folder (to let an upload agent read) still
        // works, which an explicit 0600 would mask out.
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

impl Stage for Folder {
    fn destination(&self) -> &str {
        &self.name
    }

    fn error(&self, kind: ErrorKind, message: String) -> DeliverError {
        DeliverError {
            destination: self.name.clone(),
            kind,
            message,
        }
    }

    async fn list_ours(&mut self) -> Result<Vec<String>, DeliverError> {
        let dir = self.dir.clone();
        let listed = blocking(move || {
            let mut found = Leftovers::default();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                // Only files and links are ours; file_type does not follow links.
                if entry.file_type()?.is_dir() {
                    continue;
                }
                found.offer(&name).map_err(io::Error::other)?;
            }
            Ok(found.into_names())
        })
        .await;
        listed.map_err(|e| self.io_error("cannot list", &self.dir, &e))
    }

    async fn put(&mut self, name: &str, data: &mut Payload) -> Result<(), DeliverError> {
        let path = self.dir.join(name);
        let p = path.clone();
        let file = blocking(move || create_exclusive(&p))
            .await
            .map_err(|e| self.io_error("cannot create", &path, &e))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = data
                .read(&mut buf)
                .await
                .map_err(|e| self.io_error("cannot fill", &path, &e))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .await
                .map_err(|e| self.io_error("cannot write", &path, &e))?;
        }
        // Durable before it is renamed into place and the delivery reported.
        file.sync_all()
            .await
            .map_err(|e| self.io_error("cannot write", &path, &e))
    }

    async fn size(&mut self, name: &str) -> Result<Option<u64>, DeliverError> {
        let path = self.dir.join(name);
        let p = path.clone();
        let meta = blocking(move || fs::symlink_metadata(&p))
            .await
            .map_err(|e| self.io_error("cannot check", &path, &e))?;
        if !meta.is_file() {
            return Err(self.error(
                ErrorKind::Retryable,
                format!(
                    "{} is no longer a regular file; something else is writing in this folder; will retry",
                    path.display()
                ),
            ));
        }
        Ok(Some(meta.len()))
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), DeliverError> {
        let (src, dst) = (self.dir.join(from), self.dir.join(to));
        let (s, d) = (src.clone(), dst.clone());
        blocking(move || fs::rename(&s, &d))
            .await
            .map_err(|e| self.io_error("cannot move the new file over", &dst, &e))
    }

    async fn remove(&mut self, name: &str) -> Result<(), DeliverError> {
        let path = self.dir.join(name);
        let p = path.clone();
        match blocking(move || fs::remove_file(&p)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("cannot remove", &path, &e)),
        }
    }

    async fn finish(&mut self) -> Result<(), DeliverError> {
        // Makes the renames durable: without it a power cut can bring back the old entries.
        let dir = self.dir.clone();
        blocking(move || fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| self.io_error("cannot sync folder", &self.dir, &e))
    }
}

impl Destination for LocalDestination {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> &'static str {
        "local"
    }
    fn deliver<'a>(&'a self, set: &'a FileSet) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.deliver_set(set))
    }
    fn cleanup_after_abandon(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // A stuck copy keeps its file descriptor; unlinking the name is still allowed and
            // leaves no temporary file in the folder.
            let mut folder = Folder {
                name: self.cfg.name.clone(),
                dir: self.cfg.path.clone(),
            };
            if let Ok(names) = folder.list_ours().await {
                for name in names {
                    let _ = folder.remove(&name).await;
                }
            }
        })
    }
    fn check(&self) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(async move {
            let mut folder = Folder::open(&self.cfg).await?;
            staged::probe(&mut folder).await
        })
    }
    fn check_verified(&self) -> String {
        format!("{}: {}", self.cfg.path.display(), staged::PROBE_STEPS)
    }
    fn warnings(&self) -> Vec<String> {
        self.startup_warnings()
    }
    /// A folder that exists and that every account may write to; a missing one is created
    /// owner-only by the first delivery, so it is no problem here.
    fn check_offline(&self) -> Result<(), DeliverError> {
        match fs::metadata(&self.cfg.path) {
            Ok(meta) if meta.is_dir() && mode_of(&meta) & 0o002 != 0 => {
                Err(DeliverError::permanent(
                    &self.cfg.name,
                    world_writable(&self.cfg.path, mode_of(&meta)),
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sds_core::FileEntry;
    use std::os::unix::fs::PermissionsExt;

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
                FileEntry {
                    name: "School.csv".into(),
                    bytes: 20,
                    hash: String::new(),
                    rows: 1,
                    changes: None,
                    license: false,
                },
                FileEntry {
                    name: "License.csv".into(),
                    bytes: 50,
                    hash: String::new(),
                    rows: 0,
                    changes: None,
                    license: true,
                },
            ],
        }
    }

    fn dest(path: &Path, include_license_file: bool) -> LocalDestination {
        LocalDestination::new(LocalConfig {
            name: "t".into(),
            path: path.to_path_buf(),
            include_license_file,
            omit_files: Vec::new(),
        })
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn delivers_whole_files_and_honours_license_choice() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let set = set_in(src.path());
        // A stale temporary file of an interrupted run (old naming) must go.
        fs::write(out.path().join(".sds-sync-tmp.School.csv"), b"half").unwrap();
        dest(out.path(), false).deliver(&set).await.unwrap();
        assert_eq!(names(out.path()), vec!["School.csv".to_string()]);
        assert_eq!(
            fs::read(out.path().join("School.csv")).unwrap(),
            b"SIS ID,Name\r\n001,A\r\n"
        );
    }

    /// `omit_files` leaves an optional file out the way `include_license_file = false` leaves
    /// the licence file out; the other files of the set still go, and the licence choice holds.
    #[tokio::test]
    async fn omitted_files_stay_home() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut set = set_in(src.path());
        set.files[1].bytes = 49;
        fs::write(
            src.path().join("relationships.csv"),
            b"userSourcedId,relationshipUserSourcedId,relationshipRole\r\n",
        )
        .unwrap();
        set.files.push(FileEntry {
            name: "relationships.csv".into(),
            bytes: 58,
            hash: String::new(),
            rows: 0,
            changes: None,
            license: false,
        });
        let d = LocalDestination::new(LocalConfig {
            name: "t".into(),
            path: out.path().to_path_buf(),
            include_license_file: true,
            omit_files: vec!["relationships.csv".into()],
        });
        d.deliver(&set).await.unwrap();
        assert_eq!(names(out.path()), ["License.csv", "School.csv"]);
        let all: Vec<&str> = set
            .files_chosen(true, &[])
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(all, ["School.csv", "License.csv", "relationships.csv"]);
        let omit = ["relationships.csv".to_owned()];
        let chosen: Vec<&str> = set
            .files_chosen(false, &omit)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(chosen, ["School.csv"]);
    }

    #[tokio::test]
    async fn size_mismatch_is_an_error_and_leaves_no_temp() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut set = set_in(src.path());
        set.files[0].bytes = 999;
        let err = dest(out.path(), true).deliver(&set).await.unwrap_err();
        assert!(!err.is_permanent());
        assert!(err.message.contains("999"), "{err}");
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn check_leaves_nothing_behind() {
        let out = tempfile::tempdir().unwrap();
        dest(&out.path().join("sub"), true).check().await.unwrap();
        assert_eq!(fs::read_dir(out.path().join("sub")).unwrap().count(), 0);
    }

    /// Issue 15: a link planted at the temporary name the old code used (`.sds-sync-tmp.NAME`)
    /// received the student file. Now temporary names are random and created exclusively, so
    /// the link target stays empty and the delivery still succeeds.
    #[tokio::test]
    async fn planted_symlink_at_the_old_temp_name_receives_nothing() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let stolen = elsewhere.path().join("stolen.csv");
        fs::write(&stolen, b"").unwrap();
        let set = set_in(src.path());
        for name in [".sds-sync-tmp.School.csv", "School.csv.sds-sync-tmp"] {
            std::os::unix::fs::symlink(&stolen, out.path().join(name)).unwrap();
        }
        dest(out.path(), false).deliver(&set).await.unwrap();
        assert_eq!(
            fs::read(&stolen).unwrap(),
            b"",
            "the planted link received data"
        );
        // The links were removed as leftovers (the link, not its target), the file arrived.
        assert_eq!(names(out.path()), vec!["School.csv".to_string()]);
        assert!(stolen.exists());
        assert!(
            !fs::symlink_metadata(out.path().join("School.csv"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn exclusive_create_refuses_an_existing_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"").unwrap();
        let link = dir.path().join("x.sds-sync-tmp");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_exclusive(&link).is_err());
        // A dangling link too (O_EXCL would otherwise create its target).
        let dangling = dir.path().join("y.sds-sync-tmp");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(create_exclusive(&dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
    }

    #[tokio::test]
    async fn world_writable_folder_is_refused_and_group_writable_warned() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let set = set_in(src.path());
        fs::set_permissions(out.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let d = dest(out.path(), false);
        let err = d.deliver(&set).await.unwrap_err();
        assert!(err.is_permanent(), "{err}");
        assert!(
            err.message
                .contains(&format!("chmod o-w {}", out.path().display()))
                && err.message.contains("0777"),
            "{err}"
        );
        assert!(d.check().await.unwrap_err().is_permanent());
        // Without the network too (`check --offline`), and the warning names every account.
        let offline = d.check_offline().unwrap_err();
        assert!(
            offline.is_permanent() && offline.message.contains("0777"),
            "{offline}"
        );
        let w = d.warnings();
        assert!(
            w.len() == 1 && w[0].contains("writable by every account") && !w[0].contains("group"),
            "{w:?}"
        );
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);

        fs::set_permissions(out.path(), fs::Permissions::from_mode(0o770)).unwrap();
        let w = d.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("chmod g-w"), "{}", w[0]);
        d.check_offline().unwrap();
        d.deliver(&set).await.unwrap();
        fs::set_permissions(out.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(d.warnings().is_empty());
        // A folder that does not exist yet is created owner-only by the first delivery.
        dest(&out.path().join("new"), false)
            .check_offline()
            .unwrap();
    }

    #[tokio::test]
    async fn abandoned_delivery_cleanup_removes_only_temporaries() {
        let out = tempfile::tempdir().unwrap();
        fs::write(out.path().join("School.csv"), b"keep").unwrap();
        fs::write(out.path().join(staged::temp_name("School.csv")), b"half").unwrap();
        dest(out.path(), false).cleanup_after_abandon().await;
        assert_eq!(names(out.path()), vec!["School.csv".to_string()]);
    }
}
