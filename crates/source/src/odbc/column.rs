//! ODBC result columns → text, printed exactly as the native sources print the same values
//! (`crate::render`): each contract column is classified once by the SQL type the driver reports
//! (and its type name, where drivers hide a type behind another: PostgreSQL `bool` arrives as
//! VARCHAR with `BoolsAsChar`), bound in the form that keeps its value exact, and printed with the
//! same functions as the sqlx sources.
//!
//! | SQL type the driver reports | bound as | printed as |
//! |---|---|---|
//! | CHAR, WCHAR | text | as stored, pad spaces removed (like PostgreSQL `char(n)`) |
//! | VARCHAR, LONGVARCHAR, W... | text | as stored |
//! | VARCHAR named `bool` (psqlodbc) | text | `true` / `false` |
//! | TINYINT, SMALLINT, INTEGER, BIGINT | 64-bit integer (unsigned BIGINT: text) | digits |
//! | NUMERIC, DECIMAL | text | exact decimal, scale kept, never `-0` (`.05` → `0.05`) |
//! | REAL / DOUBLE, FLOAT | f64 | shortest text that reads back the same (REAL at f32 precision) |
//! | BIT | bit | `true` / `false` |
//! | DATE | date | `YYYY-MM-DD` |
//! | TIME, SQL Server TIME(n) | text | `HH:MM:SS`, fraction only when not zero |
//! | TIMESTAMP | timestamp | `YYYY-MM-DD HH:MM:SS`, fraction only when not zero |
//! | TIMESTAMP named `... with time zone`, SQL Server DATETIMEOFFSET | text | in UTC, as above |
//! | GUID | text | lower-case hyphenated |
//! | BINARY, VARBINARY, LONGVARBINARY | bytes | the bytes when they are UTF-8 text, else an error |
//!
//! Text arrives as UTF-16 (`SQL_C_WCHAR`: exact whatever the process locale, which vendor
//! drivers use for `SQL_C_CHAR`), except from MariaDB/MySQL, whose Connector/ODBC miscounts
//! UTF-16 lengths (`Ørsted` comes back as `Ørste`) but sends UTF-8 exactly.

use crate::render::{bool_text, date_text, datetime_text, decimal_text, f32_text, f64_text};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use odbc_api::DataType;
use odbc_api::buffers::BufferDesc;
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::str::FromStr;

/// The most characters read from a text column whose size the driver does not bound
/// (`TEXT`, `VARCHAR(MAX)`, `CLOB`) or bounds beyond this: a longer value fails the query with a
/// message naming the column and row. Contract values are IDs, names and e-mail addresses.
pub(crate) const TEXT_CAP_CHARS: usize = 4000;

/// SQL Server's own types (msodbcsql `sqlncli.h`): `time(n)` and `datetimeoffset(n)`.
const SQL_SS_TIME2: i16 = -154;
const SQL_SS_TIMESTAMPOFFSET: i16 = -155;
/// `SQL_GUID` (not among odbc-api's named types).
const SQL_GUID: i16 = -11;

/// How text travels from the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `SQL_C_CHAR`, UTF-8.
    Narrow,
    /// `SQL_C_WCHAR`, UTF-16.
    Wide,
}

impl Encoding {
    /// UTF-16 everywhere except on MariaDB/MySQL (see the module doc); `dbms` is the driver's
    /// `SQL_DBMS_NAME`.
    pub(crate) fn for_dbms(dbms: &str) -> Encoding {
        let dbms = dbms.to_ascii_lowercase();
        if dbms.contains("mariadb") || dbms.contains("mysql") {
            Encoding::Narrow
        } else {
            Encoding::Wide
        }
    }

    /// Buffer units for `chars` characters: UTF-8 needs up to 4 bytes, UTF-16 up to 2 units.
    fn units(self, chars: usize) -> usize {
        match self {
            Encoding::Narrow => chars * 4,
            Encoding::Wide => chars * 2,
        }
    }
}

/// How one column's values are bound and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text {
        trim_padding: bool,
    },
    /// Booleans the driver sends as text (`1`/`0`, `t`/`f`).
    BoolText,
    Int,
    /// BIGINT UNSIGNED: beyond `i64`, read as its digits.
    UnsignedText,
    Decimal,
    F32,
    F64,
    Bit,
    Date,
    Time,
    Timestamp,
    /// A timestamp with an offset, printed in UTC.
    TimestampTz,
    Guid,
    Binary,
}

