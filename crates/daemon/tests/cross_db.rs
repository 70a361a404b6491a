//! The same SIS on SQLite, PostgreSQL and MariaDB/MySQL must give byte-identical SDS files, in
//! every format. The reference schema (`deploy/sis/schema-*.sql`) mixes CHAR(3), VARCHAR,
//! NUMERIC(2,0), INTEGER, DATE and BOOLEAN columns, and each database hands them back as
//! different types; the source must turn them into the same text everywhere.
//!
//! Each test loads `deploy/sis/demo-data.sql` into a fresh database: a SQLite file in a
//! temporary folder, and (when `SDS_TEST_POSTGRES_URL` / `SDS_TEST_MYSQL_URL` are set) a new
//! database `sds_xdb_<pid>_<random>` on each server, dropped again at the end, even when the test
//! fails. It then runs the real `sds-sync once` against each one and against the embedded demo
//! (`demo:`), and compares every file byte for byte. With an unset URL the tests are ignored with
//! the reason (build.rs: `sds_no_databases`), except under `CI=true`, where they fail.
//!
//! With the `odbc` feature, each database is also exported through its ODBC driver
//! ("SQLite3", "PostgreSQL Unicode", "MariaDB Unicode") and must give the same bytes as its
//! native export; a missing driver has the tests ignored likewise (`sds_no_odbc_drivers`).

mod support;

use sqlx::{AssertSqlSafe, Connection, Executor};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
#[cfg(feature = "odbc")]
use support::export::run_check;
use support::export::{
    Export, Files, V1_DEMO, V1_FULL, V2_ALL, V21_ALL, V21_FULL, assert_same_files, assert_valid,
    run_export, text,
};
use support::{DEMO_DATA, block_on, create_demo_sis};

const POSTGRES_ENV: &str = "SDS_TEST_POSTGRES_URL";
const MYSQL_ENV: &str = "SDS_TEST_MYSQL_URL";

const SCHEMA_POSTGRES: &str = include_str!("../../../deploy/sis/schema-postgres.sql");
const SCHEMA_MYSQL: &str = include_str!("../../../deploy/sis/schema-mysql.sql");

/// The server URL in `var`. The tests are ignored when it is unset at build time (build.rs), so
/// getting here without it fails the test, naming the variable.
fn env_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("{var} is not set: run scripts/test (it sets the database URLs)"),
    }
}

/// `sds_xdb_<pid>_<random>`: unique across parallel tests and test runs, a plain identifier.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = (nanos as u64) ^ (u64::from(n) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    format!("sds_xdb_{}_{:x}", std::process::id(), mixed)
}

/// `url` with its database (the path) replaced by `db`; the query string is kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Postgres,
    MySql,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::MySql => "MariaDB/MySQL",
        }
    }
}

/// Runs setup SQL (several statements) on a fresh connection to `url`, then closes it.
async fn exec(server: Server, url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let sql = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()));
    match server {
        Server::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            c.execute(sql).await?;
            c.close().await
        }
        Server::MySql => {
            let mut c = sqlx::MySqlConnection::connect(url).await?;
            c.execute(sql).await?;
            c.close().await
        }
    }
}

/// A database created for this test on a server; dropped when this guard is, even when the test
/// panics (the drop runs a blocking cleanup on its own runtime).
struct ScratchDb {
    server: Server,
    admin_url: String,
    name: String,
    /// The URL `sds-sync` connects with.
    url: String,
}

