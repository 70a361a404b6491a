//! Loading `config.toml` plus `SDS_SYNC__SECTION__KEY` environment overrides into typed,
//! validated settings; resolving `*_file` secrets. The only place that reads config files.
//!
//! [`Config::load`] is the one validation every verb (and a SIGHUP reload) runs before anything
//! is created or written: TOML syntax (reported by line and column only: the offending line may
//! hold a password), unknown keys, values and their combinations, the SIS URL, the schedule.
//! What needs file access (secret files, key files) is checked by the CLI right after, through
//! the same code `check --offline` uses.

use crate::backoff::RetryPolicy;
use config::{Config as Layers, Environment, File, FileFormat};
use sds_core::format::Presence;
use sds_core::guard::GuardConfig;
use sds_core::{District, Entity, ExportOptions, Format, UsernameRule};
use sds_deliver::email::EmailConfig;
use sds_deliver::ftp::FtpConfig;
use sds_deliver::sftp::SftpConfig;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/sds-sync/config.toml";
pub const ENV_PREFIX: &str = "SDS_SYNC";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    Load { path: String, message: String },
    /// Never carries the offending line: it may hold a password.
    #[error("config file {path}: TOML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("config key {key}: cannot read secret file {path}: {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole `config.toml` as written by the admin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceSection,
    #[serde(default)]
    pub export: ExportSection,
    #[serde(default)]
    pub state: StateSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub daemon: DaemonSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub destination: Vec<DestinationSection>,
    /// Found while loading, for the caller to log once logging is set up (or print in
    /// `check`): e.g. a config file with inline secrets that other users can read.
    #[serde(skip)]
    pub load_warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `postgres://`, `mysql://` (MariaDB too), `sqlite://`, `odbc:<connection string>` (with
    /// the `odbc` feature), or `demo:`.
    pub url: String,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// Seconds to wait for a SIS connection (default 30).
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds one SIS query may take, all rows included (default 3600).
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
    /// PostgreSQL: read text/integer-only queries through COPY (default true).
    #[serde(default = "default_true")]
    pub postgres_copy: bool,
    /// PEM file of a private CA that signed the SIS server's certificate (PostgreSQL, MySQL).
    pub ca_file: Option<PathBuf>,
    /// The longest value a query may return, in bytes (default 65536).
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    #[serde(default)]
    pub queries: QueriesSection,
    /// The optional queries to read (`academic_sessions`, `courses`, `guardians`), each adding
    /// a file to an SDS v2.1 export. A TOML list, or a comma-separated string.
    #[serde(default, deserialize_with = "list_or_csv")]
    pub optional_queries: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueriesSection {
    pub schools: Option<String>,
    pub students: Option<String>,
    pub teachers: Option<String>,
    pub sections: Option<String>,
    pub student_enrollments: Option<String>,
    pub teacher_rosters: Option<String>,
    pub academic_sessions: Option<String>,
    pub courses: Option<String>,
    pub guardians: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSection {
    pub format: Format,
    /// A TOML list, or a comma-separated string (how the environment can give a list).
    #[serde(deserialize_with = "list_or_csv")]
    pub schools: Vec<String>,
    pub username: UsernameRule,
    pub include_passwords: bool,
    pub license_file: bool,
    pub account_sku_id: Option<String>,
    pub student_id_prefix: String,
    pub teacher_id_prefix: String,
    /// Rows one file may hold (Microsoft's SDS limit, 2,000,000); more fails the run.
    pub max_rows_per_file: u64,
    /// Prepended to every guardian ID (v2.1 users.csv and relationships.csv).
    pub guardian_id_prefix: String,
    /// Write every documented optional column whose source column the queries return.
    pub optional_columns: bool,
    /// `[export.district]`: a district org above the schools (v2, v2.1).
    pub district: Option<DistrictSection>,
    /// `[export.grade_map]`: SIS grade → Microsoft grade code.
    pub grade_map: BTreeMap<String, String>,
}

/// `[export.district]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictSection {
    pub id: String,
    pub name: String,
}

impl Default for ExportSection {
    fn default() -> Self {
        let d = ExportOptions::default();
        ExportSection {
            format: d.format,
            schools: d.schools,
            username: d.username,
            include_passwords: d.include_passwords,
            license_file: d.license_file,
            account_sku_id: None,
            student_id_prefix: d.student_id_prefix,
            teacher_id_prefix: d.teacher_id_prefix,
            max_rows_per_file: DEFAULT_MAX_ROWS_PER_FILE,
            guardian_id_prefix: d.guardian_id_prefix,
            optional_columns: d.optional_columns,
            district: None,
            grade_map: BTreeMap::new(),
        }
    }
}

/// Microsoft's per-file row limit for SDS CSV sync profiles.
pub const DEFAULT_MAX_ROWS_PER_FILE: u64 = 2_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    pub dir: PathBuf,
    /// Published snapshot folders kept on disk (held ones and undelivered ones are always kept).
    pub keep_snapshots: usize,
    /// Runs kept in the run history (`status` shows the newest); older ones are removed after
    /// each run so the state DB does not grow for as long as the daemon runs.
    pub keep_runs: usize,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            dir: PathBuf::from("/var/lib/sds-sync"),
            keep_snapshots: 10,
            keep_runs: sds_store::DEFAULT_KEEP_RUNS,
        }
    }
}