/// The kind of a column of SQL type `data_type`, named `type_name` by the driver
/// (`SQL_DESC_TYPE_NAME`), or `None` when sds-sync does not read that type.
pub(crate) fn kind_of(data_type: &DataType, type_name: &str, unsigned: bool) -> Option<Kind> {
    let name = type_name.to_ascii_lowercase();
    let is_bool_name = name == "bool" || name == "boolean";
    Some(match data_type {
        DataType::Char { .. } | DataType::WChar { .. } if is_bool_name => Kind::BoolText,
        DataType::Char { .. } | DataType::WChar { .. } => Kind::Text { trim_padding: true },
        DataType::Varchar { .. }
        | DataType::WVarchar { .. }
        | DataType::LongVarchar { .. }
        | DataType::WLongVarchar { .. }
            if is_bool_name =>
        {
            Kind::BoolText
        }
        DataType::Varchar { .. }
        | DataType::WVarchar { .. }
        | DataType::LongVarchar { .. }
        | DataType::WLongVarchar { .. } => Kind::Text {
            trim_padding: false,
        },
        DataType::TinyInt | DataType::SmallInt | DataType::Integer => Kind::Int,
        DataType::BigInt if unsigned => Kind::UnsignedText,
        DataType::BigInt => Kind::Int,
        DataType::Numeric { .. } | DataType::Decimal { .. } => Kind::Decimal,
        DataType::Real => Kind::F32,
        // SQL_FLOAT's precision is in bits for some drivers and in digits for others (psqlodbc
        // reports float8 as FLOAT(17)); single-precision columns come as REAL from all of them.
        DataType::Float { .. } | DataType::Double => Kind::F64,
        DataType::Bit => Kind::Bit,
        DataType::Date => Kind::Date,
        DataType::Time { .. } => Kind::Time,
        DataType::Timestamp { .. } if name.contains("time zone") || name == "timestamptz" => {
            Kind::TimestampTz
        }
        DataType::Timestamp { .. } => Kind::Timestamp,
        DataType::Binary { .. } | DataType::Varbinary { .. } | DataType::LongVarbinary { .. } => {
            Kind::Binary
        }
        DataType::Other { data_type, .. } => match data_type.0 {
            SQL_GUID => Kind::Guid,
            SQL_SS_TIME2 => Kind::Time,
            SQL_SS_TIMESTAMPOFFSET => Kind::TimestampTz,
            _ => return None,
        },
        DataType::Unknown => return None,
    })
}

/// A name for the SQL type in messages when the driver gives no type name.
pub(crate) fn sql_type_label(data_type: &DataType) -> String {
    format!("SQL type {}", data_type.data_type().0)
}

/// How a column of `kind` is bound: fixed-size values in their C struct, everything else as
/// text sized for the column (at most [`TEXT_CAP_CHARS`] characters).
pub(crate) fn buffer_desc(kind: Kind, data_type: &DataType, encoding: Encoding) -> BufferDesc {
    let text = |chars: usize| match encoding {
        Encoding::Narrow => BufferDesc::Text {
            max_str_len: encoding.units(chars),
        },
        Encoding::Wide => BufferDesc::WText {
            max_str_len: encoding.units(chars),
        },
    };
    match kind {
        Kind::Text { .. } => text(text_chars(data_type)),
        Kind::Binary => BufferDesc::Binary {
            max_bytes: text_chars(data_type),
        },
        Kind::BoolText => text(8),
        Kind::UnsignedText => text(24),
        // Sign, leading zero and point around the digits.
        Kind::Decimal => text(data_type.column_size().map_or(40, |p| p.get() + 3).max(40)),
        Kind::Time => text(40),
        Kind::TimestampTz => text(48),
        Kind::Guid => text(40),
        Kind::Int => BufferDesc::I64 { nullable: true },
        // Widened by the driver (exactly) and narrowed back to print: MariaDB's Connector/ODBC
        // writes 4-byte floats of a block at 8-byte strides, so every second one reads as 0.
        Kind::F32 => BufferDesc::F64 { nullable: true },
        Kind::F64 => BufferDesc::F64 { nullable: true },
        Kind::Bit => BufferDesc::Bit { nullable: true },
        Kind::Date => BufferDesc::Date { nullable: true },
        Kind::Timestamp => BufferDesc::Timestamp { nullable: true },
    }
}

