//! Database values → text, the same way on PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! Admin-written queries return whatever types their SIS uses, so each result column is first
//! classified by its database type into a [`Kind`], and each value is then decoded natively as
//! that kind and printed in one canonical form:
//!
//! | kind | text |
//! |---|---|
//! | integers (any width, MySQL unsigned, YEAR, PG OID) | decimal digits, `-` for negatives |
//! | NUMERIC / DECIMAL | the exact decimal with the column's scale: `9`, `12.50`, `-3` (never `-0`) |
//! | float / double / SQLite REAL | shortest text that reads back to the same number, without exponent; integral values without `.0`: `12.5`, `3` |
//! | CHAR / VARCHAR / TEXT / enum / citext | as stored; PostgreSQL `char(n)` pad spaces are removed (MySQL already strips them) |
//! | BOOLEAN | `true` / `false` |
//! | DATE | `YYYY-MM-DD` |
//! | TIME | `HH:MM:SS`, with `.ffffff` only when the fraction is not zero |
//! | TIMESTAMP / DATETIME | `YYYY-MM-DD HH:MM:SS`, fraction only when not zero; `timestamptz` in UTC |
//! | UUID | lower-case hyphenated |
//! | BLOB / BYTEA / BINARY | the bytes as text when they are valid UTF-8, else an error naming the column |
//! | NULL (and the MySQL zero date `0000-00-00`) | `None` |
//!
//! SQLite is dynamically typed: the value's storage class (INTEGER, REAL, TEXT, BLOB) decides,
//! and the column's declared type only refines it: an INTEGER in a column declared `BOOLEAN`
//! prints as `true`/`false`, and a TEXT in a column declared `DATETIME`/`TIMESTAMP` is rewritten
//! to `YYYY-MM-DD HH:MM:SS` when it parses as one. SQLite stores `NUMERIC(5,2)` `12.50` as the
//! REAL 12.5, so it prints `12.5` there (and `12.50` on PostgreSQL and MySQL); `NUMERIC(2,0)`
//! values are integers and print the same everywhere.

use sqlx::decode::Decode;
use sqlx::error::{BoxDynError, UnexpectedNullError};
use sqlx::mysql::{MySql, MySqlRow, MySqlTypeInfo};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgRow, PgTypeInfo, PgTypeKind, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow, SqliteTypeInfo};
use sqlx::types::Decimal;
use sqlx::types::Uuid;
use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::{Database, Row, TypeInfo, ValueRef};
use std::borrow::Cow;

/// How the values of one result column are decoded and printed. Chosen once per query from the
/// column's database type, never by trying decodes one after another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A column that can only hold NULL (MySQL reports `SELECT NULL` this way).
    Null,
    Int,
    /// MySQL unsigned integers, which may exceed `i64`.
    UInt,
    /// PostgreSQL OID: unsigned 32-bit.
    Oid,
    Bool,
    Decimal,
    F32,
    F64,
    Text,
    /// PostgreSQL `char(n)`: text padded with spaces to n.
    PaddedText,
    Bytes,
    Date,
    Time,
    DateTime,
    /// PostgreSQL `timestamptz`: an instant, printed in UTC.
    DateTimeUtc,
    Uuid,
    /// SQLite: decided per value by its storage class, refined by the declared type.
    Sqlite(SqliteDecl),
}

/// The part of a SQLite column's declared type that changes how a value prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqliteDecl {
    Plain,
    Bool,
    DateTime,
}

/// One database driver as this crate uses it.
pub(crate) trait Backend: Database {
    /// For messages: "PostgreSQL", "MySQL/MariaDB", "SQLite".
    const LABEL: &'static str;

    /// A CAST that turns `column` into text on this database, to suggest in errors.
    fn cast_hint(column: &str) -> String;

    /// How values of this type are read, or `None` when the type is not supported.
    fn kind(ty: &Self::TypeInfo) -> Option<Kind>;

    /// The text of the value at `index` (`None` for NULL), borrowed from the row where the
    /// database already sent text: at millions of rows, a copy per value is measurable.
    fn render(
        row: &Self::Row,
        index: usize,
        kind: Kind,
    ) -> Result<Option<Cow<'_, str>>, BoxDynError>;
}

impl Backend for Postgres {
    const LABEL: &'static str = "PostgreSQL";

    fn cast_hint(column: &str) -> String {
        format!("CAST({column} AS TEXT)")
    }