/// `[retry]`: how deliveries are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySection {
    pub initial_backoff_secs: u64,
    pub max_backoff_secs: u64,
    pub max_attempts: u32,
}

impl Default for RetrySection {
    fn default() -> Self {
        RetrySection {
            initial_backoff_secs: 30,
            max_backoff_secs: 1800,
            max_attempts: 20,
        }
    }
}

/// `[schedule]`: when `sds-sync run` exports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// 5-field (minute precision) or 6-field (with seconds) cron expression.
    pub cron: String,
    /// IANA time zone the cron expression is read in.
    pub timezone: String,
    /// Run once at start-up, before the first tick.
    pub run_at_start: bool,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        ScheduleSection {
            cron: "0 2 * * *".into(),
            timezone: "UTC".into(),
            run_at_start: true,
        }
    }
}

/// `[daemon]`: process behaviour of `sds-sync run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// After SIGTERM/SIGINT, how long the current step may take to reach a safe point.
    pub shutdown_grace_secs: u64,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            shutdown_grace_secs: 30,
        }
    }
}

/// `[metrics]`: Prometheus `/metrics` and `/healthz`; off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: LogFormat,
    /// A tracing filter (`info`, `sds_sync=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// One `[[destination]]`; `kind` picks the transport. Each transport's keys are its config
/// struct's fields (documented in `sds-deliver`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DestinationSection {
    Local(LocalSection),
    Sftp(SftpConfig),
    Ftp(FtpConfig),
    Email(EmailConfig),
}

/// `kind = "local"`: a folder on this machine (or a mounted share).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub include_license_file: bool,
    /// Optional files of the set this folder leaves out.
    #[serde(default)]
    pub omit_files: Vec<String>,
}

impl DestinationSection {
    pub fn name(&self) -> &str {
        match self {
            DestinationSection::Local(l) => &l.name,
            DestinationSection::Sftp(f) => &f.name,
            DestinationSection::Ftp(f) => &f.name,
            DestinationSection::Email(e) => &e.name,
        }
    }

    /// The optional files this destination leaves out (`omit_files`).
    pub fn omit_files(&self) -> &[String] {
        match self {
            DestinationSection::Local(l) => &l.omit_files,
            DestinationSection::Sftp(f) => &f.omit_files,
            DestinationSection::Ftp(f) => &f.omit_files,
            DestinationSection::Email(e) => &e.omit_files,
        }
    }

    /// Checks without I/O; the message names the key inside the destination table.
    fn validate(&self) -> Result<(), String> {
        // Only the optional files sds-sync writes may stay home: SDS marks everything of a
        // missing required file inactive. The licence file has its own key.
        let optional: Vec<&str> = Format::V2_1
            .table()
            .iter()
            .filter(|f| f.written && f.presence == Presence::Optional && !f.license)
            .map(|f| f.name)
            .collect();
        for name in self.omit_files() {
            if !optional.contains(&name.as_str()) {
                return Err(format!(
                    "omit_files: {name:?} cannot be left out; only the optional files {} can (License.csv has include_license_file)",
                    optional.join(", ")
                ));
            }
        }
        match self {
            DestinationSection::Local(l) if l.path.as_os_str().is_empty() => {
                Err("path is empty".into())
            }
            DestinationSection::Local(_) => Ok(()),
            DestinationSection::Sftp(f) => f
                .validate()
                .map_err(|e| format!("{}: {}", e.key, e.message)),
            DestinationSection::Ftp(f) => f.validate(),
            DestinationSection::Email(e) => e.validate().map_err(|e| e.to_string()),
        }
    }
}

