//! Upload throughput of the SFTP destination, for `scripts/bench-sftp` (which sets up the file
//! set and the OpenSSH `sftp` comparison). Not a test.
//!
//! ```text
//! cargo run --release -p sds-deliver --example sftp_bench -- \
//!     --host 127.0.0.1 --port 2222 --user sdssftp --key KEY --known-hosts FILE \
//!     --remote-dir /upload/bench --dir LOCAL_FOLDER [--runs 3] [--write-len BYTES] [--in-flight BYTES]
//! ```
//! Every regular file in LOCAL_FOLDER is one file of the set. Prints one line per run and a final
//! `best_secs=<seconds> bytes=<total>` line for the script.

use sds_core::FileEntry;
use sds_deliver::sftp::{SftpConfig, SftpDestination};
use sds_deliver::{Destination, FileSet};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

fn usage() -> ! {
    eprintln!(
        "usage: sftp_bench --host H --port P --user U --key FILE --known-hosts FILE --remote-dir DIR --dir LOCAL \
         [--runs N] [--write-len BYTES] [--in-flight BYTES]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.len().is_multiple_of(2) {
        usage();
    }
    let opts: HashMap<&str, &str> = args
        .chunks(2)
        .map(|kv| (kv[0].trim_start_matches("--"), kv[1].as_str()))
        .collect();
    let get = |k: &str| opts.get(k).copied().unwrap_or_else(|| usage());
    let num = |k: &str, default: usize| {
        opts.get(k)
            .map(|v| v.parse::<usize>().unwrap_or_else(|_| usage()))
            .unwrap_or(default)
    };

    let dir = PathBuf::from(get("dir"));
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("read --dir")
        .map(|e| e.expect("read --dir entry"))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let bytes = e.metadata().expect("stat file").len();
        total += bytes;
        files.push(FileEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            bytes,
            hash: String::new(),
            rows: 0,
            changes: None,
            license: false,
        });
    }
    let set = FileSet {
        snapshot_id: "bench".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        dir,
        files,
    };

    let cfg = SftpConfig {
        name: "bench".into(),
        host: get("host").into(),
        port: get("port").parse().unwrap_or_else(|_| usage()),
        username: get("user").into(),
        private_key_file: Some(get("key").into()),
        known_hosts_file: Some(get("known-hosts").into()),
        remote_dir: get("remote-dir").into(),
        ..Default::default()
    };
    let mut dest = SftpDestination::new(cfg).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    if opts.contains_key("write-len") || opts.contains_key("in-flight") {
        dest = dest.with_transfer_limits(
            num("write-len", 255 * 1024),
            num("in-flight", 4 * 1024 * 1024),
        );
    }

    let runs = num("runs", 3).max(1);
    let mut best = f64::MAX;
    for run in 1..=runs {
        let started = Instant::now();
        if let Err(e) = dest.deliver(&set).await {
            eprintln!("run {run}: {e}");
            std::process::exit(1);
        }
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "run {run}: {} files, {:.1} MB in {secs:.2} s = {:.1} MB/s",
            set.files.len(),
            total as f64 / 1e6,
            total as f64 / 1e6 / secs
        );
    }
    println!("best_secs={best:.4} bytes={total}");
}