    fn kind(ty: &PgTypeInfo) -> Option<Kind> {
        // Built-in type OIDs are fixed by PostgreSQL (pg_type.dat); types created by extensions
        // (citext) or by the admin (enums, domains) are recognised by kind and name instead.
        if let Some(Oid(oid)) = ty.oid() {
            let kind = match oid {
                16 => Some(Kind::Bool),
                17 => Some(Kind::Bytes),
                // "char" (one byte), name, text, unknown (an untyped literal), varchar
                18 | 19 | 25 | 705 | 1043 => Some(Kind::Text),
                20 | 21 | 23 => Some(Kind::Int),
                26 => Some(Kind::Oid),
                700 => Some(Kind::F32),
                701 => Some(Kind::F64),
                1042 => Some(Kind::PaddedText),
                1082 => Some(Kind::Date),
                1083 => Some(Kind::Time),
                1114 => Some(Kind::DateTime),
                1184 => Some(Kind::DateTimeUtc),
                1700 => Some(Kind::Decimal),
                2950 => Some(Kind::Uuid),
                _ => None,
            };
            if kind.is_some() {
                return kind;
            }
        }
        match ty.kind() {
            // Enum values travel as their label text.
            PgTypeKind::Enum(_) => Some(Kind::Text),
            // A domain's values are those of its base type.
            PgTypeKind::Domain(base) => Self::kind(base),
            PgTypeKind::Simple if ty.name().eq_ignore_ascii_case("citext") => Some(Kind::Text),
            _ => None,
        }
    }

    fn render(row: &PgRow, index: usize, kind: Kind) -> Result<Option<Cow<'_, str>>, BoxDynError> {
        let value = row.try_get_raw(index)?;
        if value.is_null() {
            return Ok(None);
        }
        let text = match kind {
            Kind::Text => {
                return Ok(Some(Cow::Borrowed(<&str as Decode<Postgres>>::decode(
                    value,
                )?)));
            }
            Kind::PaddedText => {
                let s = <&str as Decode<Postgres>>::decode(value)?;
                return Ok(Some(Cow::Borrowed(s.trim_end_matches(' '))));
            }
            Kind::Int => <i64 as Decode<Postgres>>::decode(value)?.to_string(),
            Kind::Oid => <Oid as Decode<Postgres>>::decode(value)?.0.to_string(),
            Kind::Bool => bool_text(<bool as Decode<Postgres>>::decode(value)?),
            Kind::Decimal => decimal_text(<Decimal as Decode<Postgres>>::decode(value)?),
            Kind::F32 => f32_text(<f32 as Decode<Postgres>>::decode(value)?),
            Kind::F64 => f64_text(<f64 as Decode<Postgres>>::decode(value)?),
            Kind::Bytes => bytes_text(<&[u8] as Decode<Postgres>>::decode(value)?)?,
            Kind::Date => date_text(<NaiveDate as Decode<Postgres>>::decode(value)?),
            Kind::Time => time_text(<NaiveTime as Decode<Postgres>>::decode(value)?),
            Kind::DateTime => datetime_text(<NaiveDateTime as Decode<Postgres>>::decode(value)?),
            Kind::DateTimeUtc => {
                datetime_text(<DateTime<Utc> as Decode<Postgres>>::decode(value)?.naive_utc())
            }
            Kind::Uuid => <Uuid as Decode<Postgres>>::decode(value)?
                .hyphenated()
                .to_string(),
            Kind::Null | Kind::UInt | Kind::Sqlite(_) => return Err(wrong_kind(kind, Self::LABEL)),
        };
        Ok(Some(Cow::Owned(text)))
    }
}

impl Backend for MySql {
    const LABEL: &'static str = "MySQL/MariaDB";

    fn cast_hint(column: &str) -> String {
        format!("CAST({column} AS CHAR)")
    }

    fn kind(ty: &MySqlTypeInfo) -> Option<Kind> {
        // sqlx names MySQL types from the protocol's type id and flags; the name is the only
        // public view of them. TINYINT(1) is reported as BOOLEAN (that is what BOOLEAN is in
        // MySQL), and text with a binary collation (utf8mb4_bin) as BINARY/VARBINARY/BLOB.
        Some(match ty.name() {
            "NULL" => Kind::Null,
            "BOOLEAN" => Kind::Bool,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Kind::Int,
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" => Kind::UInt,
            "DECIMAL" => Kind::Decimal,
            "FLOAT" => Kind::F32,
            "DOUBLE" => Kind::F64,
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM"
            | "SET" => Kind::Text,
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => Kind::Bytes,
            "DATE" => Kind::Date,
            "TIME" => Kind::Time,
            // sqlx sets the session time zone to UTC, so TIMESTAMP values arrive in UTC, as
            // PostgreSQL's timestamptz does.
            "DATETIME" | "TIMESTAMP" => Kind::DateTime,
            _ => return None,
        })
    }