impl ScratchDb {
    /// Creates the database and loads the reference schema and the demo data into it.
    fn create(server: Server) -> ScratchDb {
        let (var, create, schema) = match server {
            Server::Postgres => (
                POSTGRES_ENV,
                "CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0",
                SCHEMA_POSTGRES,
            ),
            Server::MySql => (
                MYSQL_ENV,
                "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                SCHEMA_MYSQL,
            ),
        };
        let admin_url = env_url(var);
        let name = unique_name();
        block_on(exec(server, &admin_url, &create.replace("{}", &name)))
            .unwrap_or_else(|e| panic!("{}: cannot create database {name}: {e}", server.name()));
        // From here on, the guard drops the database whatever happens.
        let db = ScratchDb {
            server,
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        };
        block_on(async {
            exec(server, &db.url, schema).await?;
            exec(server, &db.url, DEMO_DATA).await
        })
        .unwrap_or_else(|e| panic!("{}: cannot load the demo SIS: {e}", server.name()));
        db
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let sql = match self.server {
            Server::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Server::MySql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let result = std::thread::scope(|s| {
            // A thread of its own, so this works even if dropped inside a runtime.
            s.spawn(|| block_on(exec(self.server, &self.admin_url, &sql)))
                .join()
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "{}: could not drop test database {}: {e}",
                self.server.name(),
                self.name
            ),
            Err(_) => eprintln!(
                "{}: dropping test database {} panicked",
                self.server.name(),
                self.name
            ),
        }
    }
}

/// The demo SIS in a new SQLite file (inside the returned folder).
fn sqlite_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("sis.db");
    create_demo_sis(&path);
    let url = format!("sqlite://{}", path.display());
    (dir, url)
}

/// Exports `export` from the embedded demo, SQLite and each configured server; all must agree.
/// Returns the files (the demo's; every other database's are the same bytes).
fn same_bytes_everywhere(export: &Export) -> Files {
    let format = export.sds_format();
    let demo = run_export("demo:", export);
    assert_valid(format, &demo, &format!("{} from demo:", export.format));

    let (_sqlite_dir, sqlite_url) = sqlite_db();
    let sqlite = run_export(&sqlite_url, export);
    assert_same_files("demo:", &demo, "SQLite", &sqlite);
    #[cfg(feature = "odbc")]
    odbc::same_as_native("SQLite", &sqlite_url, &sqlite, export);

    for server in [Server::Postgres, Server::MySql] {
        let db = ScratchDb::create(server);
        let files: Files = run_export(&db.url, export);
        assert_same_files("SQLite", &sqlite, server.name(), &files);
        assert_same_files("demo:", &demo, server.name(), &files);
        #[cfg(feature = "odbc")]
        odbc::same_as_native(server.name(), &db.url, &files, export);
        eprintln!(
            "{} {}: {} file(s) identical to SQLite and demo:",
            export.format,
            server.name(),
            files.len()
        );
        drop(db);
    }
    demo
}

/// The same exports through ODBC drivers.
#[cfg(feature = "odbc")]
mod odbc {
    use super::*;

    /// The Debian driver for a native URL's database, and the `odbc:` URL that reaches it.
    pub fn odbc_url(native: &str) -> (&'static str, String) {
        if let Some(path) = native.strip_prefix("sqlite://") {
            return (
                "SQLite3",
                format!("odbc:Driver={{SQLite3}};Database={path}"),
            );
        }
        // scheme://user[:password]@host[:port]/database[?query], as the test URLs are written.
        let (scheme, rest) = native.split_once("://").expect("server URL");
        let rest = rest.split('?').next().unwrap_or(rest);
        let (credentials, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, password) = match credentials.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (credentials, None),
        };
        let (host_port, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (driver, user_key, default_port) = if scheme.starts_with("postgres") {
            ("PostgreSQL Unicode", "Uid", "5432")
        } else {
            ("MariaDB Unicode", "User", "3306")
        };
        let (host, port) = host_port
            .split_once(':')
            .unwrap_or((host_port, default_port));
        let mut text = format!(
            "odbc:Driver={{{driver}}};Server={host};Port={port};Database={database};\
             {user_key}={user}"
        );
        if let Some(password) = password {
            text.push_str(&format!(";Pwd={{{password}}}"));
        }
        (driver, text)
    }

    fn driver_installed(name: &str) -> bool {
        std::process::Command::new("odbcinst")
            .args(["-q", "-d"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("[{name}]")))
            .unwrap_or(false)
    }

