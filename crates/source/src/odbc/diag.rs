//! ODBC diagnostics worded for the admin: which drivers and data sources unixODBC knows when the
//! one asked for is missing, and what to check after a refused login, a refused TLS handshake,
//! an unreachable server or a timeout. The SQLSTATE decides where it is standard; the message
//! text where drivers disagree (login and TLS failures come as `08001` from most).

use std::fmt;

pub(crate) const HINT_DRIVER: &str = "the `Driver=` name in [source] url (exactly as \
    `odbcinst -q -d` prints it, without the brackets), or install the database vendor's ODBC \
    driver and register it in /etc/odbcinst.ini (docs/configuration.md, \"ODBC\")";
pub(crate) const HINT_DSN: &str = "the `DSN=` name in [source] url (exactly as `odbcinst -q -s` \
    prints it; data sources are defined in /etc/odbc.ini or ~/.odbc.ini of the user sds-sync runs \
    as), or name the driver and server in the connection string instead";
pub(crate) const HINT_LOAD: &str = "that the driver's library (the `Driver=` line of its \
    /etc/odbcinst.ini entry) exists and that the libraries it needs are installed (`ldd` it)";
pub(crate) const HINT_LOGIN: &str = "the user name (`UID=` in the connection string), the \
    password ([source] password or password_file), and that this user may log in to that database";
pub(crate) const HINT_TLS: &str = "the TLS settings of the connection string (SQL Server: \
    `Encrypt`, `TrustServerCertificate`; MariaDB: `SSLVERIFY`, `SSLCA`; PostgreSQL: `SSLMode`) \
    and the server's certificate: install the CA that signed it on this machine rather than \
    turning verification off";
pub(crate) const HINT_NETWORK: &str = "that the server is running and listening on that host \
    and port, and that no firewall blocks it";
pub(crate) const HINT_TIMEOUT: &str = "that the host and port are right and that no firewall \
    drops the traffic ([source] connect_timeout_secs)";
pub(crate) const HINT_GENERIC: &str = "the connection string in [source] url and the driver's \
    documentation";

/// A driver that ended its thread without a word (a crash inside the driver).
pub(crate) const STOPPED: &str =
    "the ODBC driver stopped unexpectedly (its own messages, if any, are on stderr)";

/// One ODBC failure: SQLSTATE and message (the driver manager's and driver's prefixes kept:
/// they say which layer speaks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) state: String,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn from_error(e: &odbc_api::Error) -> Failure {
        match e {
            odbc_api::Error::Diagnostics { record, .. } => Failure {
                state: record.state.as_str().to_owned(),
                message: one_line(&odbc_api::handles::slice_to_cow_utf8(&record.message)),
            },
            other => Failure {
                state: String::new(),
                message: one_line(&other.to_string()),
            },
        }
    }

    /// `HYT00` (timeout expired) and `HYT01` (connection timeout expired).
    pub(crate) fn is_timeout(&self) -> bool {
        self.state == "HYT00" || self.state == "HYT01"
    }

    /// Why a connection failed and what to check. `dsn` and `driver` are the connection
    /// string's `DSN=` and `Driver=` values.
    pub(crate) fn describe_connect(
        &self,
        dsn: Option<&str>,
        driver: Option<&str>,
    ) -> (String, &'static str) {
        let text = self.to_string();
        let lower = self.message.to_ascii_lowercase();
        match self.state.as_str() {
            // Data source name not found and no default driver specified.
            "IM002" => match (dsn, driver) {
                (_, Some(driver)) => (
                    driver_missing_reason(driver, &installed_drivers()),
                    HINT_DRIVER,
                ),
                (Some(dsn), None) => (
                    format!(
                        "the data source name `{dsn}` is not defined; the data sources \
                         unixODBC knows are: {} ({text})",
                        list(&data_sources())
                    ),
                    HINT_DSN,
                ),
                (None, None) => (
                    format!(
                        "the connection string names neither a data source (`DSN=`) nor a \
                         driver (`Driver=`) ({text})"
                    ),
                    HINT_GENERIC,
                ),
            },
            // The driver's library could not be loaded.
            "IM003" | "IM004" => (
                format!(
                    "the ODBC driver{} could not be loaded: {text}",
                    driver.map(|d| format!(" `{d}`")).unwrap_or_default()
                ),
                HINT_LOAD,
            ),
            _ if self.is_timeout() => (text, HINT_TIMEOUT),
            "28000" => (text, HINT_LOGIN),
            _ if is_login_message(&lower) => (text, HINT_LOGIN),
            _ if is_tls_message(&lower) => (text, HINT_TLS),
            "08001" | "08S01" | "08004" => (text, HINT_NETWORK),
            _ => (text, HINT_GENERIC),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.state.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (SQLSTATE {})", self.message, self.state)
        }
    }
}

/// Drivers spread messages over lines (psqlodbc: `ERROR: ...;\nError while executing the
/// query`); a log line or a `check` line keeps them on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of an odbc-api error, for debug lines.
pub(crate) fn message(e: &odbc_api::Error) -> String {
    Failure::from_error(e).to_string()
}

