//! Checks a set of SDS CSV files against the format tables of [`crate::format`]: files made by
//! anyone, as SDS reads them, or (strict) also against the conventions of sds-sync's own output.
//!
//! **What SDS accepts** (`SDS-FORMATS.md`, "What SDS accepts from anyone"): RFC 4180 with
//! optional quotes (the header too), LF or CRLF, an optional last line break; columns matched by
//! header name in any order, documented optional columns present or not (an unknown column is a
//! warning); rows in any order; v1 file names in any letter case; the file-set rules of each
//! format; enumerations ignoring case (an unknown value is a warning); users with several roles;
//! a UTF-8 byte-order mark is a warning. Errors: a missing required file, header or value, a row
//! with the wrong number of fields, a line break inside a value, duplicate IDs, usernames equal
//! ignoring case, a reference that does not resolve, invalid UTF-8.
//!
//! **Strict** adds sds-sync's own conventions: the exact canonical header, rows sorted by key
//! (so a key appears once), CRLF after every line, no byte-order mark, quotes only where a value
//! needs them, no blank line, no leading or trailing white space, no unknown file.
//!
//! **No cascades.** A malformed row is one error: its ID still counts as present, so rows that
//! refer to it are not reported again; a file that cannot be read (or lacks its ID column) makes
//! references to it unchecked rather than all wrong.
//!
//! **Streaming.** Files are checked one by one ([`SetCheck::plan`] orders them so that a file
//! comes after the files it refers to); each is read once, and what later files need (IDs,
//! usernames, roles) is kept as 64-bit hashes, never as rows. In strict mode the sorted order
//! also checks uniqueness between neighbours, so the publish gate (which feeds the rows sds-sync
//! renders straight into [`FileCheck`], see [`crate::csvout::RowSink`]) holds no per-row state for
//! the big enrollment files. A hash collision could hide an unresolved reference (odds about one
//! in 10^7 for a million IDs); it can never invent an error.

use crate::csvout::RowSink;
use crate::format::{
    self, Column, FileKind, FileSpec, Format, Need, Presence, ROLES, Reference, Values,
};
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How bad a finding is: an error makes the set wrong for SDS (or, strict, for sds-sync's
/// conventions); a warning is something SDS takes but that deserves a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

/// One rule broken by one file (and line, and column, when the rule is about one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    /// 1-based physical line number; the header is line 1.
    pub line: Option<u64>,
    /// The header name of the column concerned.
    pub column: Option<String>,
    pub message: String,
    pub severity: Severity,
    /// A short stable name of the rule (`reference`, `required`, `sorted`, ...).
    pub rule: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, " [{column}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Errors among `findings`.
pub fn errors(findings: &[Violation]) -> impl Iterator<Item = &Violation> {
    findings.iter().filter(|v| v.severity == Severity::Error)
}

/// Checks a complete set held in memory, `(file name, bytes)` in any order; returns every
/// finding (errors and warnings), set-level findings first, then per file in table order.
pub fn validate_set(format: Format, files: &[(&str, &[u8])], strict: bool) -> Vec<Violation> {
    let mut set = SetCheck::new(format, strict);
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    for level in set.plan(&names) {
        for planned in level {
            let Some((_, data)) = files.iter().find(|(n, _)| *n == planned.name) else {
                continue;
            };
            let mut check = set.file(&planned);
            check.check_bytes(data);
            let done = check.finish();
            set.absorb(done);
        }
    }
    set.finish()
}

/// At most this many findings of one rule in one file are listed; the rest are counted.
pub const MAX_PER_RULE: u64 = 20;

// ---------------------------------------------------------------------------------------------
// Collecting findings.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Sink {
    out: Vec<Violation>,
    /// (file, rule) → findings so far, and the severity of the rule.
    counts: BTreeMap<(String, &'static str), (u64, Severity)>,
}

impl Sink {
    fn push(&mut self, v: Violation) {
        let entry = self
            .counts
            .entry((v.file.clone(), v.rule))
            .or_insert((0, v.severity));
        entry.0 += 1;
        entry.1 = entry.1.max(v.severity);
        if entry.0 <= MAX_PER_RULE {
            self.out.push(v);
        }
    }

    fn add(
        &mut self,
        severity: Severity,
        rule: &'static str,
        file: &str,
        line: Option<u64>,
        column: Option<&str>,
        message: impl Into<String>,
    ) {
        self.push(Violation {
            file: file.to_owned(),
            line,
            column: column.map(str::to_owned),
            message: message.into(),
            severity,
            rule,
        });
    }

    fn error(&mut self, rule: &'static str, file: &str, message: impl Into<String>) {
        self.add(Severity::Error, rule, file, None, None, message);
    }

    fn finish(mut self) -> Vec<Violation> {
        for ((file, rule), (n, severity)) in &self.counts {
            if *n > MAX_PER_RULE {
                self.out.push(Violation {
                    file: file.clone(),
                    line: None,
                    column: None,
                    message: format!(
                        "{} more finding(s) of the kind `{rule}` not listed",
                        n - MAX_PER_RULE
                    ),
                    severity: *severity,
                    rule,
                });
            }
        }
        self.out
    }
}

// ---------------------------------------------------------------------------------------------
// The set.
// ---------------------------------------------------------------------------------------------

/// A file of the set matched to its place in the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub spec: &'static FileSpec,
    /// The name as found (v1 names may differ from the table's in letter case).
    pub name: String,
}

/// Usernames of one file, sorted: (folded-name hash, owner hash, line).
struct Usernames {
    file: String,
    column: &'static str,
    names: Vec<(u64, u64, u32)>,
}

/// The IDs of a file as 64-bit hashes, each with a byte of flags (a user's roles, whether it is
/// someone's relation): 9 bytes an ID. The low byte of an entry holds the flags, the rest is
/// the ID's hash. Later files add flags to the entries through a shared reference (atomics), so
/// roles.csv and relationships.csv need no table of their own.
#[derive(Default)]
struct IdSet {
    table: HashTable<AtomicU64>,
}

const FLAGS: u64 = 0xFF;