    /// Exports `native_url`'s database through ODBC: the files must be those of the native run.
    pub fn same_as_native(name: &str, native_url: &str, native: &Files, export: &Export) {
        let (driver, url) = odbc_url(native_url);
        // The tests are ignored without the drivers (build.rs: `sds_no_odbc_drivers`).
        assert!(
            driver_installed(driver),
            "the ODBC driver `{driver}` is not installed: scripts/ci-services installs it"
        );
        let files = run_export(&url, export);
        assert_same_files(name, native, &format!("{name} through ODBC"), &files);
        // `check` probes every query through the driver (a limited read: see the source's
        // `odbc::RowLimit`; MariaDB's driver once turned it into a syntax error).
        let checked = run_check(&url, export);
        for query in [
            "schools",
            "students",
            "teachers",
            "sections",
            "student_enrollments",
            "teacher_rosters",
        ]
        .iter()
        .chain(export.optional_queries)
        {
            assert!(
                checked.contains(&format!("query {query}: ok")),
                "{name} through ODBC: `check` did not probe {query}:\n{checked}"
            );
        }
        eprintln!(
            "{} {name} through ODBC: {} file(s) identical to the native export",
            export.format,
            files.len()
        );
    }

    #[test]
    fn native_urls_become_odbc_connection_strings() {
        assert_eq!(
            odbc_url("postgres://postgres@127.0.0.1:5432/x").1,
            "odbc:Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=x;Uid=postgres"
        );
        assert_eq!(
            odbc_url("mysql://root:pw@db:3307/x").1,
            "odbc:Driver={MariaDB Unicode};Server=db;Port=3307;Database=x;User=root;Pwd={pw}"
        );
        assert_eq!(
            odbc_url("sqlite:///tmp/a.db").1,
            "odbc:Driver={SQLite3};Database=/tmp/a.db"
        );
    }
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v1_with_license_is_identical_on_every_database() {
    same_bytes_everywhere(&V1_DEMO);
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v2_is_identical_on_every_database() {
    same_bytes_everywhere(&V2_ALL);
}

#[cfg_attr(
    any(sds_no_databases, sds_no_odbc_drivers),
    ignore = "needs PostgreSQL and MariaDB (SDS_TEST_POSTGRES_URL, SDS_TEST_MYSQL_URL) and, with the odbc feature, the ODBC drivers of scripts/ci-services: run scripts/test (it sets the database URLs and starts the test servers)"
)]
#[test]
fn v21_is_identical_on_every_database() {
    same_bytes_everywhere(&V21_ALL);
}

/// The full SDS formats in v2.1: academic sessions, courses and guardians, terms and courses on
/// the classes, the optional columns, a district and the grade map. Every database gives the
/// same bytes (`same_bytes_everywhere`, which also runs `validate --strict` on what `once`
/// delivered), and those bytes are the files worked out by hand from `demo-data.sql` below.
#[test]
fn v21_full_formats_are_the_hand_computed_files_on_every_database() {
    let files = same_bytes_everywhere(&V21_FULL);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "academicSessions.csv",
            "classes.csv",
            "courses.csv",
            "enrollments.csv",
            "orgs.csv",
            "relationships.csv",
            "roles.csv",
            "users.csv"
        ]
    );
    for (name, want) in expected::V21_FULL {
        assert_eq!(text(&files, name), want.replace('\n', "\r\n"), "{name}");
    }
    // The enrollments are those of the plain export: nothing of the full formats changes them.
    let plain = run_export("demo:", &V21_ALL);
    assert_eq!(files["enrollments.csv"], plain["enrollments.csv"]);
}

/// v1 with the optional columns: every optional column the demo's queries return is written
/// (all of Microsoft's but School `Zone` and Section `Status`, which the contract has no column
/// for), with the values worked out by hand.
#[test]
fn v1_optional_columns_are_the_hand_computed_files_on_every_database() {
    let files = same_bytes_everywhere(&V1_FULL);
    for (name, want) in expected::V1_FULL {
        assert_eq!(text(&files, name), want.replace('\n', "\r\n"), "{name}");
    }
    // Every optional column sds-sync can write is there.
    for spec in sds_core::Format::V1.files(true) {
        let header = text(&files, spec.name).lines().next().unwrap_or("");
        for c in spec.columns.iter().filter(|c| c.writable()) {
            assert!(
                header.split(',').any(|h| h == c.name),
                "{}: {} missing from {header}",
                spec.name,
                c.name
            );
        }
    }
    // The rosters and the licence file are those of the plain export.
    let plain = run_export("demo:", &V1_DEMO);
    for name in ["StudentEnrollment.csv", "TeacherRoster.csv", "License.csv"] {
        assert_eq!(files[name], plain[name], "{name}");
    }
}