    fn render(
        row: &MySqlRow,
        index: usize,
        kind: Kind,
    ) -> Result<Option<Cow<'_, str>>, BoxDynError> {
        let value = row.try_get_raw(index)?;
        if value.is_null() {
            return Ok(None);
        }
        let text = match kind {
            Kind::Null => return Ok(None),
            Kind::Text => return Ok(Some(Cow::Borrowed(<&str as Decode<MySql>>::decode(value)?))),
            Kind::Int => <i64 as Decode<MySql>>::decode(value)?.to_string(),
            Kind::UInt => <u64 as Decode<MySql>>::decode(value)?.to_string(),
            Kind::Bool => bool_text(<bool as Decode<MySql>>::decode(value)?),
            Kind::Decimal => decimal_text(<Decimal as Decode<MySql>>::decode(value)?),
            Kind::F32 => f32_text(<f32 as Decode<MySql>>::decode(value)?),
            Kind::F64 => f64_text(<f64 as Decode<MySql>>::decode(value)?),
            Kind::Bytes => bytes_text(<&[u8] as Decode<MySql>>::decode(value)?)?,
            Kind::Date => match zero_date_as_none(<NaiveDate as Decode<MySql>>::decode(value))? {
                Some(d) => date_text(d),
                None => return Ok(None),
            },
            Kind::DateTime => {
                match zero_date_as_none(<NaiveDateTime as Decode<MySql>>::decode(value))? {
                    Some(dt) => datetime_text(dt),
                    None => return Ok(None),
                }
            }
            Kind::Time => {
                // MySQL TIME is a duration (-838:59:59 to 838:59:59). A time of day prints like
                // PostgreSQL's; anything else keeps MySQL's own form.
                let time = <sqlx::mysql::types::MySqlTime as Decode<MySql>>::decode(value)?;
                match NaiveTime::try_from(time) {
                    Ok(t) => time_text(t),
                    Err(_) => time.to_string(),
                }
            }
            Kind::Oid | Kind::PaddedText | Kind::DateTimeUtc | Kind::Uuid | Kind::Sqlite(_) => {
                return Err(wrong_kind(kind, Self::LABEL));
            }
        };
        Ok(Some(Cow::Owned(text)))
    }
}

/// MySQL's "zero date" `0000-00-00` (allowed by old SQL modes) means "no date": read it as NULL.
/// sqlx reports it as an unexpected NULL.
fn zero_date_as_none<T>(decoded: Result<T, BoxDynError>) -> Result<Option<T>, BoxDynError> {
    match decoded {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.downcast_ref::<UnexpectedNullError>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Backend for Sqlite {
    const LABEL: &'static str = "SQLite";

    fn cast_hint(column: &str) -> String {
        format!("CAST({column} AS TEXT)")
    }

    fn kind(ty: &SqliteTypeInfo) -> Option<Kind> {
        // sqlx maps the declared type (sqlite3_column_decltype) to these names; columns that are
        // expressions have no declared type and come out as NULL or a storage class.
        Some(Kind::Sqlite(match ty.name() {
            "BOOLEAN" => SqliteDecl::Bool,
            "DATETIME" => SqliteDecl::DateTime,
            _ => SqliteDecl::Plain,
        }))
    }

    fn render(
        row: &SqliteRow,
        index: usize,
        kind: Kind,
    ) -> Result<Option<Cow<'_, str>>, BoxDynError> {
        let Kind::Sqlite(decl) = kind else {
            return Err(wrong_kind(kind, Self::LABEL));
        };
        let value = row.try_get_raw(index)?;
        if value.is_null() {
            return Ok(None);
        }
        // For a non-NULL value this is the value's own storage class, not the declared type.
        let class = value.type_info().name().to_owned();
        let text = match class.as_str() {
            "INTEGER" => {
                let i = <i64 as Decode<Sqlite>>::decode(value)?;
                if decl == SqliteDecl::Bool {
                    bool_text(i != 0)
                } else {
                    i.to_string()
                }
            }
            "REAL" => f64_text(<f64 as Decode<Sqlite>>::decode(value)?),
            "TEXT" => {
                let s = <&str as Decode<Sqlite>>::decode(value)?;
                if decl == SqliteDecl::DateTime {
                    normalise_datetime(s)
                } else {
                    return Ok(Some(Cow::Borrowed(s)));
                }
            }
            "BLOB" => bytes_text(<&[u8] as Decode<Sqlite>>::decode(value)?)?,
            other => return Err(format!("unexpected SQLite storage class {other}").into()),
        };
        Ok(Some(Cow::Owned(text)))
    }
}

fn wrong_kind(kind: Kind, backend: &str) -> BoxDynError {
    // Unreachable by construction (kinds come from the same backend's `kind`), but an error is
    // kinder than a panic if that ever changes.
    format!("internal error: {kind:?} is not a {backend} kind").into()
}

pub(crate) fn bool_text(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// Keeps the scale (`12.50` stays `12.50`, NUMERIC(2,0) `9` stays `9`) but never prints `-0`.
pub(crate) fn decimal_text(mut d: Decimal) -> String {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d.to_string()
}

/// Rust's `Display` for floats is the shortest text that reads back to the same value, never in
/// exponent form, and without `.0` for integral values, so `3.0` prints like the integer `3`.
pub(crate) fn f64_text(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        x.to_string()
    }
}

/// As [`f64_text`], at `f32` precision: a FLOAT holding 0.1 prints `0.1`, not the `f64`
/// widening `0.10000000149011612`.
pub(crate) fn f32_text(x: f32) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        x.to_string()
    }
}

