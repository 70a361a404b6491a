//! Microsoft's own sample sets (the public OfficeDev/O365-EDU-Tools repository, folder
//! `CSV Samples`) must pass `sds-sync validate` with no error. They are not part of this
//! repository (the fixtures of `sds_core::validate` reproduce their shapes), so this test is
//! ignored unless asked for, with a local copy:
//!
//! ```sh
//! SDS_TEST_MS_SAMPLES="/path/to/O365-EDU-Tools/CSV Samples" \
//!     cargo test -p sds-daemon --test microsoft_samples -- --ignored
//! ```

use std::path::Path;
use std::process::Command;

const SETS: &[(&str, &str)] = &[
    ("SDS Format/100 Users", "v1"),
    ("SDS Format/25 Users", "v1"),
    ("SDS Format/Min Required Attributes", "v1"),
    ("SDS v2", "v2"),
    ("SDS v2.1", "v2.1"),
];

#[test]
#[ignore = "needs SDS_TEST_MS_SAMPLES: a local copy of Microsoft's `CSV Samples` folder"]
fn microsoft_sample_sets_validate_without_error() {
    let root = std::env::var("SDS_TEST_MS_SAMPLES")
        .expect("set SDS_TEST_MS_SAMPLES to the `CSV Samples` folder of OfficeDev/O365-EDU-Tools");
    for (dir, format) in SETS {
        let path = Path::new(&root).join(dir);
        assert!(path.is_dir(), "{} is not a folder", path.display());
        let out = Command::new(env!("CARGO_BIN_EXE_sds-sync"))
            .arg("validate")
            .arg(&path)
            .args(["--format", format])
            .output()
            .expect("run sds-sync validate");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 0 error(s)"),
            "{dir} ({format}):\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