/// Expected files, written by hand from `deploy/sis/demo-data.sql` and the configs `V21_FULL`
/// and `V1_FULL` (grades through `DEMO_GRADE_MAP`). Lines end in `\n` here, `\r\n` in the files.
mod expected {
    pub const V21_FULL: &[(&str, &str)] = &[
        (
            "orgs.csv",
            "sourcedId,name,type,parentSourcedId
001,Harbor View Middle School,school,D100
002,Northgate High School,school,D100
003,Cedar Ridge Elementary,school,D100
D100,Demo Unified School District,district,
",
        ),
        (
            "academicSessions.csv",
            "sourcedId,title,type,schoolYear,startDate,endDate
Q1-2526,Quarter 1,gradingPeriod,2026,2025-08-25,2025-10-31
S1-2526,Fall Semester 2025,semester,2026,2025-08-25,2026-01-16
S2-2526,Spring Semester 2026,semester,2026,2026-01-20,2026-06-12
SY2526,2025-2026 School Year,schoolYear,2026,2025-08-25,2026-06-12
",
        ),
        (
            "courses.csv",
            "sourcedId,orgSourcedId,title,code,schoolYearSourcedId,subject,grade
001-ENG7,001,English Language Arts 7,ENG7,SY2526,English Language Arts,07
001-HR,001,HR,HR,SY2526,,
001-MATH7,001,Mathematics 7,MATH7,SY2526,Mathematics,07
001-SCI8,001,Science 8,SCI8,SY2526,Science,08
002-ALG1,002,Algebra I,ALG1,SY2526,Mathematics,09
002-BIO,002,Biology,BIO,SY2526,Science,10
002-ENG10,002,English 10,ENG10,SY2526,English Language Arts,10
002-FR2,002,French II,FR2,SY2526,World Languages,10
002-USHIST,002,\"History: U.S., 1865–Present\",USHIST,SY2526,Social Studies,11
003-GR4,003,Grade 4 Homeroom,GR4,SY2526,Homeroom,04
",
        ),
        (
            "classes.csv",
            "sourcedId,orgSourcedId,title,sessionSourcedIds,courseSourcedId
001-ENG7-01,001,English Language Arts 7,SY2526,001-ENG7
001-HR-7A,001,HR,,001-HR
001-MATH7-01,001,Mathematics 7,SY2526,001-MATH7
001-MATH7-02,001,Mathematics 7,SY2526,001-MATH7
001-SCI8-01,001,Science 8,S1-2526,001-SCI8
002-ALG1-01,002,Algebra I,SY2526,002-ALG1
002-BIO-01,002,Biology,S1-2526,002-BIO
002-ENG10-01,002,English 10,SY2526,002-ENG10
002-FR2-01,002,French II,,002-FR2
002-USHIST-01,002,\"History: U.S., 1865–Present\",S2-2526,002-USHIST
003-GR4-01,003,Grade 4 Homeroom,SY2526,003-GR4
",
        ),
        (
            "relationships.csv",
            "userSourcedId,relationshipUserSourcedId,relationshipRole
000007,G011,relative
000123,G001,parent
000124,G002,parent
000125,G003,guardian
000126,G004,guardian
000127,G003,guardian
004501,G006,grandparent
",
        ),
        (
            "roles.csv",
            "userSourcedId,orgSourcedId,role,grade,isPrimary
000007,003,student,04,true
000123,001,student,07,true
000124,001,student,07,true
000125,001,student,08,true
000126,001,student,07,true
000127,001,student,08,true
000128,001,student,07,true
000129,001,student,07,true
000132,001,student,06,true
000133,001,student,06,true
000134,001,student,08,true
000135,001,student,,true
004501,002,student,09,true
004502,002,student,10,true
004503,002,student,11,true
004504,002,student,12,true
004505,002,student,09,true
004506,002,student,10,true
004507,002,student,11,true
004508,002,student,12,true
004509,002,student,09,true
004510,002,student,10,true
004511,002,student,11,true
004512,002,student,12,true
004514,002,student,09,true
004515,002,student,11,true
007001,003,student,04,true
007002,003,student,04,true
007003,003,student,04,true
007004,003,student,04,true
1001,001,teacher,,true
1002,001,teacher,,true
1003,001,teacher,,true
1003,002,teacher,,false
1004,001,teacher,,true
1005,002,teacher,,true
1006,002,teacher,,true
1007,003,teacher,,true
",
        ),
        (
            "users.csv",
            "sourcedId,username,givenName,familyName,password,email,phone
000007,tessa.novak@demo.k12.example,Tessa,Novak,Cedar-2026!,tessa.novak@demo.k12.example,
000123,jose.alvarez@demo.k12.example,José,Alvarez,Welcome-2026!,jose.alvarez@demo.k12.example,+1 555 0123
000124,zoe.orsted@demo.k12.example,Zoë,Ørsted,Welcome-2026!,zoe.orsted@demo.k12.example,
000125,liam.obrien@demo.k12.example,Liam,O'Brien,Harbor-7731!,liam.obrien@demo.k12.example,
000126,robert.chen@demo.k12.example,\"Robert \"\"Bobby\"\"\",Chen,Tide-4410!,robert.chen@demo.k12.example,
000127,marcus.reyes@demo.k12.example,Marcus,\"Reyes, Jr.\",Anchor-2290!,marcus.reyes@demo.k12.example,
000128,marykate.sullivan@demo.k12.example,Mary Kate,Sullivan,Welcome-2026!,marykate.sullivan@demo.k12.example,
000129,Ava.Martinez@Demo.K12.Example,Ava,Martinez,Welcome-2026!,Ava.Martinez@Demo.K12.Example,+1 555 0129
000132,chloe.kim@demo.k12.example,Chloe,Kim,Lantern-5127!,chloe.kim@demo.k12.example,
000133,lucas.nguyen@demo.k12.example,Lucas,Nguyen,Welcome-2026!,lucas.nguyen@demo.k12.example,
000134,sofia.rossi@demo.k12.example,Sofia,Rossi,Welcome-2026!,sofia.rossi@demo.k12.example,
000135,oliver.haddad@demo.k12.example,Oliver,Haddad,Welcome-2026!,oliver.haddad@demo.k12.example,
004501,amara.okafor@demo.k12.example,Amara,Okafor,Welcome-2026!,amara.okafor@demo.k12.example,
004502,benjamin.mueller@demo.k12.example,Benjamin,Müller,North-3318!,benjamin.mueller@demo.k12.example,
004503,chiara.bianchi@demo.k12.example,Chiara,Bianchi,Welcome-2026!,chiara.bianchi@demo.k12.example,
004504,daniel.kowalski@demo.k12.example,Daniel,Kowalski,Welcome-2026!,daniel.kowalski@demo.k12.example,+1 555 4504
004505,elif.yilmaz@demo.k12.example,Elif,Yılmaz,Compass-6042!,elif.yilmaz@demo.k12.example,
004506,finn.andersen@demo.k12.example,Finn,Andersen,Welcome-2026!,finn.andersen@demo.k12.example,
004507,grace.thompson@demo.k12.example,Grace,Thompson,Welcome-2026!,grace.thompson@demo.k12.example,
004508,hiroshi.tanaka@demo.k12.example,Hiroshi,Tanaka,Summit-9185!,hiroshi.tanaka@demo.k12.example,
004509,isabella.fernandez@demo.k12.example,Isabella,Fernández,Welcome-2026!,isabella.fernandez@demo.k12.example,
004510,jack.wilson@demo.k12.example,Jack,Wilson,Welcome-2026!,jack.wilson@demo.k12.example,
004511,kaia.begay@demo.k12.example,Kaia,Begay,Mesa-1276!,kaia.begay@demo.k12.example,
004512,leo.dubois@demo.k12.example,Leo,Dubois,Welcome-2026!,leo.dubois@demo.k12.example,
004514,nora.fitzgerald@demo.k12.example,Nora,Fitzgerald,,nora.fitzgerald@demo.k12.example,
004515,omar.haddad@demo.k12.example,Omar,Haddad,Welcome-2026!,omar.haddad@demo.k12.example,
007001,penelope.clarke@demo.k12.example,Penelope,Clarke,Cedar-2026!,penelope.clarke@demo.k12.example,
007002,quinn.morales@demo.k12.example,Quinn,Morales,Cedar-2026!,quinn.morales@demo.k12.example,
007003,ruby.stewart@demo.k12.example,Ruby,Stewart,Cedar-2026!,ruby.stewart@demo.k12.example,
007004,samuel.lee@demo.k12.example,Samuel,Lee,Cedar-2026!,samuel.lee@demo.k12.example,
1001,h.carter@demo.k12.example,Helen,Carter,Staff-Welcome-2026!,h.carter@demo.k12.example,+1 555 1001
1002,d.moreau@demo.k12.example,David,Moreau,Staff-Welcome-2026!,d.moreau@demo.k12.example,
1003,s.oconnell@demo.k12.example,Siobhán,O'Connell,Staff-Welcome-2026!,s.oconnell@demo.k12.example,
1004,r.iyer@demo.k12.example,Rajesh,Iyer,Staff-Welcome-2026!,r.iyer@demo.k12.example,
1005,k.lindqvist@demo.k12.example,Karen,Lindqvist,Staff-Welcome-2026!,k.lindqvist@demo.k12.example,
1006,m.webb@demo.k12.example,Marcus,Webb,,m.webb@demo.k12.example,
1007,i.sorensen@demo.k12.example,Ingrid,Sørensen,Staff-Welcome-2026!,i.sorensen@demo.k12.example,+1 555 1007
G001,maria.alvarez@mail.example,María,Alvarez,,maria.alvarez@mail.example,+1 555 7001
G002,lars.orsted@mail.example,Lars,Ørsted,,lars.orsted@mail.example,
G003,aisling.obrien@mail.example,Aisling,O'Brien,,aisling.obrien@mail.example,+1 555 7003
G004,wei.chen@mail.example,Wei,Chen,,wei.chen@mail.example,
G006,grace.okafor@mail.example,Grace,Okafor,,grace.okafor@mail.example,
G011,ivana.novak@mail.example,Ivana,Novak,,ivana.novak@mail.example,+1 555 7011
",
        ),
    ];

