//! Tells the transport integration tests (tests/*.rs) which test servers are set up, so that a
//! test whose server is missing is `#[ignore]`d with the reason, and cargo's summary counts it as
//! ignored instead of as passed. A server counts as set up when its variables are in the
//! environment, as `scripts/test` puts them there (from /tmp/sds-test-services/*.env). Under
//! `CI=true` nothing is ignored: a missing server fails its tests there.
//!
//! Only environment variables are watched (a missing file watched with rerun-if-changed would
//! rerun this script, and rebuild the crate, on every build).

/// cfg name suffix, and the variable each service's env file always sets.
const SERVICES: [(&str, &str); 6] = [
    ("sftp", "SDS_TEST_SFTP_HOST"),
    ("ftp", "SDS_TEST_FTP_HOST"),
    ("email", "SDS_TEST_SMTP_HOST"),
    ("ssh_interop", "SDS_TEST_SSHI_HOST"),
    ("ftp_interop", "SDS_TEST_FTPI_HOST"),
    ("mail_oauth2", "SDS_TEST_OAUTH2_SMTP_HOST"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for (name, var) in SERVICES {
        println!("cargo::rustc-check-cfg=cfg(sds_no_{name}_server)");
        println!("cargo::rerun-if-env-changed={var}");
        let set_up = std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if !set_up && !ci {
            println!("cargo::rustc-cfg=sds_no_{name}_server");
        }
    }
}
