#!/usr/bin/env python3
"""The SDS v1 export a district admin would write by hand: the peer scripts/bench.sh measures
sds-sync against (issue 17).

A straightforward, competent psycopg 3 script: each query streamed through a server-side
(named) cursor, rows checked and kept in dicts, files sorted in Python and written with
csv.writer. It applies the rules sds-sync applies to a v1 export with its default settings
(username = the e-mail address, passwords included), so that both write the same bytes:

- every value: CR LF, CR, LF and NUL become one space, then surrounding white space is trimmed;
  a row whose required value is blank is dropped;
- a section's SIS ID is "school-course-section"; its name is the course description, else the
  course code;
- sections, students and teachers of a school that is not exported are dropped;
- one row per key (school, section, student: the ID; teacher: the ID and the school): an exact
  copy is dropped, rows that disagree are all dropped; a teacher whose rows disagree on the
  person (anything but the school) is dropped entirely;
- a student or teacher without an e-mail address (no username) is dropped, and so is everyone
  whose username equals another person's ignoring case;
- an enrollment or roster row needs its section and its user exported; copies are dropped;
- every file sorted by its key (IDs compared as text), UTF-8, CRLF, quotes only where needed.

The queries are not in this file: scripts/bench.sh hands over the six queries sds-sync runs
(read from crates/source/src/queries.rs), one "<Entity><TAB><sql>" line each, so both read the
same rows. Prints what it dropped and its phase times (JSON, one line) on stderr.

    peer.py --dsn postgresql://postgres@127.0.0.1/sds_bench_1 --queries q.tsv --out DIR
"""

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter, defaultdict

import psycopg

ENTITIES = (
    "Schools",
    "Students",
    "Teachers",
    "Sections",
    "StudentEnrollments",
    "TeacherRosters",
)
USER_HEADER = ["SIS ID", "School SIS ID", "First Name", "Last Name", "Username", "Password"]


