//! Tells the database integration tests (tests/*.rs of sds-source and, through an `include!`,
//! of sds-daemon) which test databases and ODBC drivers are set up, so that a test whose server
//! or driver is missing is `#[ignore]`d with the reason, and cargo's summary counts it as ignored
//! instead of as passed (crates/deliver/build.rs does the same for the transport servers).
//!
//! A database counts as set up when its URL is in the environment (`scripts/test` always sets
//! them); the TLS-only SIS servers when scripts/services/sis.sh wrote their variables; an ODBC
//! driver (only with the `odbc` feature) when unixODBC lists it (`odbcinst -q -d`). Under
//! `CI=true` nothing is ignored: a missing server or driver fails its tests there.
//!
//! cfgs set (each only outside CI, when missing):
//! - `sds_no_postgres`, `sds_no_mysql`: `SDS_TEST_POSTGRES_URL` / `SDS_TEST_MYSQL_URL` unset;
//!   `sds_no_databases` when either is.
//! - `sds_no_sis_tls`: the TLS test servers and the non-local host name of sis.sh are not set up.
//! - `sds_no_odbc_postgres`, `sds_no_odbc_mariadb`, `sds_no_odbc_sqlite`: that ODBC driver is not
//!   installed; `sds_no_odbc_drivers` when any is.

/// Environment variables that must all be set, per cfg suffix.
const SERVICES: [(&str, &[&str]); 4] = [
    ("postgres", &["SDS_TEST_POSTGRES_URL"]),
    ("mysql", &["SDS_TEST_MYSQL_URL"]),
    (
        "databases",
        &["SDS_TEST_POSTGRES_URL", "SDS_TEST_MYSQL_URL"],
    ),
    ("sis_tls", &["SDS_TEST_REMOTE_HOST", "SDS_TEST_SIS_CA_FILE"]),
];

/// cfg suffix and the name the Debian package registers in odbcinst.ini.
const DRIVERS: [(&str, &str); 3] = [
    ("odbc_postgres", "PostgreSQL Unicode"),
    ("odbc_mariadb", "MariaDB Unicode"),
    ("odbc_sqlite", "SQLite3"),
];

pub fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for (name, vars) in SERVICES {
        println!("cargo::rustc-check-cfg=cfg(sds_no_{name})");
        let mut set_up = true;
        for var in vars {
            println!("cargo::rerun-if-env-changed={var}");
            set_up &= std::env::var_os(var).is_some_and(|v| !v.is_empty());
        }
        if !set_up && !ci {
            println!("cargo::rustc-cfg=sds_no_{name}");
        }
    }
    println!("cargo::rustc-check-cfg=cfg(sds_no_odbc_drivers)");
    for (name, _) in DRIVERS {
        println!("cargo::rustc-check-cfg=cfg(sds_no_{name})");
    }
    // Without the feature no ODBC test is built: no need to ask unixODBC.
    if ci || std::env::var_os("CARGO_FEATURE_ODBC").is_none() {
        return;
    }
    let installed = installed_drivers();
    let mut any_missing = false;
    for (name, driver) in DRIVERS {
        if !installed.iter().any(|d| d == driver) {
            any_missing = true;
            println!("cargo::rustc-cfg=sds_no_{name}");
        }
    }
    if any_missing {
        println!("cargo::rustc-cfg=sds_no_odbc_drivers");
    }
}

/// The drivers unixODBC knows, and a rerun when its driver list changes. Only a file that
/// exists is watched (a missing one would rerun this script, and rebuild the crate, every time).
fn installed_drivers() -> Vec<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("odbcinst")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    // `odbcinst -j` prints e.g. "DRIVERS............: /etc/odbcinst.ini".
    for line in run(&["-j"]).lines() {
        if let Some((key, path)) = line.split_once(':')
            && key.trim_end_matches('.').trim() == "DRIVERS"
            && std::path::Path::new(path.trim()).exists()
        {
            println!("cargo::rerun-if-changed={}", path.trim());
        }
    }
    run(&["-q", "-d"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_owned)
        .collect()
}