    pub const V1_FULL: &[(&str, &str)] = &[
        (
            "School.csv",
            "SIS ID,Name,School Number,School NCES_ID,State ID,Grade Low,Grade High,Principal SIS ID,Principal Name,Principal Secondary Email,Address,City,State,Country,Zip,Phone
001,Harbor View Middle School,HV01,530000100001,WA-1001,06,08,P2001,Patricia Gomez,p.gomez@demo.k12.example,100 Harbor Way,Port Demo,WA,US,98001,+1 555 0100
002,Northgate High School,NG02,530000100002,WA-1002,09,12,P2002,Samuel Okoye,s.okoye@demo.k12.example,\"2200 North Ave, Suite 4\",Port Demo,WA,US,98002,+1 555 0200
",
        ),
        (
            "Section.csv",
            "SIS ID,School SIS ID,Section Name,Section Number,Term SIS ID,Term Name,Term StartDate,Term EndDate,Course SIS ID,Course Name,Course Number,Course Description,Course Subject,Periods
001-ENG7-01,001,English Language Arts 7,01,SY2526,2025-2026 School Year,2025-08-25,2026-06-12,001-ENG7,English Language Arts 7,ENG7,English Language Arts 7,English Language Arts,3
001-HR-7A,001,HR,7A,,,,,001-HR,,HR,,,
001-MATH7-01,001,Mathematics 7,01,SY2526,2025-2026 School Year,2025-08-25,2026-06-12,001-MATH7,Mathematics 7,MATH7,Mathematics 7,Mathematics,1
001-MATH7-02,001,Mathematics 7,02,SY2526,2025-2026 School Year,2025-08-25,2026-06-12,001-MATH7,Mathematics 7,MATH7,Mathematics 7,Mathematics,2
001-SCI8-01,001,Science 8,01,S1-2526,Fall Semester 2025,2025-08-25,2026-06-12,001-SCI8,Science 8,SCI8,Science 8,Science,4-5
002-ALG1-01,002,Algebra I,01,SY2526,2025-2026 School Year,2025-08-25,2026-06-12,002-ALG1,Algebra I,ALG1,Algebra I,Mathematics,1
002-BIO-01,002,Biology,01,S1-2526,Fall Semester 2025,2025-08-25,2026-06-12,002-BIO,Biology,BIO,Biology,Science,2
002-ENG10-01,002,English 10,01,SY2526,2025-2026 School Year,2025-08-25,2026-06-12,002-ENG10,English 10,ENG10,English 10,English Language Arts,3
002-FR2-01,002,French II,01,S2-2425,Spring Semester 2025,2025-08-25,2026-06-12,002-FR2,French II,FR2,French II,World Languages,5
002-USHIST-01,002,\"History: U.S., 1865–Present\",01,S2-2526,Spring Semester 2026,2025-08-25,2026-06-12,002-USHIST,\"History: U.S., 1865–Present\",USHIST,\"History: U.S., 1865–Present\",Social Studies,4
",
        ),
        (
            "Teacher.csv",
            "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Teacher Number,Status,Middle Name,Secondary Email,Title,Qualification
1001,001,Helen,Carter,h.carter@demo.k12.example,Staff-Welcome-2026!,C-51001,1001,Active,,,Math Teacher,M.Ed.
1002,001,David,Moreau,d.moreau@demo.k12.example,Staff-Welcome-2026!,C-51002,1002,Active,,,Math Teacher,B.Sc.
1003,001,Siobhán,O'Connell,s.oconnell@demo.k12.example,Staff-Welcome-2026!,C-51003,1003,Active,Máire,siobhan.oc@mail.example,English Department Head,\"M.A., English\"
1003,002,Siobhán,O'Connell,s.oconnell@demo.k12.example,Staff-Welcome-2026!,C-51003,1003,Active,Máire,siobhan.oc@mail.example,English Department Head,\"M.A., English\"
1004,001,Rajesh,Iyer,r.iyer@demo.k12.example,Staff-Welcome-2026!,C-51004,1004,Active,,,Science Teacher,Ph.D.
1005,002,Karen,Lindqvist,k.lindqvist@demo.k12.example,Staff-Welcome-2026!,C-51005,1005,Active,,,Math Teacher,
1006,002,Marcus,Webb,m.webb@demo.k12.example,,C-51006,1006,Active,,,Biology Teacher,B.Sc.
",
        ),
        (
            "Student.csv",
            "SIS ID,School SIS ID,First Name,Last Name,Username,Password,State ID,Secondary Email,Student Number,Middle Name,Grade,Status,Birthdate,Graduation Year
000123,001,José,Alvarez,jose.alvarez@demo.k12.example,Welcome-2026!,WA8800123,jose.a@mail.example,000123,Luis,07,Active,2013-04-02,2031
000124,001,Zoë,Ørsted,zoe.orsted@demo.k12.example,Welcome-2026!,WA8800124,,000124,,07,Active,2013-01-19,2031
000125,001,Liam,O'Brien,liam.obrien@demo.k12.example,Harbor-7731!,WA8800125,,000125,Patrick,08,Active,2012-03-07,2030
000126,001,\"Robert \"\"Bobby\"\"\",Chen,robert.chen@demo.k12.example,Tide-4410!,WA8800126,,000126,,07,Active,,2031
000127,001,Marcus,\"Reyes, Jr.\",marcus.reyes@demo.k12.example,Anchor-2290!,WA8800127,,000127,Antonio,08,Active,2012-06-30,2030
000128,001,Mary Kate,Sullivan,marykate.sullivan@demo.k12.example,Welcome-2026!,WA8800128,,000128,,07,Active,2013-02-14,2031
000129,001,Ava,Martinez,Ava.Martinez@Demo.K12.Example,Welcome-2026!,WA8800129,,000129,Sofía,07,Active,2013-08-08,2031
000132,001,Chloe,Kim,chloe.kim@demo.k12.example,Lantern-5127!,WA8800132,,000132,,06,Active,2014-03-03,2032
000133,001,Lucas,Nguyen,lucas.nguyen@demo.k12.example,Welcome-2026!,WA8800133,,000133,,06,Active,2014-09-21,2032
000134,001,Sofia,Rossi,sofia.rossi@demo.k12.example,Welcome-2026!,WA8800134,sofia.r@mail.example,000134,,08,Active,2012-12-01,2030
000135,001,Oliver,Haddad,oliver.haddad@demo.k12.example,Welcome-2026!,WA8800135,,000135,,,Active,,
004501,002,Amara,Okafor,amara.okafor@demo.k12.example,Welcome-2026!,WA8804501,,004501,Ngozi,09,Active,2010-02-27,2029
004502,002,Benjamin,Müller,benjamin.mueller@demo.k12.example,North-3318!,WA8804502,,004502,,10,Active,2009-07-15,2028
004503,002,Chiara,Bianchi,chiara.bianchi@demo.k12.example,Welcome-2026!,WA8804503,,004503,,11,Active,2008-10-10,2027
004504,002,Daniel,Kowalski,daniel.kowalski@demo.k12.example,Welcome-2026!,WA8804504,,004504,,12,Active,2007-04-04,2026
004505,002,Elif,Yılmaz,elif.yilmaz@demo.k12.example,Compass-6042!,WA8804505,,004505,,09,Active,2010-01-01,2029
004506,002,Finn,Andersen,finn.andersen@demo.k12.example,Welcome-2026!,WA8804506,,004506,,10,Active,2009-03-17,2028
004507,002,Grace,Thompson,grace.thompson@demo.k12.example,Welcome-2026!,WA8804507,,004507,Rose,11,Active,2008-05-20,2027
004508,002,Hiroshi,Tanaka,hiroshi.tanaka@demo.k12.example,Summit-9185!,WA8804508,,004508,,12,Active,2007-09-09,2026
004509,002,Isabella,Fernández,isabella.fernandez@demo.k12.example,Welcome-2026!,WA8804509,,004509,,09,Active,2010-06-06,2029
004510,002,Jack,Wilson,jack.wilson@demo.k12.example,Welcome-2026!,WA8804510,,004510,,10,Active,2009-11-30,2028
004511,002,Kaia,Begay,kaia.begay@demo.k12.example,Mesa-1276!,WA8804511,kaia.b@mail.example,004511,,11,Active,2008-08-18,2027
004512,002,Leo,Dubois,leo.dubois@demo.k12.example,Welcome-2026!,WA8804512,,004512,,12,Active,2007-12-24,2026
004514,002,Nora,Fitzgerald,nora.fitzgerald@demo.k12.example,,WA8804514,,004514,,09,Active,2010-10-31,2029
004515,002,Omar,Haddad,omar.haddad@demo.k12.example,Welcome-2026!,WA8804515,,004515,,11,Active,2008-04-22,2027
",
        ),
    ];
}

#[test]
fn database_urls_are_rewritten_to_the_test_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("mysql://root:pw@db:3306/test?ssl-mode=disabled", "x"),
        "mysql://root:pw@db:3306/x?ssl-mode=disabled"
    );
    assert_eq!(
        with_database("postgres://u@h:5432", "x"),
        "postgres://u@h:5432/x"
    );
}