/// The table's own hash of an entry: the ID hash without its flag byte, mixed again so that
/// every bit hashbrown looks at is random (splitmix64's finaliser).
fn slot(entry: u64) -> u64 {
    let mut x = entry & !FLAGS;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl IdSet {
    fn reserve(&mut self, n: usize) {
        self.table.reserve(n, |e| slot(e.load(Relaxed)));
    }

    fn insert(&mut self, id: u64, flags: u8) {
        let key = id & !FLAGS;
        match self
            .table
            .find_mut(slot(key), |e| e.load(Relaxed) & !FLAGS == key)
        {
            Some(e) => *e.get_mut() |= u64::from(flags),
            None => {
                self.table
                    .insert_unique(slot(key), AtomicU64::new(key | u64::from(flags)), |e| {
                        slot(e.load(Relaxed))
                    });
            }
        }
    }

    /// Adds flags to an ID already in the set (never adds an ID).
    fn flag(&self, id: u64, flags: u8) {
        let key = id & !FLAGS;
        if let Some(e) = self
            .table
            .find(slot(key), |e| e.load(Relaxed) & !FLAGS == key)
        {
            e.fetch_or(u64::from(flags), Relaxed);
        }
    }

    fn get(&self, id: u64) -> Option<u8> {
        let key = id & !FLAGS;
        self.table
            .find(slot(key), |e| e.load(Relaxed) & !FLAGS == key)
            .map(|e| (e.load(Relaxed) & FLAGS) as u8)
    }

    fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    fn entries(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.table.iter().map(|e| {
            let e = e.load(Relaxed);
            (e & !FLAGS, (e & FLAGS) as u8)
        })
    }
}

/// The state of checking one set: what the files checked so far provide to the next ones.
pub struct SetCheck {
    format: Format,
    strict: bool,
    hasher: DefaultHashBuilder,
    sink: Sink,
    /// Every file of the set that matched the format, in table order.
    present: Vec<Planned>,
    /// Complete ID sets, by table file name. A file that is absent, unreadable or lacks its ID
    /// column has none: references to it are not checked (no cascades). The users of v2/v2.1
    /// carry their roles as flags (from `users.csv` in v2, `roles.csv` in v2.1).
    ids: HashMap<&'static str, IdSet>,
    /// v2.1 `users.csv`: user → line, for the lines of the "no role" rule (not strict: the gate
    /// keeps no line per user).
    user_lines: HashMap<u64, u64>,
    /// v2.1 `users.csv` users without givenName, familyName or email (hashed, sorted): none
    /// of them may be someone's guardian in relationships.csv.
    no_contact: Vec<u64>,
    usernames: Vec<Usernames>,
    /// v1 `Student.csv` when the set has `License.csv`: (hash of display name and username, with
    /// the lowest bit set when the username is a full address; line), sorted.
    students: Vec<(u64, u32)>,
    /// v1 `License.csv`: which of `students` a licence row matched.
    license_used: Vec<bool>,
    files: Vec<(usize, Vec<Violation>)>,
}

/// A user's roles in one byte: student, teacher and guardian exactly, the other roles of
/// Microsoft's list folded onto two bits (so a mix-up between two staff roles can go unseen,
/// never a false alarm), one bit for a role outside the list (a tenant may have added it: it
/// matches another role outside the list, never student, teacher or a listed role), one bit
/// for a user whose roles could not be read (a malformed row, an unreadable file: it matches
/// anything, so nothing cascades); and one bit for "named in relationships.csv".
const ROLE_OTHER: u8 = 0x80;
const ROLE_ANY: u8 = 0x20;
const RELATED: u8 = 0x40;
const ROLE_MASK: u8 = !RELATED;

fn role_flag(role: &str) -> u8 {
    match ROLES
        .values
        .iter()
        .position(|v| v.eq_ignore_ascii_case(role))
    {
        Some(0) => 1,
        Some(1) => 2,
        Some(i) if ROLES.values.get(i) == Some(&"guardian") => 4,
        Some(i) => 8 << (i % 2),
        None => ROLE_OTHER,
    }
}

impl SetCheck {
    pub fn new(format: Format, strict: bool) -> SetCheck {
        SetCheck {
            format,
            strict,
            hasher: DefaultHashBuilder::default(),
            sink: Sink::default(),
            present: Vec::new(),
            ids: HashMap::new(),
            user_lines: HashMap::new(),
            no_contact: Vec::new(),
            usernames: Vec::new(),
            students: Vec::new(),
            license_used: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Matches the set's file names (CSV files only) to the format, applies the file-set rules,
    /// and returns the files to check, grouped in levels: every file of a level refers only to
    /// files of earlier levels, so the files of one level may be checked in parallel.
    pub fn plan(&mut self, names: &[&str]) -> Vec<Vec<Planned>> {
        let format = self.format;
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        let mut found: Vec<Planned> = Vec::new();
        for name in sorted {
            let exact = format.file(name);
            let loose = format
                .table()
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name));
            let spec = match (exact, loose) {
                (Some(spec), _) => spec,
                (None, Some(spec)) if format.names_ignore_case() => spec,
                (None, Some(spec)) => {
                    self.sink.error(
                        "file_name",
                        name,
                        format!(
                            "SDS {format} file names are case-sensitive: rename it to {}",
                            spec.name
                        ),
                    );
                    continue;
                }
                (None, None) => {
                    let (severity, message) = if self.strict {
                        (Severity::Error, format!("is not a file of SDS {format}"))
                    } else {
                        (
                            Severity::Warning,
                            format!("is not a file of SDS {format}; SDS ignores it"),
                        )
                    };
                    self.sink
                        .add(severity, "file_name", name, None, None, message);
                    continue;
                }
            };
            if let Some(first) = found.iter().find(|p| p.spec.name == spec.name) {
                self.sink.error(
                    "file_name",
                    name,
                    format!(
                        "is the same file as {} (names are not case-sensitive)",
                        first.name
                    ),
                );
                continue;
            }
            found.push(Planned {
                spec,
                name: name.to_owned(),
            });
        }
        let has = |spec: &FileSpec| found.iter().any(|p| p.spec.name == spec.name);
        for spec in format.table() {
            if spec.presence == Presence::Required && !has(spec) {
                self.sink
                    .error("file_set", spec.name, "is missing: every SDS set has it");
            }
        }
        let together: Vec<&FileSpec> = format
            .table()
            .iter()
            .filter(|f| f.presence == Presence::Together)
            .collect();
        let together_present = together.iter().filter(|f| has(f)).count();
        if together_present > 0 && together_present < together.len() {
            let names: Vec<&str> = together.iter().map(|f| f.name).collect();
            for spec in together.iter().filter(|f| !has(f)) {
                self.sink.error(
                    "file_set",
                    spec.name,
                    format!(
                        "is missing: {} come together or not at all (a set of users only has none of them)",
                        names.join(", ")
                    ),
                );
            }
        }
        found.sort_by_key(|p| {
            format
                .table()
                .iter()
                .position(|f| f.name == p.spec.name)
                .unwrap_or(usize::MAX)
        });
        self.present = found.clone();

        // Levels: a file after every present file it depends on.
        let mut levels: Vec<Vec<Planned>> = Vec::new();
        let mut placed: Vec<&str> = Vec::new();
        let mut left = found;
        while !left.is_empty() {
            let (ready, rest): (Vec<Planned>, Vec<Planned>) = left.into_iter().partition(|p| {
                self.depends_on(p.spec)
                    .iter()
                    .all(|d| placed.contains(d) || !self.is_present(d))
            });
            if ready.is_empty() {
                // The tables have no cycles (a test holds this); never loop forever anyway.
                levels.push(rest);
                break;
            }
            placed.extend(ready.iter().map(|p| p.spec.name));
            levels.push(ready);
            left = rest;
        }
        levels
    }

    fn is_present(&self, name: &str) -> bool {
        self.present.iter().any(|p| p.spec.name == name)
    }

    /// The files whose results `spec` needs: the files it refers to, and the rules' sources.
    fn depends_on(&self, spec: &FileSpec) -> Vec<&'static str> {
        let mut deps: Vec<&'static str> = spec
            .references
            .iter()
            .map(|r| r.file)
            .filter(|f| *f != spec.name)
            .collect();
        match (self.format, spec.kind) {
            (Format::V1, FileKind::License) => deps.push(format::name::STUDENT),
            // "Enrolled with the wrong kind of role" needs the other kind of user too.
            (Format::V1, FileKind::StudentEnrollment | FileKind::TeacherRoster) => {
                deps.extend([format::name::STUDENT, format::name::TEACHER]);
            }
            (Format::V2_1, FileKind::Enrollments) => deps.push(format::name::ROLES),
            _ => {}
        }
        deps
    }

    /// A checker for one planned file, fed with [`FileCheck::check_bytes`] (a file as read) or
    /// with rows through [`RowSink`] after [`FileCheck::header`].
    pub fn file(&self, planned: &Planned) -> FileCheck<'_> {
        FileCheck::new(self, planned)
    }

    /// Takes in what a checked file provides to the files after it, and its findings.
    pub fn absorb(&mut self, done: FileDone) {
        let FileDone {
            spec,
            findings,
            ids,
            user_lines,
            no_contact,
            usernames,
            students,
            license_used,
        } = done;
        let order = self
            .format
            .table()
            .iter()
            .position(|f| f.name == spec.name)
            .unwrap_or(usize::MAX);
        self.files.push((order, findings));
        if let Some(ids) = ids {
            self.ids.insert(spec.name, ids);
        }
        if let Some(lines) = user_lines {
            self.user_lines = lines;
        }
        if let Some(users) = no_contact {
            self.no_contact = users;
        }
        if let Some(u) = usernames {
            self.usernames.push(u);
        }
        if let Some(s) = students {
            self.students = s;
        }
        if let Some(used) = license_used {
            self.license_used = used;
        }
    }

    /// The rules across files that need every file checked; returns all findings.
    pub fn finish(mut self) -> Vec<Violation> {
        // Usernames shared between two files (within a file they are the file's finding).
        for i in 0..self.usernames.len() {
            for j in 0..i {
                let (a, b) = (&self.usernames[j], &self.usernames[i]);
                let mut clashes = Vec::new();
                let (mut x, mut y) = (0, 0);
                while let (Some(ea), Some(eb)) = (a.names.get(x), b.names.get(y)) {
                    match ea.0.cmp(&eb.0) {
                        std::cmp::Ordering::Less => x += 1,
                        std::cmp::Ordering::Greater => y += 1,
                        std::cmp::Ordering::Equal => {
                            clashes.push((eb.2, ea.2));
                            y += 1;
                        }
                    }
                }
                clashes.sort_unstable();
                for (line, other) in clashes {
                    self.sink.add(
                        Severity::Error,
                        "unique_username",
                        &b.file,
                        Some(u64::from(line)),
                        Some(b.column),
                        format!(
                            "the username is also the username of {} line {other} (usernames are compared ignoring case)",
                            a.file
                        ),
                    );
                }
            }
        }
        if self.format == Format::V2_1
            && self.is_present(format::name::ROLES)
            && let Some(users) = self.ids.get(format::name::USERS)
        {
            let mut lonely: Vec<Option<u64>> = users
                .entries()
                .filter(|(_, flags)| flags & ROLE_MASK == 0 && flags & RELATED == 0)
                .map(|(user, _)| self.user_lines.get(&user).copied())
                .collect();
            lonely.sort_unstable();
            for line in lonely {
                self.sink.add(
                    Severity::Error,
                    "no_role",
                    format::name::USERS,
                    line,
                    Some(format::col::roster::SOURCED_ID),
                    "a user has no row in roles.csv and is no one's relation in relationships.csv",
                );
            }
        }
        // License.csv's check sized `license_used` after the students (unless it could not be
        // read: then nothing is reported, no cascade).
        if self.is_present(format::name::LICENSE) && self.license_used.len() == self.students.len()
        {
            let student = self
                .present
                .iter()
                .find(|p| p.spec.kind == FileKind::Student)
                .map_or(format::name::STUDENT, |p| p.name.as_str())
                .to_owned();
            for ((key, line), used) in self.students.iter().zip(&self.license_used) {
                if key & 1 == 1 && !used {
                    self.sink.add(
                        Severity::Error,
                        "license",
                        &student,
                        Some(u64::from(*line)),
                        None,
                        "this student has a user@domain username but no License.csv row",
                    );
                }
            }
        }
        let mut out = std::mem::take(&mut self.sink).finish();
        self.files.sort_by_key(|(order, _)| *order);
        for (_, findings) in self.files {
            out.extend(findings);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// One file.
// ---------------------------------------------------------------------------------------------

/// Where each column of the table is in the file's header.
struct Layout {
    width: usize,
    names: Vec<String>,
    /// `(position, column)` for every table column present.
    columns: Vec<(usize, &'static Column)>,
    id: Option<usize>,
    /// All unique columns present.
    unique: Option<Vec<usize>>,
    key: Vec<usize>,
    refs: Vec<(usize, &'static Reference)>,
    /// (username, owner).
    username: Option<(usize, usize)>,
    role: Option<usize>,
    user: Option<usize>,
    /// v1: First Name, Last Name (for License.csv).
    names_v1: Option<(usize, usize)>,
    /// Unique values are checked between neighbours (strict: sorted by a key they prefix).
    neighbours: bool,
    /// By position: the column holds secrets (passwords), whose values no finding shows.
    secret: Vec<bool>,
}

impl Layout {
    fn pos(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .find(|(_, c)| c.name == name)
            .map(|(p, _)| *p)
    }
}

/// What a checked file hands to [`SetCheck::absorb`].
pub struct FileDone {
    spec: &'static FileSpec,
    findings: Vec<Violation>,
    ids: Option<IdSet>,
    user_lines: Option<HashMap<u64, u64>>,
    no_contact: Option<Vec<u64>>,
    usernames: Option<Usernames>,
    students: Option<Vec<(u64, u32)>>,
    license_used: Option<Vec<bool>>,
}

/// The last value of a reference column and whether it resolved: sorted files repeat it row
/// after row (every enrollment of a class), and one lookup serves them all.
#[derive(Default)]
struct LastRef {
    value: String,
    /// The flags of the ID it resolved to; `None` before the first row and when it did not
    /// resolve.
    flags: Option<u8>,
}

/// The checker of one file. Feed it either the file's bytes ([`FileCheck::check_bytes`]), or
/// its header ([`FileCheck::header`]) and then its rows as a [`RowSink`] (the publish gate);
/// then [`FileCheck::finish`].
pub struct FileCheck<'a> {
    set: &'a SetCheck,
    spec: &'static FileSpec,
    name: String,
    strict: bool,
    sink: Sink,
    /// Boxed: it is taken out and put back for every row.
    layout: Option<Box<Layout>>,
    /// The ID set each reference column resolves against (`None`: not checked).
    targets: Vec<Option<&'a IdSet>>,
    /// v2/v2.1 enrollments: the roles of the row's user, from its reference lookup.
    user_flags: Option<u8>,
    /// The line of the last row (rows fed through `RowSink` are one line each).
    line: u64,
    rows: u64,
    /// Nothing usable could be read: the file provides no IDs.
    broken: bool,
    ids: Option<IdSet>,
    user_lines: Option<HashMap<u64, u64>>,
    /// v2.1 users.csv, when the set has relationships.csv: users without the contact data SDS
    /// needs of a guardian.
    no_contact: Option<Vec<u64>>,
    /// Unique values seen (when they cannot be checked between neighbours): hash → line.
    seen: HashMap<u64, u64>,
    prev_key: Vec<String>,
    have_prev: bool,
    prev_line: u64,
    last_refs: Vec<LastRef>,
    usernames: Vec<(u64, u64, u32)>,
    /// A username folded to lower case (reused).
    folded: String,
    students: Vec<(u64, u32)>,
    license_used: Vec<bool>,
    license_upns: Vec<(u64, u32)>,
    sku: Option<String>,
    absent_reported: Vec<&'static str>,
    /// References to this file's own IDs (`parentSourcedId`): resolved at the end.
    self_refs: Vec<(String, u64, &'static str)>,
    scratch: String,
}

impl<'a> FileCheck<'a> {
    fn new(set: &'a SetCheck, planned: &Planned) -> FileCheck<'a> {
        FileCheck {
            set,
            spec: planned.spec,
            name: planned.name.clone(),
            strict: set.strict,
            sink: Sink::default(),
            layout: None,
            targets: Vec::new(),
            user_flags: None,
            line: 0,
            rows: 0,
            broken: false,
            ids: None,
            user_lines: None,
            no_contact: None,
            seen: HashMap::new(),
            prev_key: Vec::new(),
            have_prev: false,
            prev_line: 0,
            last_refs: Vec::new(),
            usernames: Vec::new(),
            folded: String::new(),
            students: Vec::new(),
            license_used: Vec::new(),
            license_upns: Vec::new(),
            sku: None,
            absent_reported: Vec::new(),
            self_refs: Vec::new(),
            scratch: String::new(),
        }
    }

    fn hash_one(&self, s: &str) -> u64 {
        self.set.hasher.hash_one(s)
    }

    fn hash_all<'s>(&self, values: impl IntoIterator<Item = &'s str>) -> u64 {
        let mut h = self.set.hasher.build_hasher();
        for v in values {
            v.hash(&mut h);
        }
        h.finish()
    }

    /// The hash of a sign-in name folded to lower case (as SDS compares them).
    fn hash_username(&mut self, name: &str) -> u64 {
        self.folded.clear();
        if name.is_ascii() {
            self.folded
                .extend(name.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            self.folded.extend(format::fold_username(name));
        }
        self.set.hasher.hash_one(self.folded.as_str())
    }

    /// Sizes the tables for `rows` data rows (the gate knows them), so they never grow.
    pub fn expect_rows(&mut self, rows: u64) {
        let rows = usize::try_from(rows).unwrap_or(0);
        if let Some(ids) = &mut self.ids {
            ids.reserve(rows);
        }
        if self.spec.username.is_some() {
            self.usernames.reserve(rows);
        }
    }

    fn at(
        &mut self,
        severity: Severity,
        rule: &'static str,
        line: u64,
        column: Option<&str>,
        message: impl Into<String>,
    ) {
        self.sink
            .add(severity, rule, &self.name, Some(line), column, message);
    }

    /// Strict mode makes a few of SDS's tolerances errors.
    fn strict_or_warning(&self) -> Severity {
        if self.strict {
            Severity::Error
        } else {
            Severity::Warning
        }
    }

    /// Checks a whole file as read from disk: encoding, CSV shape, header and rows.
    pub fn check_bytes(&mut self, data: &[u8]) {
        let mut data = data;
        if let Some(rest) = data.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
            let severity = self.strict_or_warning();
            self.at(
                severity,
                "bom",
                1,
                None,
                "starts with a UTF-8 byte-order mark; SDS reads it, but files are best without",
            );
            data = rest;
        }
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            self.sink.error(
                "empty",
                &self.name,
                "is empty; every file needs its header row",
            );
            self.broken = true;
            return;
        }
        // The physical records, in step with the csv crate's (which skips blank lines): they
        // give each record its line number and, strict, its exact bytes.
        let mut raw_records = split_records(data);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        let mut record = csv::ByteRecord::new();
        let mut utf8_reported = false;
        let mut first = true;
        let mut encoded = Vec::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.sink
                        .error("csv", &self.name, format!("cannot be read as CSV: {e}"));
                    self.broken = self.layout.is_none();
                    return;
                }
            }
            let raw = loop {
                match raw_records.next() {
                    Some(r) if r.content.is_empty() => {
                        if self.strict {
                            self.at(Severity::Error, "blank_line", r.line, None, "blank line");
                        }
                    }
                    other => break other,
                }
            };
            let line = raw.as_ref().map_or(self.line + 1, |r| r.line);
            if let Some(raw) = &raw
                && self.strict
            {
                self.check_raw(raw, &record, first, &mut encoded);
            }
            // Invalid UTF-8 is one error; the value is read lossily so that it is not also
            // reported as blank.
            let values: Vec<std::borrow::Cow<'_, str>> =
                record.iter().map(String::from_utf8_lossy).collect();
            let bad_utf8 = values
                .iter()
                .any(|v| matches!(v, std::borrow::Cow::Owned(_)));
            let fields: Vec<&str> = values.iter().map(|v| v.as_ref()).collect();
            if bad_utf8 && !utf8_reported {
                utf8_reported = true;
                self.at(
                    Severity::Error,
                    "utf8",
                    line,
                    None,
                    "is not valid UTF-8; SDS files are UTF-8",
                );
            }
            if first {
                first = false;
                self.header_at(&fields, line);
            } else {
                self.row_at(line, &fields);
            }
        }
        if first {
            self.sink.error("empty", &self.name, "has no header row");
            self.broken = true;
        }
    }

    /// Strict shape of one physical record: CRLF after it, quotes only where needed.
    fn check_raw(
        &mut self,
        raw: &RawRecord<'_>,
        record: &csv::ByteRecord,
        header: bool,
        encoded: &mut Vec<u8>,
    ) {
        match raw.terminator {
            b"\r\n" => {}
            b"" => self.at(
                Severity::Error,
                "crlf",
                raw.line,
                None,
                "the last line does not end with CRLF",
            ),
            b"\n" => self.at(
                Severity::Error,
                "crlf",
                raw.line,
                None,
                "line ends with LF alone; sds-sync writes CRLF",
            ),
            _ => self.at(
                Severity::Error,
                "crlf",
                raw.line,
                None,
                "line ends with CR alone; sds-sync writes CRLF",
            ),
        }
        // The line itself is never shown (it may hold a password): the finding names the
        // columns whose values are not written as sds-sync writes them.
        let mut wrong: Vec<String> = Vec::new();
        for (i, (value, written)) in record.iter().zip(raw_fields(raw.content)).enumerate() {
            encoded.clear();
            encode_value(value, encoded);
            if encoded.as_slice() != written {
                let name = if header {
                    Some(String::from_utf8_lossy(value).into_owned())
                } else {
                    self.layout.as_ref().and_then(|l| l.names.get(i).cloned())
                };
                wrong.push(match name {
                    Some(n) => format!("{n:?}"),
                    None => format!("field {}", i + 1),
                });
            }
        }
        if !wrong.is_empty() {
            let what = if header { "the header" } else { "the line" };
            self.at(
                Severity::Error,
                "quoting",
                raw.line,
                None,
                format!(
                    "{what} is not minimally quoted: the value(s) of {} are quoted where sds-sync \
                     writes no quotes, or the other way round (quotes only around a comma, a \
                     quote, a line break or white space at either end)",
                    wrong.join(", ")
                ),
            );
        }
    }

    /// The header row (line 1), mapped to the table's columns by name.
    pub fn header(&mut self, names: &[&str]) {
        self.header_at(names, 1);
    }

    fn header_at(&mut self, names: &[&str], line: u64) {
        let spec = self.spec;
        self.line = line;
        // sds-sync writes the columns it always writes plus the optional ones an export
        // switches on, in Microsoft's order: any such header is canonical.
        if self.strict && !spec.is_written_header(names) {
            let always = spec.header();
            let optional: Vec<&str> = spec
                .columns
                .iter()
                .filter(|c| c.field.is_none() && c.optional.is_some())
                .map(|c| c.name)
                .collect();
            let also = if optional.is_empty() {
                String::new()
            } else {
                format!(", then any of {:?} in that order", optional.join(","))
            };
            self.at(
                Severity::Error,
                "header",
                line,
                None,
                format!(
                    "header is {:?}; sds-sync writes exactly {:?}{also}",
                    names.join(","),
                    always.join(",")
                ),
            );
        }
        let mut columns: Vec<(usize, &'static Column)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match spec.column(name) {
                Some(c) if columns.iter().any(|(_, seen)| seen.name == c.name) => {
                    self.at(
                        Severity::Error,
                        "header",
                        line,
                        Some(name),
                        "the column appears twice in the header",
                    );
                }
                Some(c) => columns.push((i, c)),
                None if !self.strict => {
                    let hint = match spec
                        .columns
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(name))
                    {
                        Some(c) => format!(" (header names are case-sensitive: {:?}?)", c.name),
                        None => String::new(),
                    };
                    self.at(
                        Severity::Warning,
                        "unknown_column",
                        line,
                        Some(name),
                        format!("not a column of {}; SDS ignores it{hint}", spec.name),
                    );
                }
                None => {}
            }
        }
        for c in spec.columns.iter().filter(|c| c.need.header_required()) {
            if !columns.iter().any(|(_, seen)| seen.name == c.name) {
                let hint = match names.iter().find(|n| n.eq_ignore_ascii_case(c.name)) {
                    Some(n) => format!(" (found {n:?}: header names are case-sensitive)"),
                    None => String::new(),
                };
                self.at(
                    Severity::Error,
                    "header",
                    line,
                    Some(c.name),
                    format!("the required column is missing from the header{hint}"),
                );
            }
        }
        let find = |name: &str| {
            columns
                .iter()
                .find(|(_, c)| c.name == name)
                .map(|(p, _)| *p)
        };
        // License.csv's User Principal Name is unique ignoring case: the licence rule's check.
        let unique: Option<Vec<usize>> = if spec.license {
            None
        } else {
            spec.unique.iter().map(|u| find(u)).collect()
        };
        let key: Vec<usize> = spec.key.iter().map_while(|k| find(k)).collect();
        // Strict files are sorted by key: a unique prefix of the key is checked between
        // neighbours, and a key that prefixes the unique columns makes them unique already (the
        // sorted rule allows one row per key). Neither keeps anything per row.
        let neighbours = self.strict && spec.key.starts_with(spec.unique);
        let implied = self.strict && !spec.key.is_empty() && spec.unique.starts_with(spec.key);
        let unique = if implied && !neighbours { None } else { unique };
        let id = spec.id_column.and_then(find);
        if spec.id_column.is_some() && id.is_none() {
            self.broken = true;
        }
        let refs = spec
            .references
            .iter()
            .filter_map(|r| find(r.column).map(|p| (p, r)))
            .collect();
        let username = spec
            .username
            .and_then(|u| Some((find(u.column)?, find(u.owner)?)));
        use format::col::{roster, v1};
        let role = find(roster::ROLE);
        let user = match spec.kind {
            FileKind::Enrollments | FileKind::Roles => find(roster::USER_SOURCED_ID),
            FileKind::UsersV2 => find(roster::SOURCED_ID),
            _ => None,
        };
        let names_v1 = match (find(v1::FIRST_NAME), find(v1::LAST_NAME)) {
            (Some(f), Some(l)) => Some((f, l)),
            _ => None,
        };
        self.ids = id.is_some().then(IdSet::default);
        if spec.kind == FileKind::UsersV21 && !self.strict {
            self.user_lines = Some(HashMap::new());
        }
        if spec.kind == FileKind::UsersV21 && self.set.is_present(format::name::RELATIONSHIPS) {
            self.no_contact = Some(Vec::new());
        }
        self.last_refs = spec.references.iter().map(|_| LastRef::default()).collect();
        if spec.kind == FileKind::License {
            self.license_used = vec![false; self.set.students.len()];
        }
        self.targets = spec
            .references
            .iter()
            .map(|r| self.set.ids.get(r.file))
            .collect();
        let mut secret = vec![false; names.len()];
        for &(p, c) in &columns {
            if let Some(s) = secret.get_mut(p) {
                *s = c.is_secret();
            }
        }
        self.layout = Some(Box::new(Layout {
            secret,
            width: names.len(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            columns,
            id,
            unique,
            key,
            refs,
            username,
            role,
            user,
            names_v1,
            neighbours,
        }));
    }

    fn row_at(&mut self, line: u64, fields: &[&str]) {
        self.line = line;
        let Some(layout) = self.layout.take() else {
            return;
        };
        self.check_row(&layout, line, fields);
        self.layout = Some(layout);
    }

    fn check_row(&mut self, l: &Layout, line: u64, fields: &[&str]) {
        self.rows += 1;
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        if fields.len() != l.width {
            self.at(
                Severity::Error,
                "field_count",
                line,
                None,
                format!(
                    "has {} field(s), the header has {}; the row is not checked further",
                    fields.len(),
                    l.width
                ),
            );
            // Its ID still counts as present (with any role): rows referring to it are not
            // reported again.
            if let Some(p) = l.id
                && !get(p).is_empty()
            {
                let h = self.hash_one(get(p));
                if let Some(ids) = &mut self.ids {
                    ids.insert(h, ROLE_ANY);
                }
            }
            return;
        }
        for (i, value) in fields.iter().enumerate() {
            let column = l.names.get(i).map(String::as_str);
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                self.at(
                    Severity::Error,
                    "line_break",
                    line,
                    column,
                    "line break inside a value; SDS accepts none",
                );
            }
            if value.trim() != *value {
                let severity = self.strict_or_warning();
                let message = if l.secret.get(i).copied().unwrap_or(false) {
                    "the value has leading or trailing white space (a password: not shown)"
                        .to_owned()
                } else {
                    format!("value {value:?} has leading or trailing white space")
                };
                self.at(severity, "whitespace", line, column, message);
            }
        }
        for &(p, c) in &l.columns {
            let value = get(p);
            if value.is_empty() {
                match c.need {
                    Need::Required => self.at(
                        Severity::Error,
                        "required",
                        line,
                        Some(c.name),
                        "required value is blank",
                    ),
                    Need::Expected => self.at(
                        Severity::Warning,
                        "blank",
                        line,
                        Some(c.name),
                        "blank value: SDS cannot match this user to an account",
                    ),
                    Need::Header | Need::Optional => {}
                }
            } else if let Values::Enum(e) = c.values
                && e.find(value).is_none()
            {
                self.at(
                    Severity::Warning,
                    "enum",
                    line,
                    Some(c.name),
                    format!(
                        "{value:?} is not in Microsoft's default list of {} values ({}); SDS takes it only if your tenant added it{}",
                        e.name,
                        e.values.join(", "),
                        // Our own exports get there through the grade map.
                        if *e == format::GRADES {
                            " (sds-sync maps SIS grades to these codes with [export.grade_map])"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if let Some(p) = l.id {
            let id = get(p);
            if !id.is_empty() {
                let h = self.hash_one(id);
                // v2 users.csv carries each user's role.
                let flags = match (self.spec.kind, l.role) {
                    (FileKind::UsersV2, Some(r)) if !get(r).is_empty() => role_flag(get(r)),
                    _ => 0,
                };
                if let Some(ids) = &mut self.ids {
                    ids.insert(h, flags);
                }
                if let Some(lines) = &mut self.user_lines {
                    lines.entry(h & !FLAGS).or_insert(line);
                }
                if let Some(users) = &mut self.no_contact {
                    use format::col::roster as r;
                    let blank = [r::GIVEN_NAME, r::FAMILY_NAME, r::EMAIL]
                        .into_iter()
                        .any(|c| l.pos(c).is_none_or(|p| get(p).is_empty()));
                    if blank {
                        users.push(h & !FLAGS);
                    }
                }
            }
        }
        // Sorted files check uniqueness between neighbours, in the same pass as the order.
        let duplicate = !l.neighbours && self.check_unique(l, line, fields);
        if self.strict {
            self.check_sorted(l, line, fields, duplicate);
        }
        for (i, &(p, r)) in l.refs.iter().enumerate() {
            self.check_reference(line, get(p), r, i);
        }
        if let Some((u, owner)) = l.username {
            self.check_username(line, get(u), get(owner), l);
        }
        self.collect_for_rules(l, line, fields);
        self.have_prev = true;
        self.prev_line = line;
    }

    /// Returns whether the row repeats a unique value (remembering every one: for files that
    /// are not sorted by them).
    fn check_unique(&mut self, l: &Layout, line: u64, fields: &[&str]) -> bool {
        let Some(unique) = &l.unique else {
            return false;
        };
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        if unique.iter().any(|&p| get(p).is_empty()) {
            return false;
        }
        let h = self.hash_all(unique.iter().map(|&p| get(p)));
        match self.seen.get(&h) {
            Some(&first) => {
                self.report_duplicate(l, line, fields, first);
                true
            }
            None => {
                self.seen.insert(h, line);
                false
            }
        }
    }

    fn report_duplicate(&mut self, l: &Layout, line: u64, fields: &[&str], first: u64) {
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        let names = self.spec.unique;
        let values: Vec<&str> = l.unique.iter().flatten().map(|&p| get(p)).collect();
        let column = (names.len() == 1).then(|| names[0]);
        self.at(
            Severity::Error,
            "unique",
            line,
            column,
            format!(
                "duplicate {} {:?} (first on line {first})",
                names.join(" + "),
                values.join(", ")
            ),
        );
    }

    /// Strict: rows sorted by key, one row per key; with `neighbours`, also the unique columns
    /// (a prefix of the key) against the row before. Only the fields that changed are copied.
    fn check_sorted(&mut self, l: &Layout, line: u64, fields: &[&str], duplicate: bool) {
        if l.key.len() != self.spec.key.len() || l.key.is_empty() {
            return;
        }
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        let mut differs_at = 0;
        if self.have_prev && self.prev_key.len() == l.key.len() {
            let d = l
                .key
                .iter()
                .zip(&self.prev_key)
                .position(|(&p, prev)| get(p) != prev.as_str())
                .unwrap_or(l.key.len());
            differs_at = d;
            let unique = l.unique.as_deref().filter(|_| l.neighbours).unwrap_or(&[]);
            let repeated = !unique.is_empty()
                && d >= unique.len()
                && unique.iter().all(|&p| !get(p).is_empty());
            if repeated {
                let first = self.prev_line;
                self.report_duplicate(l, line, fields, first);
            }
            let show = |v: Vec<&str>| v.join(", ");
            if let (Some(&p), Some(prev)) = (l.key.get(d), self.prev_key.get(d)) {
                if get(p).as_bytes() < prev.as_bytes() {
                    let (now, before) = (
                        show(l.key.iter().map(|&p| get(p)).collect()),
                        show(self.prev_key.iter().map(String::as_str).collect()),
                    );
                    self.at(
                        Severity::Error,
                        "sorted",
                        line,
                        None,
                        format!(
                            "rows are not sorted by {}: ({now}) comes after ({before}) on line {}",
                            self.spec.key.join(" + "),
                            self.prev_line
                        ),
                    );
                }
            } else if !duplicate && !repeated {
                let now = show(l.key.iter().map(|&p| get(p)).collect());
                self.at(
                    Severity::Error,
                    "sorted",
                    line,
                    None,
                    format!(
                        "a second row with the key ({now}); sds-sync writes one row per {}",
                        self.spec.key.join(" + ")
                    ),
                );
            }
        } else {
            self.prev_key.resize(l.key.len(), String::new());
        }
        for (slot, &p) in self.prev_key.iter_mut().zip(&l.key).skip(differs_at) {
            slot.clear();
            slot.push_str(get(p));
        }
    }

    fn check_reference(&mut self, line: u64, value: &str, r: &'static Reference, slot: usize) {
        if value.is_empty() {
            return; // blank: reported by the `required` rule where it matters
        }
        if !self.set.is_present(r.file) {
            // A missing required file is reported by the file-set rules already.
            let optional = self
                .set
                .format
                .file(r.file)
                .is_some_and(|f| f.presence == Presence::Optional);
            if optional && !self.absent_reported.contains(&r.column) {
                self.absent_reported.push(r.column);
                self.at(
                    Severity::Error,
                    "file_set",
                    line,
                    Some(r.column),
                    format!(
                        "refers to {}, which is not in the set (a referenced file must be present)",
                        r.file
                    ),
                );
            }
            return;
        }
        if !r.list {
            // The same value as the row before (sorted files repeat it): known already.
            if let Some(last) = self.last_refs.get(slot)
                && last.flags.is_some()
                && last.value == value
            {
                self.user_flags = last.flags;
                return;
            }
            let flags = self.check_item(line, value, r, slot);
            self.user_flags = flags;
            if let Some(last) = self.last_refs.get_mut(slot) {
                last.value.clear();
                last.value.push_str(value);
                last.flags = flags;
            }
            return;
        }
        // A comma-separated list of IDs in one field.
        for (n, item) in value.split(',').enumerate() {
            if item.is_empty() || item.trim() != item {
                self.at(
                    Severity::Error,
                    "list",
                    line,
                    Some(r.column),
                    format!("{value:?} is not a comma-separated list of IDs"),
                );
                continue;
            }
            if value.split(',').take(n).any(|earlier| earlier == item) {
                self.at(
                    Severity::Error,
                    "list",
                    line,
                    Some(r.column),
                    format!("{item:?} is listed twice"),
                );
                continue;
            }
            self.check_item(line, item, r, slot);
        }
    }

    /// One referenced ID: the flags of the row it names, `None` when it names none. An ID
    /// that cannot be checked (its file could not be read) counts as any role.
    fn check_item(
        &mut self,
        line: u64,
        item: &str,
        r: &'static Reference,
        slot: usize,
    ) -> Option<u8> {
        if r.file == self.spec.name {
            self.self_refs.push((item.to_owned(), line, r.column));
            return None;
        }
        let Some(ids) = self.targets.get(slot).copied().flatten() else {
            return Some(ROLE_ANY); // the target could not be read: not checked, not cascaded
        };
        if let Some(flags) = ids.get(self.hash_one(item)) {
            return Some(flags);
        }
        let hint = self.wrong_kind_hint(item, r);
        self.at(
            Severity::Error,
            "reference",
            line,
            Some(r.column),
            format!("{item:?} is not in {}{hint}", r.file),
        );
        None
    }

    /// v1: an enrollment of a teacher (or a roster row of a student) says so.
    fn wrong_kind_hint(&self, item: &str, r: &Reference) -> String {
        let other = match (self.spec.kind, r.file) {
            (FileKind::StudentEnrollment, format::name::STUDENT) => format::name::TEACHER,
            (FileKind::TeacherRoster, format::name::TEACHER) => format::name::STUDENT,
            _ => return String::new(),
        };
        match self.set.ids.get(other) {
            Some(ids) if ids.contains(self.hash_one(item)) => {
                format!(" (it is in {other}: the wrong kind of user)")
            }
            _ => String::new(),
        }
    }

    fn check_username(&mut self, line: u64, name: &str, owner: &str, l: &Layout) {
        if name.is_empty() {
            return;
        }
        if self.set.format.needs_full_usernames() && !format::is_full_username(name) {
            let column = l.username.and_then(|(p, _)| l.names.get(p)).cloned();
            self.at(
                Severity::Error,
                "username",
                line,
                column.as_deref(),
                format!(
                    "username {name:?} is not a full user@domain name, as SDS {} requires",
                    self.set.format
                ),
            );
        }
        // Compared at the end of the file (sorted), and across files at the end of the set.
        let entry = (self.hash_username(name), self.hash_one(owner), line32(line));
        self.usernames.push(entry);
    }

    /// What the cross-file rules need: roles, relations, the students a licence names.
    fn collect_for_rules(&mut self, l: &Layout, line: u64, fields: &[&str]) {
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        let format = self.set.format;
        match (format, self.spec.kind) {
            (Format::V2_1, FileKind::Roles) => {
                if let (Some(u), Some(r)) = (l.user, l.role)
                    && !get(u).is_empty()
                    && !get(r).is_empty()
                {
                    // The role goes onto the user of users.csv (a role of an unknown user was
                    // reported as a reference, and does not make it a user).
                    let h = self.hash_one(get(u));
                    if let Some(users) = self.set.ids.get(format::name::USERS) {
                        users.flag(h, role_flag(get(r)));
                    }
                }
            }
            (_, FileKind::Enrollments) => self.check_enrollment_role(l, line, fields),
            (_, FileKind::Relationships) => {
                // Learn: familyName, givenName and email are required for users that have
                // guardian roles in relationships.csv.
                if let Some(p) = l.pos(format::col::roster::RELATIONSHIP_USER_SOURCED_ID)
                    && !get(p).is_empty()
                    && !self.set.no_contact.is_empty()
                    && self
                        .set
                        .no_contact
                        .binary_search(&(self.hash_one(get(p)) & !FLAGS))
                        .is_ok()
                {
                    self.at(
                        Severity::Error,
                        "guardian_contact",
                        line,
                        Some(format::col::roster::RELATIONSHIP_USER_SOURCED_ID),
                        format!(
                            "{:?} has no givenName, familyName or email in {}; SDS needs all three for a guardian",
                            get(p),
                            format::name::USERS
                        ),
                    );
                }
                for name in [
                    format::col::roster::USER_SOURCED_ID,
                    format::col::roster::RELATIONSHIP_USER_SOURCED_ID,
                ] {
                    if let Some(p) = l.pos(name)
                        && !get(p).is_empty()
                    {
                        let h = self.hash_one(get(p));
                        if let Some(users) = self.set.ids.get(format::name::USERS) {
                            users.flag(h, RELATED);
                        }
                    }
                }
            }
            (Format::V1, FileKind::Student) if self.set.is_present(format::name::LICENSE) => {
                if let Some((f, last)) = l.names_v1 {
                    let username = l.username.map_or("", |(u, _)| get(u));
                    self.scratch.clear();
                    self.scratch.push_str(get(f));
                    self.scratch.push(' ');
                    self.scratch.push_str(get(last));
                    let key =
                        student_key(self.hash_all([self.scratch.as_str(), username]), username);
                    self.students.push((key, line32(line)));
                }
            }
            (Format::V1, FileKind::License) => self.check_license_row(l, line, fields),
            _ => {}
        }
    }

    /// v2/v2.1: the role of an enrollment is one the user has (in users.csv / roles.csv).
    fn check_enrollment_role(&mut self, l: &Layout, line: u64, fields: &[&str]) {
        let get = |p: usize| fields.get(p).copied().unwrap_or("");
        let (Some(u), Some(r)) = (l.user, l.role) else {
            return;
        };
        let (user, role) = (get(u), get(r));
        if user.is_empty() || role.is_empty() {
            return;
        }
        // The user's roles came with its reference check (userSourcedId, just before).
        let Some(has) = self.user_flags else {
            return; // not a user at all: reported as a reference
        };
        let want = role_flag(role);
        // No role at all (v2.1) is reported once, as the user's. An enrollment role outside the
        // list is a warning of its own; a user's role outside the list is no student or teacher.
        let has = has & ROLE_MASK;
        if has == 0 || want == ROLE_OTHER || has & ROLE_ANY != 0 || has & want != 0 {
            return;
        }
        let source = if self.set.format == Format::V2 {
            format::name::USERS
        } else {
            format::name::ROLES
        };
        self.at(
            Severity::Error,
            "role",
            line,
            Some(format::col::roster::ROLE),
            format!("user {user:?} is enrolled as {role:?}, a role it does not have in {source}"),
        );
    }

    /// v1 `License.csv`: a user@domain UPN, unique ignoring case, one Account Sku Id, and a
    /// student of Student.csv whose display name is First Name + " " + Last Name and whose
    /// Username is the UPN, its local part, or blank.
    fn check_license_row(&mut self, l: &Layout, line: u64, fields: &[&str]) {
        use format::col::v1;
        let get = |name: &str| l.pos(name).and_then(|p| fields.get(p).copied());
        let (Some(display), Some(upn)) = (get(v1::DISPLAY_NAME), get(v1::USER_PRINCIPAL_NAME))
        else {
            return;
        };
        if let Some(sku) = get(v1::ACCOUNT_SKU_ID) {
            match &self.sku {
                None => self.sku = Some(sku.to_owned()),
                Some(first) if first != sku => {
                    let first = first.clone();
                    self.at(
                        Severity::Error,
                        "license",
                        line,
                        Some(v1::ACCOUNT_SKU_ID),
                        format!("Account Sku Id {sku:?} differs from the first row's {first:?}"),
                    );
                }
                Some(_) => {}
            }
        }
        if upn.is_empty() {
            return;
        }
        if !format::is_full_username(upn) {
            self.at(
                Severity::Error,
                "license",
                line,
                Some(v1::USER_PRINCIPAL_NAME),
                format!("{upn:?} is not a user@domain e-mail address"),
            );
        }
        let folded = self.hash_username(upn);
        self.license_upns.push((folded, line32(line)));
        if !self.set.is_present(format::name::STUDENT)
            || self.license_used.len() != self.set.students.len()
        {
            return;
        }
        // As the username rules derive it: the whole address, its local part, or nothing.
        let local = upn.split('@').next().unwrap_or("").trim();
        let students = &self.set.students;
        let mut matched = false;
        for want in [upn, local, ""] {
            let key = student_key(self.hash_all([display, want]), want);
            let start = students.partition_point(|(k, _)| *k < key);
            let free = students
                .iter()
                .enumerate()
                .skip(start)
                .take_while(|(_, (k, _))| *k == key)
                .find(|(i, _)| !self.license_used.get(*i).copied().unwrap_or(true))
                .map(|(i, _)| i);
            if let Some(slot) = free.and_then(|i| self.license_used.get_mut(i)) {
                *slot = true;
                matched = true;
                break;
            }
        }
        if !matched {
            self.at(
                Severity::Error,
                "license",
                line,
                None,
                format!(
                    "no student in Student.csv matches this row (Display Name {display:?} = First Name + \" \" + Last Name, Username derived from {upn:?})"
                ),
            );
        }
    }

    /// Ends the file: file-level rules, and what it hands to the set.
    pub fn finish(mut self) -> FileDone {
        let own = self.ids.take();
        for (value, line, column) in std::mem::take(&mut self.self_refs) {
            if let Some(ids) = &own
                && !ids.contains(self.hash_one(&value))
            {
                self.at(
                    Severity::Error,
                    "reference",
                    line,
                    Some(column),
                    format!("{value:?} is not in {}", self.spec.name),
                );
            }
        }
        // Usernames of two people equal ignoring case, within this file.
        self.usernames.sort_unstable();
        let column = self.spec.username.map_or("", |u| u.column);
        let mut clashes = Vec::new();
        for group in self.usernames.chunk_by(|a, b| a.0 == b.0) {
            let Some(first) = group.iter().min_by_key(|e| e.2) else {
                continue;
            };
            for e in group.iter().filter(|e| e.1 != first.1) {
                clashes.push((e.2, first.2));
            }
        }
        clashes.sort_unstable();
        for (line, first) in clashes {
            self.at(
                Severity::Error,
                "unique_username",
                u64::from(line),
                Some(column),
                format!(
                    "the username is also the username of another user on line {first} (usernames are compared ignoring case)"
                ),
            );
        }
        // License.csv: one User Principal Name per row, ignoring case.
        self.license_upns.sort_unstable();
        let mut repeated = Vec::new();
        for group in self.license_upns.chunk_by(|a, b| a.0 == b.0) {
            if let Some((first, rest)) = group.split_first() {
                repeated.extend(rest.iter().map(|e| (e.1, first.1)));
            }
        }
        repeated.sort_unstable();
        for (line, first) in repeated {
            self.at(
                Severity::Error,
                "license",
                u64::from(line),
                Some(format::col::v1::USER_PRINCIPAL_NAME),
                format!(
                    "the User Principal Name is already on line {first} (compared ignoring case)"
                ),
            );
        }
        if self.rows > format::SDS_ROW_LIMIT {
            self.sink.add(
                Severity::Warning,
                "row_limit",
                &self.name,
                None,
                None,
                format!(
                    "{} rows: above Microsoft's limit of {} rows per file",
                    self.rows,
                    format::SDS_ROW_LIMIT
                ),
            );
        }
        let spec = self.spec;
        let usernames =
            (spec.username.is_some() && !self.usernames.is_empty()).then(|| Usernames {
                file: self.name.clone(),
                column,
                names: std::mem::take(&mut self.usernames),
            });
        let students =
            (spec.kind == FileKind::Student && self.set.format == Format::V1).then(|| {
                let mut s = std::mem::take(&mut self.students);
                s.sort_unstable();
                s
            });
        let license_used =
            (spec.kind == FileKind::License).then(|| std::mem::take(&mut self.license_used));
        FileDone {
            spec,
            findings: self.sink.finish(),
            ids: if self.broken { None } else { own },
            user_lines: self.user_lines,
            no_contact: self.no_contact.map(|mut users| {
                users.sort_unstable();
                users.dedup();
                users
            }),
            usernames,
            students,
            license_used,
        }
    }
}

/// A line number as the compact tables keep it.
fn line32(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// A student's key for License.csv: the hash of (display name, username), its lowest bit set
/// when the username is a full `user@domain` address (such a student must have a licence row).
fn student_key(hash: u64, username: &str) -> u64 {
    (hash & !1) | u64::from(format::is_full_username(username))
}

impl RowSink for FileCheck<'_> {
    /// One data row as sds-sync renders it (one physical line each, after the header).
    fn row(&mut self, fields: &[&str]) -> io::Result<()> {
        let line = self.line + 1;
        self.row_at(line, fields);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw records (strict shape checks).
// ---------------------------------------------------------------------------------------------

/// One physical record as it is in the file: its content (without the terminator) and the
/// terminator found after it (empty at the end of the data).
struct RawRecord<'a> {
    line: u64,
    content: &'a [u8],
    terminator: &'a [u8],
}

/// Splits `data` into records the way RFC 4180 does: a double quote opens a quoted value only at
/// the start of a field, and CR or LF inside a quoted value does not end the record. Blank lines
/// come back as records with empty content. Lazy, so a big file costs no list of its lines.
struct RawRecords<'a> {
    data: &'a [u8],
    start: usize,
    line: u64,
}

fn split_records(data: &[u8]) -> RawRecords<'_> {
    RawRecords {
        data,
        start: 0,
        line: 1,
    }
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = RawRecord<'a>;

    fn next(&mut self) -> Option<RawRecord<'a>> {
        #[derive(Clone, Copy)]
        enum St {
            FieldStart,
            Unquoted,
            Quoted,
            QuoteInQuoted,
        }
        let data = self.data;
        if self.start >= data.len() {
            return None;
        }
        let mut st = St::FieldStart;
        let mut i = self.start;
        while i < data.len() {
            let c = data[i];
            st = match (st, c) {
                (St::Quoted, b'"') => St::QuoteInQuoted,
                (St::Quoted, _) => St::Quoted,
                (St::QuoteInQuoted, b'"') => St::Quoted,
                (St::FieldStart, b'"') => St::Quoted,
                (_, b',') => St::FieldStart,
                (_, b'\r' | b'\n') => St::FieldStart,
                _ => St::Unquoted,
            };
            if matches!(c, b'\r' | b'\n') && !matches!(st, St::Quoted) {
                let term_len = if c == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                let content = &data[self.start..i];
                let record = RawRecord {
                    line: self.line,
                    content,
                    terminator: &data[i..i + term_len],
                };
                self.line += 1 + newlines(content);
                self.start = i + term_len;
                return Some(record);
            }
            i += 1;
        }
        let record = RawRecord {
            line: self.line,
            content: &data[self.start..],
            terminator: &[],
        };
        self.start = data.len();
        Some(record)
    }
}

/// Physical line breaks inside `content` (CRLF, CR or LF each count once).
fn newlines(content: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\n' => n += 1,
            b'\r' => {
                n += 1;
                if content.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    n
}

/// The fields of one raw record as written (quotes included), split the way RFC 4180 does: a
/// double quote opens a quoted value only at the start of a field, and `""` inside it is a quote.
fn raw_fields(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        let mut i = from;
        if content.get(i) == Some(&b'"') {
            i += 1;
            while i < content.len() {
                if content[i] == b'"' {
                    if content.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
        }
        while i < content.len() && content[i] != b',' {
            i += 1;
        }
        start = (i < content.len()).then_some(i + 1);
        Some(&content[from..i])
    })
}

/// Whether a value needs quotes: a comma, a quote, a line break, or white space at either end.
fn needs_quotes(value: &[u8]) -> bool {
    value
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        || value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
        || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
}

/// The minimal RFC 4180 encoding of one value.
fn encode_value(value: &[u8], out: &mut Vec<u8>) {
    if needs_quotes(value) {
        out.push(b'"');
        for &b in value {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests;