/// Characters to make room for: the column's size when the driver bounds it, else the cap.
fn text_chars(data_type: &DataType) -> usize {
    data_type
        .column_size()
        .map_or(TEXT_CAP_CHARS, |n| n.get().min(TEXT_CAP_CHARS))
}

/// One value as the driver delivered it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'a> {
    Null,
    Text(&'a [u8]),
    WText(&'a [u16]),
    I64(i64),
    F32(f32),
    F64(f64),
    Bit(bool),
    Date(odbc_api::sys::Date),
    Timestamp(odbc_api::sys::Timestamp),
    Bytes(&'a [u8]),
}

/// Appends the text of `raw` (a value of a `kind` column) to `out`; `false` for NULL. `scratch`
/// is reused for values that are decoded before they are converted. On error `out` may hold
/// part of the value: the caller discards the row.
pub(crate) fn render(
    kind: Kind,
    raw: Raw<'_>,
    scratch: &mut String,
    out: &mut String,
) -> Result<bool, String> {
    match (kind, raw) {
        (_, Raw::Null) => return Ok(false),
        (Kind::Text { trim_padding }, raw) => {
            let start = out.len();
            decode(raw, out)?;
            if trim_padding {
                let kept = out[start..].trim_end_matches(' ').len();
                out.truncate(start + kept);
            }
        }
        (Kind::Int, Raw::I64(v)) => write_display(out, v),
        (Kind::F32, Raw::F32(v)) => out.push_str(&f32_text(v)),
        // A REAL bound as f64 (see `buffer_desc`): narrowing back is exact.
        (Kind::F32, Raw::F64(v)) => out.push_str(&f32_text(v as f32)),
        (Kind::F64, Raw::F64(v)) => out.push_str(&f64_text(v)),
        (Kind::Bit, Raw::Bit(b)) => out.push_str(&bool_text(b)),
        (Kind::Date, Raw::Date(d)) => out.push_str(&date_text(to_date(d.year, d.month, d.day)?)),
        (Kind::Timestamp, Raw::Timestamp(ts)) => out.push_str(&datetime_text(to_datetime(ts)?)),
        (Kind::Binary, Raw::Bytes(bytes)) => match std::str::from_utf8(bytes) {
            Ok(s) => out.push_str(s),
            Err(_) => {
                return Err(format!(
                    "{} bytes of binary data that are not UTF-8 text",
                    bytes.len()
                ));
            }
        },
        (kind, raw) => {
            scratch.clear();
            decode(raw, scratch)?;
            let text = scratch.trim();
            match kind {
                Kind::BoolText => out.push_str(&bool_text(parse_bool(text)?)),
                Kind::UnsignedText => {
                    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(format!("`{text}` is not an unsigned integer"));
                    }
                    out.push_str(text);
                }
                Kind::Decimal => out.push_str(&decimal_text(parse_decimal(text)?)),
                Kind::Time => out.push_str(&time_text(text)),
                Kind::TimestampTz => out.push_str(&datetime_text(utc_datetime(text)?)),
                Kind::Guid => out.push_str(&text.to_ascii_lowercase()),
                // Every other pairing is bound in its own C type above.
                other => {
                    return Err(format!(
                        "internal error: {other:?} received a value bound as text"
                    ));
                }
            }
        }
    }
    Ok(true)
}

fn write_display(out: &mut String, v: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// Appends text from the driver as UTF-8.
fn decode(raw: Raw<'_>, out: &mut String) -> Result<(), String> {
    match raw {
        Raw::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => out.push_str(s),
            Err(_) => {
                return Err(
                    "the driver sent text that is not UTF-8 (for MariaDB/MySQL add \
                     `CHARSET=utf8mb4` to the connection string)"
                        .to_owned(),
                );
            }
        },
        Raw::WText(units) => {
            for c in char::decode_utf16(units.iter().copied()) {
                match c {
                    Ok(c) => out.push(c),
                    Err(_) => return Err("the driver sent invalid UTF-16 text".to_owned()),
                }
            }
        }
        other => return Err(format!("internal error: {other:?} is not text")),
    }
    Ok(())
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "n" | "no" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean")),
    }
}

