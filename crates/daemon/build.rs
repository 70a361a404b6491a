//! The daemon's integration tests (cross_db, cli_check_odbc, source_security) need the same test
//! databases and ODBC drivers as sds-source's: the same cfgs (`sds_no_postgres`, ...), from the
//! same script, so a missing server shows as an ignored test with its reason, never as a pass.

#[path = "../source/build.rs"]
mod source_build;

fn main() {
    println!("cargo::rerun-if-changed=../source/build.rs");
    source_build::main();
}
