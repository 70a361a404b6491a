//! ODBC connection strings (`Key=value;Key={value; with braces}`): parsed once, so that the
//! password from `[source]` can be added with the right quoting, and so that what is logged or
//! shown has every secret-looking value masked.

use std::fmt::Write as _;

/// What masked values print as.
const MASK: &str = "********";

/// One `key=value` attribute. `value` is unescaped (outer braces removed, `}}` → `}`).
#[derive(Clone, PartialEq, Eq)]
struct Attribute {
    key: String,
    value: String,
    /// Written in braces: written back the same way (`Driver={...}` is the convention).
    braced: bool,
}

/// A parsed connection string. Its `Debug` shows the masked form.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnString {
    attributes: Vec<Attribute>,
}

/// Why a connection string could not be parsed. Never includes a value (it may be a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

impl ConnString {
    /// Parses `Key=value` attributes separated by `;`. A value that starts with `{` runs to the
    /// matching `}` (a `}}` inside stands for one `}`) and may hold `;` and `=`; other values run
    /// to the next `;`. Keys are trimmed; empty segments (`;;`, a trailing `;`) are skipped.
    pub(crate) fn parse(text: &str) -> Result<ConnString, ParseError> {
        let mut attributes = Vec::new();
        let mut rest = text;
        let mut number = 0;
        while !rest.is_empty() {
            let trimmed = rest.trim_start();
            if let Some(after) = trimmed.strip_prefix(';') {
                rest = after;
                continue;
            }
            if trimmed.is_empty() {
                break;
            }
            number += 1;
            let (key, after_eq) = match (trimmed.find('='), trimmed.find(';')) {
                (Some(eq), semi) if semi.is_none_or(|semi| eq < semi) => {
                    (&trimmed[..eq], &trimmed[eq + 1..])
                }
                _ => {
                    return Err(ParseError(format!(
                        "attribute {number} has no `=` (write `Key=value`, separated by `;`)"
                    )));
                }
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(ParseError(format!(
                    "attribute {number} has no key before its `=`"
                )));
            }
            let value_text = after_eq.trim_start();
            let braced = value_text.starts_with('{');
            let (value, remainder) = if let Some(braced) = value_text.strip_prefix('{') {
                let (value, consumed) = read_braced(braced).ok_or_else(|| {
                    ParseError(format!(
                        "the value of `{key}` opens a `{{` that is never closed (a `}}` inside \
                         braces is written `}}}}`)"
                    ))
                })?;
                let remainder = braced[consumed..].trim_start();
                if !(remainder.is_empty() || remainder.starts_with(';')) {
                    return Err(ParseError(format!(
                        "the value of `{key}` has text after its closing `}}`; end it with `;`"
                    )));
                }
                (value, remainder)
            } else {
                match value_text.split_once(';') {
                    Some((v, r)) => (v.trim_end().to_owned(), r),
                    None => (value_text.trim_end().to_owned(), ""),
                }
            };
            attributes.push(Attribute {
                key: key.to_owned(),
                value,
                braced,
            });
            rest = remainder;
        }
        if attributes.is_empty() {
            return Err(ParseError(
                "it is empty; write e.g. `odbc:DSN=sis` or `odbc:Driver={ODBC Driver 18 for SQL \
                 Server};Server=...;Database=...`"
                    .to_owned(),
            ));
        }
        Ok(ConnString { attributes })
    }

    /// The unescaped value of the first attribute named `key` (case-insensitive).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.key.eq_ignore_ascii_case(key))
            .map(|a| a.value.as_str())
    }

    /// The first value among `keys` (aliases such as `UID` / `User`).
    pub(crate) fn get_any(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.get(k))
    }

    /// Replaces any password attribute with `PWD=password` (quoted as needed).
    pub(crate) fn set_password(&mut self, password: &str) {
        self.attributes.retain(|a| !is_password_key(&a.key));
        self.attributes.push(Attribute {
            key: "PWD".to_owned(),
            value: password.to_owned(),
            braced: false,
        });
    }

    /// The values a driver message must never show: every attribute whose key looks secret.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(|a| is_secret_key(&a.key))
            .map(|a| a.value.as_str())
    }

    /// The string to hand to the driver manager (contains the password). It ends with `;`:
    /// MariaDB's Connector/ODBC reads past the end of a last value that has none (a user `root`
    /// arrives as `root=o`).
    pub(crate) fn to_odbc(&self) -> String {
        let mut text = self.render(false);
        text.push(';');
        text
    }

    /// The string for logs and messages: secret-looking values are `********`.
    pub(crate) fn masked(&self) -> String {
        self.render(true)
    }

    fn render(&self, mask: bool) -> String {
        let mut out = String::new();
        for a in &self.attributes {
            let (value, braced) = if mask && is_secret_key(&a.key) {
                (MASK, false)
            } else {
                (a.value.as_str(), a.braced)
            };
            let _ = write!(out, "{}={};", a.key, quote(value, braced));
        }
        // Written as the admin would: no `;` after the last attribute.
        out.pop();
        out
    }
}

