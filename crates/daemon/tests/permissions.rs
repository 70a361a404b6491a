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

/// A local destination folder every account may write to (mode 0777): the warning says so (not
/// "its group"), `check --offline` (the unit's ExecStartPre) refuses it as deliveries do instead
/// of saying `config: ok`, and `once` says the delivery failed for good, not that it stays
/// queued for a next run that would fail the same way.
#[test]
fn a_world_writable_local_folder_is_refused_by_the_offline_check_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let outbox = dir.path().join("outbox");
    fs::create_dir(&outbox).expect("outbox");
    fs::set_permissions(&outbox, fs::Permissions::from_mode(0o777)).expect("chmod 0777");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[source]\nurl = \"demo:\"\n[state]\ndir = \"{}\"\n\
             [[destination]]\nname = \"local-copy\"\nkind = \"local\"\npath = \"{}\"\n",
            state.display(),
            outbox.display()
        ),
    )
    .expect("config");
    let sds = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sds-sync"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .env("SDS_SYNC__LOG__FORMAT", "text")
            .output()
            .expect("run sds-sync");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    let (code, text) = sds(&["check", "--offline"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains("config: ok"), "{text}");
    assert!(
        text.contains("writable by every account on this machine (mode 0777)")
            && text.contains("chmod o-w"),
        "{text}"
    );
    assert!(!text.contains("writable by its group"), "{text}");

    let (code, text) = sds(&["once"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains("writable by its group"), "{text}");
    assert!(!text.contains("stays queued"), "{text}");
    assert!(text.contains("failed for good"), "{text}");
    assert!(
        fs::read_dir(&outbox).expect("outbox").next().is_none(),
        "nothing may be delivered into the open folder"
    );
}