def clean(value):
    """A SIS value as sds-sync reads it: text, line breaks and NUL as spaces, trimmed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    if "\r" in value or "\n" in value or "\0" in value:
        value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
        value = value.replace("\0", " ")
    return value.strip()


def plain(value):
    """True when `clean` would leave the text as it is and it is not blank (the common case,
    checked in C instead of four Python calls per row)."""
    return value.isprintable() and " " not in value and value != ""


class Export:
    def __init__(self, conn, queries, chunk, out):
        self.conn = conn
        self.queries = queries
        self.chunk = chunk
        self.out = out
        self.dropped = Counter()  # (file, reason) -> rows
        self.phases = {}

    def rows(self, entity):
        """Streams one query's rows as the server sends them (libpq's chunked rows: no cursor
        round trips; measured 2.5x faster than a named cursor's FETCHes at this size)."""
        started = time.monotonic()
        n = 0
        cur = self.conn.cursor()
        size = self.chunk if psycopg.pq.version() >= 170000 else 1
        for row in cur.stream(self.queries[entity], size=size):
            n += 1
            yield row
        # Includes the checks the caller makes as rows come (the stream is consumed row by row).
        self.phases[f"{entity}: stream and check"] = round(time.monotonic() - started, 3)
        self.phases[f"rows {entity}"] = n

    def cleaned(self, entity):
        for row in self.rows(entity):
            yield [clean(v) for v in row]

    def drop(self, file, reason, n=1):
        self.dropped[(file, reason)] += n

    def unique(self, file, rows, key_len):
        """One row per key: exact copies collapse, rows that disagree on a key all go."""
        by_key = {}
        conflicts = set()
        for row in rows:
            key = tuple(row[:key_len])
            seen = by_key.get(key)
            if seen is None:
                by_key[key] = row
            elif seen == row:
                self.drop(file, "duplicate")
            else:
                conflicts.add(key)
                self.drop(file, "conflicting_duplicate")
        for key in conflicts:
            del by_key[key]
            self.drop(file, "conflicting_duplicate")  # the first row of the conflict too
        return by_key

    def run(self):
        t = time.monotonic()
        schools = self.unique(
            "School.csv",
            (r for r in self.cleaned("Schools") if self.required("School.csv", r, 2)),
            1,
        )
        school_ids = {key[0] for key in schools}

        students = self.unique(
            "Student.csv",
            (
                r
                for r in self.cleaned("Students")
                if self.required("Student.csv", r, 4) and self.known_school("Student.csv", r[1], school_ids)
            ),
            1,
        )
        teachers = self.unique(
            "Teacher.csv",
            (
                r
                for r in self.cleaned("Teachers")
                if self.required("Teacher.csv", r, 4) and self.known_school("Teacher.csv", r[1], school_ids)
            ),
            2,
        )
        # One teacher at several schools is one person: their rows must agree on it.
        by_teacher = defaultdict(list)
        for row in teachers.values():
            by_teacher[row[0]].append(row)
        for tid, rows in list(by_teacher.items()):
            person = [r[:1] + r[2:] for r in rows]
            if any(p != person[0] for p in person):
                del by_teacher[tid]
                self.drop("Teacher.csv", "conflicting_duplicate", len(rows))

        section_rows = []
        for school, course, section, description in self.cleaned("Sections"):
            if not (school and course and section):
                self.drop("Section.csv", "missing_value")
                continue
            if not self.known_school("Section.csv", school, school_ids):
                continue
            # The flag tells a section named by its course code from one whose description is
            # that code: sds-sync counts the former in a warning, so the two rows disagree.
            section_rows.append(
                [f"{school}-{course}-{section}", school, description or course, "" if description else "1"]
            )
        sections = self.unique("Section.csv", section_rows, 1)
        del section_rows

        # Usernames: the e-mail address. None, or one shared by two people, and SDS cannot
        # match the account: such users are left out.
        owner = {}  # username ignoring case -> the first person who has it
        shared = set()  # usernames two people have

        def claim(email, person):
            name = email.lower()
            if owner.setdefault(name, person) != person:
                shared.add(name)

        student_of = {}
        for (sid,), row in students.items():
            if not row[4]:
                self.drop("Student.csv", "no_username")
                continue
            student_of[sid] = row
            claim(row[4], ("student", sid))
        teacher_of = {}
        for tid, rows in by_teacher.items():
            if not rows[0][4]:  # one person: every row has the same e-mail address
                self.drop("Teacher.csv", "no_username", len(rows))
                continue
            teacher_of[tid] = rows
            claim(rows[0][4], ("teacher", tid))
        if shared:
            for sid in [s for s, row in student_of.items() if row[4].lower() in shared]:
                del student_of[sid]
                self.drop("Student.csv", "duplicate_username")
            for tid in [t for t, rows in teacher_of.items() if rows[0][4].lower() in shared]:
                self.drop("Teacher.csv", "duplicate_username", len(teacher_of.pop(tid)))
        del owner, students, by_teacher, teachers
        self.phases["schools, students, teachers, sections (to usernames checked)"] = round(
            time.monotonic() - t, 3
        )

        # Each section's members, filled while enrollments and rosters stream in; the IDs
        # stored are the ones already held for Student.csv and Teacher.csv (one copy each).
        students_in = {key[0]: [] for key in sections}
        teachers_in = {key[0]: [] for key in sections}
        t = time.monotonic()
        self.members("StudentEnrollment.csv", "StudentEnrollments", students_in, {s: s for s in student_of})
        self.members("TeacherRoster.csv", "TeacherRosters", teachers_in, {t: t for t in teacher_of})
        self.phases["enrollments and rosters"] = round(time.monotonic() - t, 3)

        t = time.monotonic()
        self.write("School.csv", ["SIS ID", "Name"], sorted(schools.values()))
        self.write(
            "Section.csv",
            ["SIS ID", "School SIS ID", "Section Name"],
            [r[:3] for r in sorted(sections.values())],
        )
        self.write("Student.csv", USER_HEADER, [r[:6] for r in sorted(student_of.values())])
        self.write("Teacher.csv", USER_HEADER, sorted(r for rows in teacher_of.values() for r in rows))
        self.write_members("StudentEnrollment.csv", students_in)
        self.write_members("TeacherRoster.csv", teachers_in)
        self.phases["sort and write"] = round(time.monotonic() - t, 3)

    def required(self, file, row, n):
        if all(row[:n]):
            return True
        self.drop(file, "missing_value")
        return False

    def known_school(self, file, school, school_ids):
        if school in school_ids:
            return True
        self.drop(file, "unknown_school")
        return False

    def members(self, file, entity, members_of, user_ids):
        """Adds each (section, user) row whose section and user are exported to the section's
        list. IDs are cleaned like every other value; plain ones (no white space, no control
        character: nearly all) are used as they come."""
        for row in self.rows(entity):
            school, course, section, user = row
            if school is None or course is None or section is None or user is None:
                self.drop(file, "missing_value")
                continue
            section_id = f"{school}-{course}-{section}"
            user = f"{user}"
            if not (plain(section_id) and plain(user)):
                school, course, section, user = (clean(v) for v in row)
                if not (school and course and section and user):
                    self.drop(file, "missing_value")
                    continue
                section_id = f"{school}-{course}-{section}"
            members = members_of.get(section_id)
            if members is None:
                self.drop(file, "unknown_section")
                continue
            user = user_ids.get(user)
            if user is None:
                self.drop(file, "unknown_user")
                continue
            members.append(user)

    def write(self, name, header, rows):
        with open(os.path.join(self.out, name), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(header)
            w.writerows(rows)

    def write_members(self, name, members_of):
        with open(os.path.join(self.out, name), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(["Section SIS ID", "SIS ID"])
            for section_id in sorted(members_of):
                members = members_of[section_id]
                unique = sorted(set(members))
                if len(unique) < len(members):
                    self.drop(name, "duplicate", len(members) - len(unique))
                w.writerows([(section_id, user) for user in unique])


def read_queries(path):
    queries = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            entity, _, sql = line.rstrip("\n").partition("\t")
            if entity:
                queries[entity] = sql
    missing = [e for e in ENTITIES if e not in queries]
    if missing:
        sys.exit(f"peer.py: {path} has no query for {', '.join(missing)}")
    return queries


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", required=True, help="libpq connection string or URL")
    p.add_argument("--queries", required=True, help="file of '<Entity><TAB><sql>' lines")
    p.add_argument("--out", required=True, help="folder for the six CSV files")
    p.add_argument("--chunk", type=int, default=1_000, help="rows per chunk of the stream")
    args = p.parse_args()

    started = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    with psycopg.connect(args.dsn) as conn:
        export = Export(conn, read_queries(args.queries), args.chunk, args.out)
        export.run()
    export.phases["total"] = round(time.monotonic() - started, 3)
    for (file, reason), n in sorted(export.dropped.items()):
        print(f"dropped: {file} {reason} {n}", file=sys.stderr)
    print(json.dumps({"phases": export.phases}), file=sys.stderr)


if __name__ == "__main__":
    main()