/// The exact decimal of the driver's text: `12.50`, `-3`, `.05` (SQL Server), `1E+2`.
fn parse_decimal(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| format!("`{text}` is not a decimal sds-sync can read ({e})"))
}

/// A time of day prints like the native sources; anything else (a MySQL duration such as
/// `838:59:59`) keeps the driver's text.
fn time_text(text: &str) -> String {
    match NaiveTime::parse_from_str(text, "%H:%M:%S%.f") {
        Ok(t) => crate::render::time_text(t),
        Err(_) => text.to_owned(),
    }
}

/// `2024-05-01 10:30:00+02` (PostgreSQL), `2024-05-01 10:30:00.0000000 +02:00` (SQL Server), in
/// UTC. Text without an offset is taken as it is.
fn utc_datetime(text: &str) -> Result<NaiveDateTime, String> {
    const WITH_OFFSET: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"];
    for format in WITH_OFFSET {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Ok(dt.naive_utc());
        }
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| format!("`{text}` is not a timestamp sds-sync can read"))
}

fn to_date(year: i16, month: u16, day: u16) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(year.into(), month.into(), day.into())
        .ok_or_else(|| format!("{year:04}-{month:02}-{day:02} is not a date"))
}

fn to_datetime(ts: odbc_api::sys::Timestamp) -> Result<NaiveDateTime, String> {
    let date = to_date(ts.year, ts.month, ts.day)?;
    date.and_hms_nano_opt(
        ts.hour.into(),
        ts.minute.into(),
        ts.second.into(),
        ts.fraction,
    )
    .ok_or_else(|| {
        format!(
            "{:02}:{:02}:{:02}.{:09} is not a time of day",
            ts.hour, ts.minute, ts.second, ts.fraction
        )
    })
}

/// Suggested conversion for a column in messages: understood by SQL Server, Oracle,
/// PostgreSQL, Informix and DB2 alike.
pub(crate) fn cast_hint(column: &str) -> String {
    format!("CAST({column} AS VARCHAR(255))")
}