impl std::fmt::Debug for ConnString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnString({})", self.masked())
    }
}

/// Reads a braced value (after its `{`): returns the unescaped value and how many bytes of
/// `text` it used, closing `}` included. `None` when the brace is never closed.
fn read_braced(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '}' {
            if matches!(chars.peek(), Some((_, '}'))) {
                chars.next();
                value.push('}');
            } else {
                return Some((value, i + 1));
            }
        } else {
            value.push(c);
        }
    }
    None
}

/// A value as the connection string needs it: in braces (with `}` doubled) when it was written
/// so or holds anything the parser would otherwise split on or trim.
fn quote(value: &str, braced: bool) -> String {
    let needs_braces = braced
        || value.contains([';', '{', '}', '=', '+'])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace);
    if needs_braces {
        format!("{{{}}}", value.replace('}', "}}"))
    } else {
        value.to_owned()
    }
}

fn is_password_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("pwd") || key.eq_ignore_ascii_case("password")
}

/// Passwords under any driver's name for them (`PWD`, `Password`, `SSLPassword`,
/// `KeyStorePassword`), tokens and client secrets.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pwd", "password", "passwd", "secret", "token", "credential"]
        .iter()
        .any(|s| key.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ConnString {
        ConnString::parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.0))
    }

    #[test]
    fn plain_and_braced_values() {
        let c = parse(
            "Driver={ODBC Driver 18 for SQL Server};Server=sis.example.org,1433;Database=sis;\
             Uid=sds_reader;Encrypt=yes;",
        );
        assert_eq!(c.get("driver"), Some("ODBC Driver 18 for SQL Server"));
        assert_eq!(c.get("SERVER"), Some("sis.example.org,1433"));
        assert_eq!(c.get_any(&["User", "UID"]), Some("sds_reader"));
        assert_eq!(c.get("pwd"), None);
        assert_eq!(
            c.masked(),
            "Driver={ODBC Driver 18 for SQL Server};Server=sis.example.org,1433;Database=sis;\
             Uid=sds_reader;Encrypt=yes"
        );
    }

    #[test]
    fn braces_may_hold_separators_and_doubled_closing_braces() {
        let c = parse("DSN=sis; PWD = {a;b=c}}d} ; Uid=x");
        assert_eq!(c.get("pwd"), Some("a;b=c}d"));
        assert_eq!(c.get("uid"), Some("x"));
        // Round trip: the value comes back quoted so that the driver reads the same password.
        assert_eq!(c.to_odbc(), "DSN=sis;PWD={a;b=c}}d};Uid=x;");
        assert_eq!(parse(&c.to_odbc()), c);
    }

    #[test]
    fn the_configured_password_replaces_any_in_the_string_and_is_masked() {
        let mut c = parse("DSN=sis;Password=old;UID=u");
        c.set_password("n}e;w pass");
        assert_eq!(c.get("password"), None);
        assert_eq!(c.get("PWD"), Some("n}e;w pass"));
        assert_eq!(c.to_odbc(), "DSN=sis;UID=u;PWD={n}}e;w pass};");
        assert_eq!(c.masked(), "DSN=sis;UID=u;PWD=********");
        assert!(!c.masked().contains("pass"));
        assert_eq!(c.secrets().collect::<Vec<_>>(), vec!["n}e;w pass"]);
    }

    #[test]
    fn every_secret_looking_key_is_masked() {
        let c = parse("DSN=x;SSLPassword=a1;AccessToken=b2;ClientSecret=c3;pwd={d4;};User=me");
        let masked = c.masked();
        for secret in ["a1", "b2", "c3", "d4"] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        assert!(masked.contains("User=me"), "{masked}");
        assert_eq!(c.secrets().count(), 4);
    }

    #[test]
    fn values_that_would_be_misread_are_quoted() {
        assert_eq!(quote("plain", false), "plain");
        assert_eq!(quote("plain", true), "{plain}");
        assert_eq!(quote("", true), "{}");
        assert_eq!(quote("a+b", false), "{a+b}");
        assert_eq!(quote(" lead", false), "{ lead}");
        assert_eq!(quote("{x", false), "{{x}");
        assert_eq!(quote("}", false), "{}}}");
    }

    #[test]
    fn malformed_strings_say_what_is_wrong_without_the_value() {
        for (text, part) in [
            ("", "empty"),
            (" ; ;", "empty"),
            ("DSN", "no `=`"),
            ("DSN;PWD=x", "no `=`"),
            ("=x", "no key"),
            ("PWD={secret;x", "never closed"),
            ("PWD={secret}x;DSN=a", "after its closing"),
        ] {
            let err = ConnString::parse(text).expect_err(text).0;
            assert!(err.contains(part), "{text:?}: {err}");
            assert!(!err.contains("secret"), "{text:?}: {err}");
        }
    }
}