impl Config {
    /// Reads `path` (TOML) and the `SDS_SYNC__SECTION__KEY` environment on top of it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, None)
    }

    /// As [`Config::load`], with the environment given explicitly (tests) instead of the
    /// process environment.
    pub fn load_with_env(
        path: &Path,
        env: Option<config::Map<String, String>>,
    ) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(ConfigError::Load {
                path: shown,
                message:
                    "not found; pass --config FILE or create it (see deploy/config.example.toml)"
                        .into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Load {
            path: shown.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        // Parsed here first because the `config` crate's message quotes the offending line,
        // which may hold a password; this one says where, and what is wrong, only.
        let table = toml::de::DeTable::parse(&text).map_err(|e| {
            let (line, column) = line_and_column(&text, e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                path: shown.clone(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let inline_secrets = inline_secrets(table.get_ref());
        let layers = Layers::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .add_source(env_layer().source(env))
            .build()
            .map_err(|e| ConfigError::Load {
                path: shown.clone(),
                // Only the first line: a TOML error quotes the file from the second line on.
                message: e.to_string().lines().next().unwrap_or_default().to_owned(),
            })?;
        let mut cfg: Config = layers.try_deserialize().map_err(|e| ConfigError::Load {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        if let Some(w) = loose_file_warning(path, &inline_secrets) {
            cfg.load_warnings.push(w);
        }
        Ok(cfg)
    }

    /// Checks that need no I/O; everything an admin can get wrong is named by its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.source.url.trim().is_empty() {
            return Err(invalid(
                "source.url",
                "is empty; set the SIS database URL, e.g. postgres://sis@db/sis",
            ));
        }
        // The URL is checked as `Source::connect` would, minus the network: a typo in the
        // scheme must not wait for the first run (or pass `check --offline`).
        sds_source::SourceConfig::new(self.source.url.clone())
            .validate()
            .map_err(|e| invalid("source.url", e.to_string()))?;
        // Every verb, not only `run`: one validation of the whole config.
        crate::schedule::Schedule::parse(&self.schedule.cron, &self.schedule.timezone)?;
        if self.source.password.is_some() && self.source.password_file.is_some() {
            return Err(invalid(
                "source.password_file",
                "set either source.password or source.password_file, not both",
            ));
        }
        for (key, secs) in [
            (
                "source.connect_timeout_secs",
                self.source.connect_timeout_secs,
            ),
            ("source.query_timeout_secs", self.source.query_timeout_secs),
        ] {
            if !(1..=86_400 * 7).contains(&secs) {
                return Err(invalid(key, "must be between 1 and 604800 seconds"));
            }
        }
        if self.source.max_value_bytes == 0 {
            return Err(invalid(
                "source.max_value_bytes",
                "must be at least 1 (default 65536)",
            ));
        }
        if self.export.max_rows_per_file == 0 {
            return Err(invalid(
                "export.max_rows_per_file",
                "must be at least 1 (default 2000000, Microsoft's limit per file)",
            ));
        }
        for (entity, q) in self.queries() {
            if q.trim().is_empty() {
                return Err(invalid(
                    format!("source.queries.{}", entity.key()),
                    "is empty; remove it to use the default query",
                ));
            }
        }
        let e = &self.export;
        if e.license_file && e.format != Format::V1 {
            return Err(invalid(
                "export.license_file",
                "License.csv exists only in format v1; set it to false or use format = \"v1\"",
            ));
        }
        if e.license_file
            && e.account_sku_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
        {
            return Err(invalid(
                "export.account_sku_id",
                "is required when export.license_file = true (e.g. \"contoso:STANDARDWOFFPACK_STUDENT\")",
            ));
        }
        if e.format == Format::V2_1 && e.username != UsernameRule::Email {
            return Err(invalid(
                "export.username",
                "SDS v2.1 requires full user@domain usernames; any rule but \"email\" makes every user invalid. Set username = \"email\"",
            ));
        }
        self.validate_full_formats()?;
        if e.schools.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid("export.schools", "contains a blank school ID"));
        }
        if self.state.dir.as_os_str().is_empty() {
            return Err(invalid("state.dir", "is empty"));
        }
        if self.state.keep_snapshots == 0 {
            return Err(invalid(
                "state.keep_snapshots",
                "must be at least 1 (the current snapshot is always kept)",
            ));
        }
        if self.state.keep_runs == 0 {
            return Err(invalid(
                "state.keep_runs",
                "must be at least 1 (the run history `status` shows)",
            ));
        }
        self.guard.validate().map_err(|m| invalid("guard", m))?;
        self.retry_policy()?;
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.destination.iter().enumerate() {
            let key = format!("destination[{i}].name");
            if d.name().trim().is_empty() {
                return Err(invalid(
                    key,
                    "is empty; every destination needs a unique name",
                ));
            }
            if !names.insert(d.name()) {
                return Err(invalid(
                    key,
                    format!(
                        "{:?} is used by two destinations; names must be unique",
                        d.name()
                    ),
                ));
            }
            d.validate()
                .map_err(|m| invalid(format!("destination[{i}]"), m))?;
        }
        Ok(())
    }

    /// The keys of the full SDS formats: optional queries, district, grade map.
    fn validate_full_formats(&self) -> Result<(), ConfigError> {
        let e = &self.export;
        let known: Vec<&str> = Entity::OPTIONAL.iter().map(|e| e.key()).collect();
        for name in &self.source.optional_queries {
            match Entity::from_key(name.trim()) {
                Some(entity) if entity.is_optional_query() => {}
                _ => {
                    return Err(invalid(
                        "source.optional_queries",
                        format!(
                            "{name:?} is not an optional query; the optional queries are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if !self.source.optional_queries.is_empty() && e.format != Format::V2_1 {
            return Err(invalid(
                "source.optional_queries",
                "academic sessions, courses and guardians have files only in SDS v2.1; set export.format = \"v2.1\" or remove them",
            ));
        }
        for (entity, _) in self.queries() {
            if entity.is_optional_query() && !self.export_options().reads(entity) {
                return Err(invalid(
                    format!("source.queries.{}", entity.key()),
                    format!(
                        "is set, but the query is not switched on: add \"{}\" to source.optional_queries (or remove the query)",
                        entity.key()
                    ),
                ));
            }
        }
        if let Some(d) = &e.district {
            if e.format == Format::V1 {
                return Err(invalid(
                    "export.district",
                    "SDS v1 has no district org (no orgs.csv); remove [export.district] or use format v2.1",
                ));
            }
            if d.id.trim().is_empty() {
                return Err(invalid("export.district.id", "is empty"));
            }
            if d.name.trim().is_empty() {
                return Err(invalid("export.district.name", "is empty"));
            }
        }
        for (from, to) in &e.grade_map {
            if from.trim().is_empty() || to.trim().is_empty() {
                return Err(invalid(
                    "export.grade_map",
                    format!("{from:?} = {to:?}: neither side may be blank"),
                ));
            }
        }
        Ok(())
    }

    pub fn queries(&self) -> BTreeMap<Entity, String> {
        let q = &self.source.queries;
        let pairs = [
            (Entity::Schools, &q.schools),
            (Entity::Students, &q.students),
            (Entity::Teachers, &q.teachers),
            (Entity::Sections, &q.sections),
            (Entity::StudentEnrollments, &q.student_enrollments),
            (Entity::TeacherRosters, &q.teacher_rosters),
            (Entity::AcademicSessions, &q.academic_sessions),
            (Entity::Courses, &q.courses),
            (Entity::Guardians, &q.guardians),
        ];
        pairs
            .into_iter()
            .filter_map(|(e, s)| s.clone().map(|s| (e, s)))
            .collect()
    }

    pub fn retry_policy(&self) -> Result<RetryPolicy, ConfigError> {
        let r = &self.retry;
        RetryPolicy::from_secs(r.initial_backoff_secs, r.max_backoff_secs, r.max_attempts)
            .map_err(|e| invalid("retry", e.to_string()))
    }

    pub fn export_options(&self) -> ExportOptions {
        let e = &self.export;
        ExportOptions {
            format: e.format,
            schools: e.schools.iter().map(|s| s.trim().to_owned()).collect(),
            username: e.username,
            include_passwords: e.include_passwords,
            license_file: e.license_file,
            account_sku_id: e.account_sku_id.clone().unwrap_or_default(),
            student_id_prefix: e.student_id_prefix.clone(),
            teacher_id_prefix: e.teacher_id_prefix.clone(),
            guardian_id_prefix: e.guardian_id_prefix.clone(),
            optional_columns: e.optional_columns,
            optional_queries: Entity::OPTIONAL
                .into_iter()
                .filter(|o| {
                    self.source
                        .optional_queries
                        .iter()
                        .any(|n| n.trim() == o.key())
                })
                .collect(),
            district: e.district.as_ref().map(|d| District {
                id: d.id.trim().to_owned(),
                name: d.name.trim().to_owned(),
            }),
            grade_map: e
                .grade_map
                .iter()
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
        }
    }

    /// The SIS password: `source.password` (file or `SDS_SYNC__SOURCE__PASSWORD`), or the
    /// content of `source.password_file` without its trailing newline.
    pub fn source_password(&self) -> Result<Option<SecretString>, ConfigError> {
        if let Some(p) = &self.source.password {
            return Ok(Some(p.clone()));
        }
        match &self.source.password_file {
            Some(path) => read_secret_file("source.password_file", path).map(Some),
            None => Ok(None),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Keys whose value is a secret when written inline (rather than as `*_file` or in the
/// environment).
const SECRET_KEYS: [&str; 3] = ["password", "private_key_passphrase", "oauth2_client_secret"];

/// The config keys of `table` that hold a secret inline: any `password`-like key, and a
/// `source.url` with a password in it. Names only, never values.
fn inline_secrets(table: &toml::de::DeTable<'_>) -> Vec<String> {
    use toml::de::DeValue;
    fn walk(prefix: &str, table: &toml::de::DeTable<'_>, out: &mut Vec<String>) {
        for (key, value) in table {
            let key = key.get_ref().as_ref();
            let path = if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            match value.get_ref() {
                DeValue::String(v) if SECRET_KEYS.contains(&key) && !v.is_empty() => out.push(path),
                DeValue::String(v)
                    if path == "source.url"
                        && url::Url::parse(v).is_ok_and(|u| u.password().is_some()) =>
                {
                    out.push(path)
                }
                DeValue::Table(t) => walk(&path, t, out),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            walk(&format!("{path}[{i}]"), t, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

/// A warning when the config file holds secrets inline and other users may read it.
fn loose_file_warning(path: &Path, secrets: &[String]) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if secrets.is_empty() {
            return None;
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return None;
        }
        Some(format!(
            "config file {} is readable by other users (mode {mode:03o}) and holds secrets inline \
             ({}); chmod 600 it, or move the secrets to *_file keys or SDS_SYNC__ environment \
             variables",
            path.display(),
            secrets.join(", ")
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, secrets);
        None
    }
}

fn env_layer() -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        // No type guessing: "007" must stay the text 007, never become the number 7.
        .try_parsing(false)
}

fn default_connect_timeout_secs() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

fn default_max_value_bytes() -> usize {
    64 * 1024
}

fn default_query_timeout_secs() -> u64 {
    3600
}

fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => v,
        ListOrCsv::Csv(s) if s.trim().is_empty() => Vec::new(),
        ListOrCsv::Csv(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
    })
}

/// Reads a secret from a file (a Docker/systemd credential), trimming the trailing newline that
/// editors and `echo` add.
pub fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        key: key.into(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SecretString::from(
        raw.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const MINIMAL: &str = "[source]\nurl = \"demo:\"\n";

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&path, Some(env))
    }

    #[test]
    fn defaults_apply() {
        let cfg = load(MINIMAL, &[]).unwrap();
        assert_eq!(cfg.export.format, Format::V1);
        assert_eq!(cfg.export.username, UsernameRule::Email);
        assert!(cfg.export.include_passwords);
        assert!(!cfg.export.license_file);
        assert_eq!(cfg.state.dir, PathBuf::from("/var/lib/sds-sync"));
        assert!(cfg.destination.is_empty());
        assert!(cfg.queries().is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load("[source]\nurl = \"demo:\"\nurll = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        let err = load(&format!("{MINIMAL}[exprt]\nformat = \"v1\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exprt"), "{err}");
        let err = load(
            &format!("{MINIMAL}[[destination]]\nname = \"a\"\nkind = \"local\"\npath = \"/x\"\nincluded_license_file = true\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("included_license_file"), "{err}");
        let err = load(MINIMAL, &[("SDS_SYNC__EXPORT__FROMAT", "v2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fromat"), "{err}");
    }

    #[test]
    fn environment_overrides_file() {
        let toml = format!(
            "{MINIMAL}[export]\nformat = \"v1\"\nschools = [\"001\"]\ninclude_passwords = true\n"
        );
        let cfg = load(
            &toml,
            &[
                ("SDS_SYNC__EXPORT__FORMAT", "v2.1"),
                ("SDS_SYNC__EXPORT__INCLUDE_PASSWORDS", "false"),
                ("SDS_SYNC__EXPORT__SCHOOLS", "007,010"),
                ("SDS_SYNC__SOURCE__PASSWORD", "s3cret"),
                ("SDS_SYNC__STATE__DIR", "/tmp/sds-state"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.export.format, Format::V2_1);
        assert!(!cfg.export.include_passwords);
        // Leading zeros survive: IDs are text, never parsed as numbers.
        assert_eq!(
            cfg.export.schools,
            vec!["007".to_string(), "010".to_string()]
        );
        assert_eq!(
            cfg.source_password().unwrap().unwrap().expose_secret(),
            "s3cret"
        );
        assert_eq!(cfg.state.dir, PathBuf::from("/tmp/sds-state"));
    }

    #[test]
    fn password_file_is_read_and_trimmed_and_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "hunter2\n").unwrap();
        let toml = format!(
            "[source]\nurl = \"postgres://sis@db/sis\"\npassword_file = \"{}\"\n",
            secret.display()
        );
        let cfg = load(&toml, &[]).unwrap();
        assert_eq!(
            cfg.source_password().unwrap().unwrap().expose_secret(),
            "hunter2"
        );
        let cfg = load(
            "[source]\nurl = \"postgres://sis@db/sis\"\npassword = \"hunter2\"\n",
            &[],
        )
        .unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn invalid_combinations_name_their_key() {
        let cases = [
            (
                "[export]\nformat = \"v2.1\"\nusername = \"email-local-part\"\n",
                "export.username",
            ),
            (
                "[export]\nformat = \"v2\"\nlicense_file = true\naccount_sku_id = \"x\"\n",
                "export.license_file",
            ),
            ("[export]\nlicense_file = true\n", "export.account_sku_id"),
            (
                "[source.queries]\nstudents = \"  \"\n",
                "source.queries.students",
            ),
            (
                "[[destination]]\nname = \"a\"\nkind = \"local\"\npath = \"/x\"\n[[destination]]\nname = \"a\"\nkind = \"local\"\npath = \"/y\"\n",
                "destination[1].name",
            ),
            (
                "[[destination]]\nname = \"a\"\nkind = \"local\"\npath = \"/x\"\nomit_files = [\"users.csv\"]\n",
                "destination[0]",
            ),
            ("[state]\nkeep_runs = 0\n", "state.keep_runs"),
        ];
        for (extra, key) in cases {
            let err = load(&format!("{MINIMAL}{extra}"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = load(&format!("{MINIMAL}[export]\nformat = \"v3\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("v3"), "{err}");
    }

    #[test]
    fn full_format_keys_parse_and_map_to_export_options() {
        let cfg = load(
            &format!(
                "{MINIMAL}optional_queries = [\"guardians\", \"academic_sessions\"]\n\
                 [source.queries]\nguardians = \"SELECT 1\"\n\
                 [export]\nformat = \"v2.1\"\noptional_columns = true\n\
                 guardian_id_prefix = \"g-\"\n\
                 [export.district]\nid = \" D1 \"\nname = \"Demo District\"\n\
                 [export.grade_map]\n\"K\" = \"kg\"\n\"9\" = \"09\"\n"
            ),
            &[],
        )
        .unwrap();
        let o = cfg.export_options();
        assert!(o.optional_columns);
        assert_eq!(
            o.optional_queries,
            [Entity::AcademicSessions, Entity::Guardians]
        );
        assert_eq!(o.guardian_id_prefix, "g-");
        assert_eq!(
            o.district,
            Some(District {
                id: "D1".into(),
                name: "Demo District".into()
            })
        );
        // Grade keys keep their letter case: "K" is not "k".
        assert_eq!(o.grade_map.get("K").map(String::as_str), Some("kg"));
        assert_eq!(o.grade_map.get("9").map(String::as_str), Some("09"));
        assert!(o.full_formats());
        assert_eq!(
            cfg.queries().get(&Entity::Guardians).map(String::as_str),
            Some("SELECT 1")
        );
        // The environment can switch optional queries on as a comma-separated list.
        let cfg = load(
            &format!("{MINIMAL}[export]\nformat = \"v2.1\"\n"),
            &[("SDS_SYNC__SOURCE__OPTIONAL_QUERIES", "courses, guardians")],
        )
        .unwrap();
        assert_eq!(
            cfg.export_options().optional_queries,
            [Entity::Courses, Entity::Guardians]
        );
        // None of the keys: nothing of the full formats.
        assert!(!load(MINIMAL, &[]).unwrap().export_options().full_formats());
    }

    #[test]
    fn full_format_keys_are_checked() {
        let cases = [
            (
                "optional_queries = [\"terms\"]\n[export]\nformat = \"v2.1\"\n",
                "source.optional_queries",
                "academic_sessions, courses, guardians",
            ),
            (
                "optional_queries = [\"courses\"]\n[export]\nformat = \"v1\"\n",
                "source.optional_queries",
                "v2.1",
            ),
            (
                "[source.queries]\ncourses = \"SELECT 1\"\n[export]\nformat = \"v2.1\"\n",
                "source.queries.courses",
                "optional_queries",
            ),
            (
                "[export]\nformat = \"v1\"\n[export.district]\nid = \"D\"\nname = \"N\"\n",
                "export.district",
                "v1",
            ),
            (
                "[export]\nformat = \"v2\"\n[export.district]\nid = \" \"\nname = \"N\"\n",
                "export.district.id",
                "empty",
            ),
            (
                "[export.grade_map]\n\"K\" = \"\"\n",
                "export.grade_map",
                "blank",
            ),
        ];
        for (extra, key, why) in cases {
            let err = load(&format!("{MINIMAL}{extra}"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(why), "{key}: {err}");
        }
        let err = load(
            &format!("{MINIMAL}[export.district]\nid = \"D\"\nnmae = \"N\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nmae"), "{err}");
    }

    /// The configs we ship must keep parsing as keys change (examples, demo, compose stack).
    #[test]
    fn shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for file in [
            "deploy/config.example.toml",
            "deploy/destinations.example.toml",
            "deploy/demo.toml",
            "deploy/compose/config.toml",
        ] {
            let cfg = Config::load_with_env(&root.join(file), Some(Default::default()))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!cfg.destination.is_empty(), "{file}: no destination");
            if file.contains("destinations") {
                let kinds: Vec<&str> = cfg
                    .destination
                    .iter()
                    .map(|d| match d {
                        DestinationSection::Local(_) => "local",
                        DestinationSection::Sftp(_) => "sftp",
                        DestinationSection::Ftp(_) => "ftp",
                        DestinationSection::Email(_) => "email",
                    })
                    .collect();
                assert_eq!(kinds, ["local", "sftp", "ftp", "email"]);
            }
        }
    }

    #[test]
    fn inline_secrets_are_found_by_key_never_by_value() {
        let text = "[source]\nurl = \"postgres://sis:pw@db/sis\"\n\
                    [[destination]]\nname = \"m\"\nkind = \"email\"\noauth2_client_secret = \"s\"\n\
                    [[destination]]\nname = \"f\"\nkind = \"ftp\"\npassword = \"\"\npassword_file = \"/x\"\n\
                    [[destination]]\nname = \"s\"\nkind = \"sftp\"\nprivate_key_passphrase = \"k\"\n";
        let table = toml::de::DeTable::parse(text).unwrap();
        assert_eq!(
            inline_secrets(table.get_ref()),
            [
                "destination[0].oauth2_client_secret",
                "destination[2].private_key_passphrase",
                "source.url"
            ]
        );
        let table =
            toml::de::DeTable::parse("[source]\nurl = \"postgres://sis@db/sis\"\n").unwrap();
        assert!(inline_secrets(table.get_ref()).is_empty());
    }

    #[test]
    fn syntax_errors_are_placed_by_line_and_character_column() {
        assert_eq!(line_and_column("a = 1\nbé = \"x", 13), (2, 7));
        assert_eq!(line_and_column("abc", 0), (1, 1));
        // Past the end (a parser pointing at EOF) stays on the last line.
        assert_eq!(line_and_column("a\nbc", 99), (2, 3));
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = Config::load(Path::new("/nonexistent/sds.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/sds.toml") && err.contains("--config"),
            "{err}"
        );
    }
}