/// The SQL type code of `kind_of`'s catch-all, for tests.
#[cfg(test)]
fn other(code: i16) -> DataType {
    DataType::Other {
        data_type: odbc_api::sys::SqlDataType(code),
        column_size: None,
        decimal_digits: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    fn text(kind: Kind, s: &str) -> Result<String, String> {
        let mut out = String::from("prefix|");
        let mut scratch = String::new();
        let units: Vec<u16> = s.encode_utf16().collect();
        let not_null = render(kind, Raw::WText(&units), &mut scratch, &mut out)?;
        assert!(not_null);
        // The narrow path gives the same text.
        let mut narrow = String::from("prefix|");
        render(kind, Raw::Text(s.as_bytes()), &mut scratch, &mut narrow)?;
        assert_eq!(out, narrow, "{kind:?} {s:?}");
        Ok(out.trim_start_matches("prefix|").to_owned())
    }

    fn len(n: usize) -> Option<NonZeroUsize> {
        NonZeroUsize::new(n)
    }

    #[test]
    fn types_map_to_kinds() {
        let k = |dt: DataType, name: &str| kind_of(&dt, name, false);
        assert_eq!(
            k(DataType::Char { length: len(4) }, "char"),
            Some(Kind::Text { trim_padding: true })
        );
        assert_eq!(
            k(DataType::WVarchar { length: len(4) }, "nvarchar"),
            Some(Kind::Text {
                trim_padding: false
            })
        );
        // psqlodbc's BoolsAsChar: a VARCHAR(5) named bool.
        assert_eq!(
            k(DataType::Varchar { length: len(5) }, "bool"),
            Some(Kind::BoolText)
        );
        assert_eq!(k(DataType::TinyInt, "tinyint"), Some(Kind::Int));
        assert_eq!(k(DataType::BigInt, "int8"), Some(Kind::Int));
        assert_eq!(
            kind_of(&DataType::BigInt, "bigint", true),
            Some(Kind::UnsignedText)
        );
        assert_eq!(
            k(
                DataType::Numeric {
                    precision: 5,
                    scale: 2
                },
                "numeric"
            ),
            Some(Kind::Decimal)
        );
        assert_eq!(
            k(DataType::Float { precision: 17 }, "float8"),
            Some(Kind::F64)
        );
        assert_eq!(
            k(DataType::Float { precision: 53 }, "float"),
            Some(Kind::F64)
        );
        assert_eq!(k(DataType::Real, "float4"), Some(Kind::F32));
        assert_eq!(k(DataType::Bit, "bit"), Some(Kind::Bit));
        assert_eq!(
            k(
                DataType::Timestamp { precision: 6 },
                "timestamp with time zone"
            ),
            Some(Kind::TimestampTz)
        );
        assert_eq!(
            k(DataType::Timestamp { precision: 3 }, "datetime"),
            Some(Kind::Timestamp)
        );
        assert_eq!(k(other(SQL_GUID), "uniqueidentifier"), Some(Kind::Guid));
        assert_eq!(k(other(SQL_SS_TIME2), "time"), Some(Kind::Time));
        assert_eq!(
            k(other(SQL_SS_TIMESTAMPOFFSET), "datetimeoffset"),
            Some(Kind::TimestampTz)
        );
        assert_eq!(k(other(-150), "sql_variant"), None);
        assert_eq!(k(DataType::Unknown, ""), None);
    }

    #[test]
    fn text_buffers_are_sized_for_the_column_and_capped() {
        let varchar = |n| DataType::Varchar { length: len(n) };
        let plain = Kind::Text {
            trim_padding: false,
        };
        assert_eq!(
            buffer_desc(plain, &varchar(60), Encoding::Narrow),
            BufferDesc::Text { max_str_len: 240 }
        );
        assert_eq!(
            buffer_desc(plain, &varchar(60), Encoding::Wide),
            BufferDesc::WText { max_str_len: 120 }
        );
        // VARCHAR(MAX) reports no size; TEXT a huge one.
        for dt in [
            varchar(0),
            DataType::LongVarchar {
                length: len(1 << 30),
            },
        ] {
            assert_eq!(
                buffer_desc(plain, &dt, Encoding::Wide),
                BufferDesc::WText {
                    max_str_len: 2 * TEXT_CAP_CHARS
                }
            );
        }
    }

    #[test]
    fn text_keeps_its_content_and_char_loses_its_padding() {
        let plain = Kind::Text {
            trim_padding: false,
        };
        let padded = Kind::Text { trim_padding: true };
        assert_eq!(text(plain, " Zoë 日本 😀 ").as_deref(), Ok(" Zoë 日本 😀 "));
        assert_eq!(text(padded, "007 ").as_deref(), Ok("007"));
        assert_eq!(text(padded, "  ").as_deref(), Ok(""));
        assert_eq!(text(padded, "a\t ").as_deref(), Ok("a\t"));
    }

    #[test]
    fn decimals_print_like_the_native_sources() {
        for (driver, want) in [
            ("12.50", "12.50"),
            ("9", "9"),
            ("-3", "-3"),
            (".05", "0.05"),
            ("-.50", "-0.50"),
            ("-0.00", "0.00"),
            (" 1.5 ", "1.5"),
            ("1E+2", "100"),
        ] {
            assert_eq!(text(Kind::Decimal, driver).as_deref(), Ok(want), "{driver}");
        }
        assert!(text(Kind::Decimal, "abc").is_err());
    }

    #[test]
    fn booleans_guids_times_and_unsigned() {
        assert_eq!(text(Kind::BoolText, "1").as_deref(), Ok("true"));
        assert_eq!(text(Kind::BoolText, "f").as_deref(), Ok("false"));
        assert!(text(Kind::BoolText, "maybe").is_err());
        assert_eq!(
            text(Kind::Guid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").as_deref(),
            Ok("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(text(Kind::Time, "07:05:09").as_deref(), Ok("07:05:09"));
        assert_eq!(
            text(Kind::Time, "07:05:09.0000000").as_deref(),
            Ok("07:05:09")
        );
        assert_eq!(
            text(Kind::Time, "07:05:09.2500000").as_deref(),
            Ok("07:05:09.250")
        );
        assert_eq!(text(Kind::Time, "838:59:59").as_deref(), Ok("838:59:59"));
        assert_eq!(
            text(Kind::UnsignedText, "18446744073709551615").as_deref(),
            Ok("18446744073709551615")
        );
        assert!(text(Kind::UnsignedText, "-1").is_err());
    }

    #[test]
    fn timestamps_with_offsets_print_in_utc() {
        for (driver, want) in [
            ("2024-05-01 10:30:00+02", "2024-05-01 08:30:00"),
            ("2024-05-01 10:30:00.25+05:30", "2024-05-01 05:00:00.250"),
            ("2024-05-01 10:30:00.0000000 +02:00", "2024-05-01 08:30:00"),
            ("2024-05-01 10:30:00", "2024-05-01 10:30:00"),
        ] {
            assert_eq!(
                text(Kind::TimestampTz, driver).as_deref(),
                Ok(want),
                "{driver}"
            );
        }
        assert!(text(Kind::TimestampTz, "yesterday").is_err());
    }

    #[test]
    fn fixed_size_values_print_like_the_native_sources() {
        let mut scratch = String::new();
        let one = |kind, raw| {
            let mut out = String::new();
            let mut scratch = String::new();
            render(kind, raw, &mut scratch, &mut out).map(|nn| nn.then_some(out))
        };
        assert_eq!(
            one(Kind::Int, Raw::I64(-9_007_199_254_740_993)),
            Ok(Some("-9007199254740993".into()))
        );
        assert_eq!(one(Kind::F64, Raw::F64(3.0)), Ok(Some("3".into())));
        assert_eq!(one(Kind::F32, Raw::F32(0.1)), Ok(Some("0.1".into())));
        assert_eq!(
            one(Kind::F32, Raw::F64(f64::from(0.1f32))),
            Ok(Some("0.1".into()))
        );
        assert_eq!(one(Kind::Bit, Raw::Bit(true)), Ok(Some("true".into())));
        assert_eq!(one(Kind::Int, Raw::Null), Ok(None));
        let date = odbc_api::sys::Date {
            year: 2024,
            month: 5,
            day: 1,
        };
        assert_eq!(
            one(Kind::Date, Raw::Date(date)),
            Ok(Some("2024-05-01".into()))
        );
        let ts = |fraction| odbc_api::sys::Timestamp {
            year: 1999,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            fraction,
        };
        assert_eq!(
            one(Kind::Timestamp, Raw::Timestamp(ts(0))),
            Ok(Some("1999-12-31 23:59:59".into()))
        );
        assert_eq!(
            one(Kind::Timestamp, Raw::Timestamp(ts(250_000_000))),
            Ok(Some("1999-12-31 23:59:59.250".into()))
        );
        let bad = odbc_api::sys::Date {
            year: 2024,
            month: 2,
            day: 30,
        };
        assert!(one(Kind::Date, Raw::Date(bad)).is_err());
        assert_eq!(
            one(Kind::Binary, Raw::Bytes("Zoë".as_bytes())),
            Ok(Some("Zoë".into()))
        );
        assert!(one(Kind::Binary, Raw::Bytes(&[0xff, 0xfe])).is_err());
        let mut out = String::new();
        assert!(
            render(
                Kind::Text {
                    trim_padding: false
                },
                Raw::Text(&[0xff]),
                &mut scratch,
                &mut out
            )
            .is_err()
        );
        let lone_surrogate = [0xd800u16];
        assert!(
            render(
                Kind::Text {
                    trim_padding: false
                },
                Raw::WText(&lone_surrogate),
                &mut scratch,
                &mut out
            )
            .is_err()
        );
    }

    #[test]
    fn mariadb_and_mysql_read_utf8_and_everything_else_utf16() {
        assert_eq!(Encoding::for_dbms("MariaDB"), Encoding::Narrow);
        assert_eq!(Encoding::for_dbms("MySQL"), Encoding::Narrow);
        assert_eq!(Encoding::for_dbms("Microsoft SQL Server"), Encoding::Wide);
        assert_eq!(Encoding::for_dbms("Oracle"), Encoding::Wide);
        assert_eq!(Encoding::for_dbms("PostgreSQL"), Encoding::Wide);
    }
}