pub(crate) fn bytes_text(bytes: &[u8]) -> Result<String, BoxDynError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(format!(
            "{} bytes of binary data that are not UTF-8 text",
            bytes.len()
        )
        .into()),
    }
}

pub(crate) fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn time_text(t: NaiveTime) -> String {
    // `%.f` prints nothing when the fraction is zero, else 3, 6 or 9 digits.
    t.format("%H:%M:%S%.f").to_string()
}

pub(crate) fn datetime_text(dt: NaiveDateTime) -> String {
    dt.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

/// SQLite keeps DATETIME values as the text they were written with; rewrite the ISO variants
/// (`T` separator, zero fraction, no seconds) to the canonical form, and leave anything else
/// (time zones, other formats) as it is.
fn normalise_datetime(s: &str) -> String {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(datetime_text)
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_keep_their_scale_and_lose_negative_zero() {
        let d = |s: &str| Decimal::from_str(s).map(decimal_text).ok();
        assert_eq!(d("9").as_deref(), Some("9"));
        assert_eq!(d("12.50").as_deref(), Some("12.50"));
        assert_eq!(d("-3").as_deref(), Some("-3"));
        assert_eq!(d("-0.00").as_deref(), Some("0.00"));
    }

    #[test]
    fn floats_print_shortest_without_exponent() {
        assert_eq!(f64_text(12.5), "12.5");
        assert_eq!(f64_text(3.0), "3");
        assert_eq!(f64_text(-0.0), "0");
        assert_eq!(f64_text(1e21), "1000000000000000000000");
        assert_eq!(f32_text(0.1), "0.1");
    }

    #[test]
    fn times_have_a_fraction_only_when_not_zero() {
        let dt = NaiveDate::from_ymd_opt(2024, 5, 1).and_then(|d| d.and_hms_opt(8, 30, 0));
        assert_eq!(
            dt.map(datetime_text).as_deref(),
            Some("2024-05-01 08:30:00")
        );
        let dt =
            NaiveDate::from_ymd_opt(2024, 5, 1).and_then(|d| d.and_hms_milli_opt(8, 30, 0, 500));
        assert_eq!(
            dt.map(datetime_text).as_deref(),
            Some("2024-05-01 08:30:00.500")
        );
        let t = NaiveTime::from_hms_opt(7, 5, 9);
        assert_eq!(t.map(time_text).as_deref(), Some("07:05:09"));
    }

    #[test]
    fn sqlite_datetime_text_is_normalised_when_it_parses() {
        assert_eq!(
            normalise_datetime("2024-05-01T08:30:00"),
            "2024-05-01 08:30:00"
        );
        assert_eq!(
            normalise_datetime("2024-05-01 08:30:00.000"),
            "2024-05-01 08:30:00"
        );
        assert_eq!(
            normalise_datetime("2024-05-01 08:30"),
            "2024-05-01 08:30:00"
        );
        assert_eq!(
            normalise_datetime("2024-05-01T08:30:00Z"),
            "2024-05-01T08:30:00Z"
        );
        assert_eq!(normalise_datetime("soon"), "soon");
    }

    #[test]
    fn binary_is_text_only_when_utf8() {
        assert_eq!(bytes_text("Zoë".as_bytes()).ok().as_deref(), Some("Zoë"));
        assert!(bytes_text(&[0xff, 0xfe]).is_err());
    }
}
