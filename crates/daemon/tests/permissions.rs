//! Exported files carry student names and possibly passwords: everything sds-sync creates (state
//! directory, state database, snapshot folders and files, a local destination's folder and files)
//! is owner-only, whatever umask the shell, container or unit that started it had.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file and folder under `root` (root included) with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).expect("metadata");
        out.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            for entry in fs::read_dir(&path).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
        }
    }
    out
}

#[test]
fn once_creates_owner_only_files_under_a_permissive_umask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let outbox = dir.path().join("outbox");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[source]\nurl = \"demo:\"\n[state]\ndir = \"{}\"\n\
             [[destination]]\nname = \"local-copy\"\nkind = \"local\"\npath = \"{}\"\n\
             include_license_file = true\n",
            state.display(),
            outbox.display()
        ),
    )
    .expect("config");
    // umask 022 would leave files world-readable; the binary must not rely on its caller.
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" --config \"$1\" once")
        .arg(env!("CARGO_BIN_EXE_sds-sync"))
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .expect("run sds-sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let created: Vec<(PathBuf, u32)> = modes(&state).into_iter().chain(modes(&outbox)).collect();
    assert!(
        created.iter().any(|(p, _)| p.ends_with("state.sqlite")),
        "no state database in {created:?}"
    );
    assert!(
        created
            .iter()
            .any(|(p, _)| p.ends_with("outbox/Student.csv")),
        "nothing delivered: {created:?}"
    );
    let open: Vec<_> = created.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by group or others: {open:?}");
}