fn is_login_message(lower: &str) -> bool {
    [
        "password authentication failed",
        "access denied",
        "login failed",
        "invalid username/password",
        "ora-01017",
        "authentication failed",
        "no password supplied",
        // PostgreSQL (psqlodbc reports these as 08001, like a network failure).
        "no pg_hba.conf entry",
    ]
    .iter()
    .any(|m| lower.contains(m))
        || (lower.contains("role \"") && lower.contains("does not exist"))
}

fn is_tls_message(lower: &str) -> bool {
    ["ssl", "tls", "certificate", "handshake"]
        .iter()
        .any(|m| lower.contains(m))
}

pub(crate) fn driver_missing_reason(driver: &str, installed: &[String]) -> String {
    format!(
        "the ODBC driver `{driver}` is not installed; the drivers unixODBC knows are: {} \
         (`odbcinst -q -d`)",
        list(installed)
    )
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The drivers registered with unixODBC (`odbcinst -q -d`); empty when they cannot be listed.
pub(crate) fn installed_drivers() -> Vec<String> {
    odbc_api::environment()
        .and_then(|env| env.drivers())
        .map(|drivers| drivers.into_iter().map(|d| d.description).collect())
        .unwrap_or_default()
}

/// The data source names unixODBC knows, system and user (`odbcinst -q -s`).
fn data_sources() -> Vec<String> {
    odbc_api::environment()
        .and_then(|env| env.data_sources())
        .map(|sources| sources.into_iter().map(|s| s.server_name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(state: &str, message: &str) -> Failure {
        Failure {
            state: state.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn connect_failures_point_at_what_to_fix() {
        let cases = [
            (
                failure("28000", "[ma-3.1.15]Access denied for user 'x'@'localhost'"),
                HINT_LOGIN,
            ),
            (
                failure(
                    "08001",
                    "FATAL:  password authentication failed for user \"sds\"",
                ),
                HINT_LOGIN,
            ),
            (
                failure(
                    "08001",
                    "[Microsoft][ODBC Driver 18 for SQL Server]SSL Provider: certificate verify \
                     failed:unable to get local issuer certificate",
                ),
                HINT_TLS,
            ),
            (
                failure(
                    "08001",
                    "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  role \
                     \"nosuch\" does not exist",
                ),
                HINT_LOGIN,
            ),
            (
                failure(
                    "08001",
                    "FATAL:  no pg_hba.conf entry for host \"10.0.0.9\", user \"sds\", \
                     database \"sis\", no encryption",
                ),
                HINT_LOGIN,
            ),
            (
                failure("08001", "could not connect to server: Connection refused"),
                HINT_NETWORK,
            ),
            (failure("HYT00", "Login timeout expired"), HINT_TIMEOUT),
            (
                failure("IM003", "Specified driver could not be loaded"),
                HINT_LOAD,
            ),
            (failure("42000", "something else"), HINT_GENERIC),
        ];
        for (f, hint) in cases {
            let (reason, got) = f.describe_connect(None, Some("X"));
            assert_eq!(got, hint, "{f:?}");
            assert!(reason.contains(&f.message), "{reason}");
            assert!(reason.contains(&f.state), "{reason}");
        }
    }

    #[test]
    fn missing_driver_and_dsn_list_what_there_is() {
        let reason = driver_missing_reason(
            "ODBC Driver 17 for SQL Server",
            &["PostgreSQL Unicode".into(), "MariaDB Unicode".into()],
        );
        assert!(
            reason.contains("`ODBC Driver 17 for SQL Server` is not installed"),
            "{reason}"
        );
        assert!(
            reason.contains("`PostgreSQL Unicode`, `MariaDB Unicode`"),
            "{reason}"
        );
        assert!(driver_missing_reason("x", &[]).contains("are: none"));
        let (reason, hint) = failure(
            "IM002",
            "[unixODBC][Driver Manager]Data source name not found and no default driver \
             specified",
        )
        .describe_connect(Some("nosuchdsn"), None);
        assert_eq!(hint, HINT_DSN);
        assert!(reason.contains("`nosuchdsn` is not defined"), "{reason}");
    }

    #[test]
    fn messages_are_kept_on_one_line() {
        assert_eq!(
            one_line(" ERROR: relation \"x\" does not exist;\nError while executing the query "),
            "ERROR: relation \"x\" does not exist; Error while executing the query"
        );
    }

    #[test]
    fn timeouts_are_recognised_by_sqlstate() {
        assert!(failure("HYT00", "Timeout expired").is_timeout());
        assert!(failure("HYT01", "Connection timeout expired").is_timeout());
        assert!(!failure("08001", "timeout").is_timeout());
        assert_eq!(
            failure("HY000", "boom").to_string(),
            "boom (SQLSTATE HY000)"
        );
        assert_eq!(failure("", "boom").to_string(), "boom");
    }
}
