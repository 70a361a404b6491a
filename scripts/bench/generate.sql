-- sds-sync benchmark: a synthetic district in the reference SIS schema (PostgreSQL).
--
-- Run by scripts/bench.sh after deploy/sis/schema-postgres.sql, in the same psql session, on an
-- empty UTF8 database:
--
--   psql -v ON_ERROR_STOP=1 -v scale=1.0 -d sds_bench_1 \
--        -f deploy/sis/schema-postgres.sql -f scripts/bench/generate.sql
--
-- Deterministic: no random(), no clock. Every "random" choice is integer arithmetic on the row
-- number (a multiplicative hash modulo a prime), so the same scale gives the same rows, byte for
-- byte, on every machine. The reference tables are used exactly as shipped: the only thing this
-- script does to them besides inserting is to drop the primary key of the two big tables during
-- the load and add it back (same columns, same name) afterwards, which is much faster.
--
-- Scale 1.0 (the figures the exporter sees through the default queries):
--   schools      1,800 active (+ 36 closed, is_active = FALSE)
--   students     1,000,000 active (+ 30,000 inactive, enroll_status = 'I')
--   staff        75,000 (2% inactive); staff_schools 82,875 rows: every teacher has a home
--                school, 10% a second school, 0.5% are still assigned to a closed school
--   courses      40 per school (about 1% without a name: the exporter falls back to the code)
--   sections     300,000 (1% without a teacher)
--   enrollments  7,500,000 active (7 or 8 per active student, 25 per section on average)
--                + 20,000 dropped (is_dropped = TRUE: filtered by the query)
--                + 30,000 of inactive students (returned by the query, dropped by the exporter)
--                + 1,000 pointing at a section that does not exist (dropped by the exporter)
--   rosters      the default query returns one row per section with a teacher: 297,000
--                (the reference schema has one staff_id per section, so 330,000 roster rows,
--                the issue's figure, cannot be reached without changing the schema; see
--                BENCHMARKS.md). About 2% of them name an inactive teacher and are dropped.
--
-- Names come from small lists with accents (José, Zoë, Nguyễn, Yılmaz), apostrophes (O'Brien,
-- D'Andre), commas (Reyes, Jr.), a double quote (Robert "Bobby") and non-ASCII punctuation, so
-- the CSV quoting paths are exercised at volume.

\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET work_mem = '64MB';

-- Sizes. Every count scales linearly; the minimums keep tiny scales (0.001) meaningful.
SELECT greatest(2, round(1800 * :scale))::int                 AS n_schools,
       greatest(1, round(36 * :scale))::int                   AS n_closed,
       greatest(40, round(1000000 * :scale))::int             AS n_students,
       greatest(2, round(30000 * :scale))::int                AS n_inactive,
       greatest(4, round(75000 * :scale))::int                AS n_staff,
       greatest(20, round(300000 * :scale))::int              AS n_sections
\gset
-- At least one teacher and ten sections per school.
SELECT greatest(:n_staff, :n_schools) AS n_staff,
       greatest(:n_sections, 10 * :n_schools) AS n_sections
\gset
\echo generating: schools=:n_schools (+:n_closed closed) students=:n_students (+:n_inactive inactive) staff=:n_staff sections=:n_sections

-- School code n (1-based) as CHAR(3): 001..999 keep their leading zeros, then three-character
-- base-36 codes starting with a letter (A00, A01, ...): room for 34,695 schools (scale ~19).
CREATE FUNCTION pg_temp.school_code(n int) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE WHEN n < 1000 THEN lpad(n::text, 3, '0')
         ELSE substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', 1 + (12960 + n - 1000) / 1296, 1)
           || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', 1 + ((12960 + n - 1000) / 36) % 36, 1)
           || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', 1 + (12960 + n - 1000) % 36, 1)
         END
$$;

-- Student number of student i: a permutation of 1..2^31-2 (48271 is a primitive root of the
-- prime 2^31-1), ten digits with leading zeros, so the SIS order is not the sorted order.
CREATE FUNCTION pg_temp.student_number(i bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT lpad(((i * 48271) % 2147483647)::text, 10, '0')
$$;

-- A deterministic pseudo-random number in [0, 2^32) for (i, salt): a multiplicative hash modulo
-- a prime, mixed with xor-shifts (so that different salts give unrelated sequences). One
-- expression, so that PostgreSQL inlines it.
--   x = ((i + salt * 1000003) * 2654435761) mod 4294967291
--   y = ((x xor (x >> 15)) * 40503) mod 4294967291
--   h = y xor (y >> 13)
CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS bigint IMMUTABLE LANGUAGE sql AS $$
  SELECT (((((((i + salt * 1000003::bigint) * 2654435761) % 4294967291) # ((((i + salt * 1000003::bigint) * 2654435761) % 4294967291) >> 15)) * 40503) % 4294967291) # (((((((i + salt * 1000003::bigint) * 2654435761) % 4294967291) # ((((i + salt * 1000003::bigint) * 2654435761) % 4294967291) >> 15)) * 40503) % 4294967291) >> 13))
$$;

-- Sections per school s (0-based): sections are numbered g = L * n_schools + s.
CREATE FUNCTION pg_temp.per_school(total int, schools int, s int) RETURNS int IMMUTABLE LANGUAGE sql AS $$
  SELECT (total - 1 - s) / schools + 1
$$;

CREATE TEMP TABLE first_names(n int, v text);
INSERT INTO first_names
SELECT row_number() OVER () - 1, v FROM unnest(ARRAY[
  'José', 'Zoë', 'Chloé', 'Renée', 'François', 'Siobhán', 'Søren', 'Ana', 'Mohammed', 'Wei',
  'Aaliyah', 'Liam', 'Olivia', 'Noah', 'Emma', 'Mateo', 'Sofía', 'Jürgen', 'Ngozi', 'Aarav',
  'Fatima', 'Ömer', 'Łukasz', 'Thảo', 'Mary Kate', 'D''Andre', 'Jean-Luc', 'Anaïs', 'Björn',
  'Inés', 'Kenji', 'Priya', 'Yusuf', 'Camila', 'Ethan', 'Isabella', 'Lucas', 'Mia', 'Elijah',
  'Amelia', 'Zoltán', 'Maëlle', 'Ayşe', 'Dmitri', 'Hana', 'Oluwaseun', 'Darnell', 'Keisha',
  'Xóchitl', 'Robert "Bobby"', 'Shay''la', 'Nuño', 'Joaquín', 'Seán', 'Åsa', 'Grace', 'Ibrahim',
  'Mei-Ling', 'Tomás', 'Ewa']) AS v;
CREATE TEMP TABLE last_names(n int, v text);
INSERT INTO last_names
SELECT row_number() OVER () - 1, v FROM unnest(ARRAY[
  'García', 'Fernández', 'Müller', 'Yılmaz', 'Sørensen', 'O''Brien', 'O''Connell', 'D''Angelo',
  'Reyes, Jr.', 'Smith', 'Johnson', 'Williams', 'Brown', 'Nguyễn', 'Kim', 'Patel', 'Cohen',
  'Rodríguez', 'Martínez', 'Hernández', 'López', 'González', 'Pérez', 'Sánchez', 'Ramírez',
  'Torres', 'Núñez', 'Lefèvre', 'Dubois', 'Šimić', 'Kowalski', 'Øvergaard', 'MacDonald',
  'McCarthy', 'Ó Súilleabháin', 'St. John', 'Smith-Jones', 'King, III', 'Washington', 'Jackson',
  'Lee', 'Chen', 'Wang', 'Singh', 'Khan', 'Ali', 'Okafor', 'Adeyemi', 'Haddad', 'Rossi',
  'Gómez', 'Díaz', 'Ng', 'Friedman', 'Ivanova', 'Björklund', 'Castaño', 'L''Heureux', 'Zhou',
  'Abdullah']) AS v;
CREATE TEMP TABLE places(n int, v text);
INSERT INTO places
SELECT row_number() OVER () - 1, v FROM unnest(ARRAY[
  'Harbor View', 'Northgate', 'Cedar Ridge', 'Riverside', 'Saint Mary''s', 'Côte-des-Neiges',
  'Peña Heights', 'Washington Irving', 'Malcolm X', 'Adélaïde Park', 'Brooklyn, Academy of Arts',
  'Old Mill', 'Lakeside', 'Hillcrest', 'Maple Grove', 'Sojourner Truth', 'Roberto Clemente',
  'Bayside', 'Fort Hamilton', 'Jackson Heights', 'Frederick Douglass', 'Eleanor Roosevelt',
  'Sunset Park', 'Mott Haven', 'Chinatown (中文)', 'Union Square', 'Zoë Baird', 'Forest Hills',
  'Pelham Bay', 'Dyker Heights']) AS v;
CREATE TEMP TABLE school_kinds(n int, v text);
INSERT INTO school_kinds
SELECT row_number() OVER () - 1, v FROM unnest(ARRAY[
  'Elementary School', 'Middle School', 'High School', 'Academy', 'Early Learning Center',
  'Preparatory School, Upper', 'School of the Arts', 'Intermediate School', 'Community School',
  'Collegiate Institute – STEM']) AS v;
-- Course codes and names; index 39 (HR) and roughly 1% of the others have no name.
CREATE TEMP TABLE course_list(n int, code text, name text);
INSERT INTO course_list
SELECT row_number() OVER () - 1, c[1], c[2] FROM (VALUES
  (ARRAY['ENG', 'English Language Arts']), (ARRAY['MATH', 'Mathematics']),
  (ARRAY['ALG1', 'Algebra I']), (ARRAY['GEOM', 'Geometry']), (ARRAY['BIO', 'Biology']),
  (ARRAY['CHEM', 'Chemistry']), (ARRAY['PHYS', 'Physics']), (ARRAY['ESCI', 'Earth Science']),
  (ARRAY['USHIST', 'History: U.S., 1865–Present']), (ARRAY['GLOB', 'Global History & Geography']),
  (ARRAY['GOV', 'Government, Economics']), (ARRAY['SPAN1', 'Español I']),
  (ARRAY['SPAN2', 'Español II']), (ARRAY['FR1', 'Français I']), (ARRAY['FR2', 'Français II']),
  (ARRAY['MAND', 'Mandarin 中文']), (ARRAY['ART', 'Visual Arts']), (ARRAY['MUS', 'Music: Band']),
  (ARRAY['CHOR', 'Chorus']), (ARRAY['PE', 'Physical Education']), (ARRAY['HLTH', 'Health']),
  (ARRAY['CS', 'Computer Science']), (ARRAY['ENL', 'English as a New Language']),
  (ARRAY['READ', 'Reading Workshop']), (ARRAY['WRIT', 'Writers'' Workshop']),
  (ARRAY['LIT', 'Children''s Literature']), (ARRAY['DRAMA', 'Theater "Stage" Arts']),
  (ARRAY['DANCE', 'Dance']), (ARRAY['STAT', 'Statistics']), (ARRAY['CALC', 'AP Calculus AB']),
  (ARRAY['APUSH', 'AP U.S. History']), (ARRAY['APBIO', 'AP Biology']),
  (ARRAY['ECON', 'Economics']), (ARRAY['PSY', 'Psychology']),
  (ARRAY['TECH', 'Technology & Design']), (ARRAY['LIB', 'Library']),
  (ARRAY['ADV', 'Advisory']), (ARRAY['SCI', 'General Science']),
  (ARRAY['SS', 'Social Studies']), (ARRAY['HR', NULL])) AS t(c);
SELECT count(*) AS n_courses FROM course_list \gset
SELECT count(*) AS n_first FROM first_names \gset
SELECT count(*) AS n_last FROM last_names \gset
SELECT count(*) AS n_places FROM places \gset
SELECT count(*) AS n_kinds FROM school_kinds \gset

-- The two big tables are loaded without their primary key; it is added back at the end.
ALTER TABLE students DROP CONSTRAINT students_pkey;
ALTER TABLE section_enrollments DROP CONSTRAINT section_enrollments_pkey;

\echo schools
INSERT INTO schools (school_code, school_name, is_active)
SELECT pg_temp.school_code(sn),
       CASE WHEN sn % 3 = 0 THEN 'P.S. ' || sn || ' ' || p.v ELSE p.v || ' ' || k.v END,
       sn <= :n_schools
FROM generate_series(1, :n_schools + :n_closed) AS sn
JOIN places p ON p.n = pg_temp.h(sn, 1) % :n_places
JOIN school_kinds k ON k.n = pg_temp.h(sn, 2) % :n_kinds;

\echo students
-- Students 1..n_students are active, the next n_inactive inactive. Student i belongs to school
-- 1 + i % n_schools.
INSERT INTO students (student_number, school_code, first_name, last_name, email, web_password,
                      grade_level, enroll_status, entry_date)
SELECT pg_temp.student_number(i),
       pg_temp.school_code(1 + (i % :n_schools)::int),
       nm.fa[1 + pg_temp.h(i, 11) % :n_first],
       nm.la[1 + pg_temp.h(i, 12) % :n_last],
       CASE WHEN h % 100 = 0 THEN NULL
            WHEN h % 200 = 1 THEN 'S' || pg_temp.student_number(i) || '@Bench.K12.Example'
            ELSE 's' || pg_temp.student_number(i) || '@bench.k12.example' END,
       CASE WHEN h % 50 = 3 THEN NULL ELSE 'Pw-' || to_hex(pg_temp.h(i, 5)) END,
       CASE WHEN h % 100 = 7 THEN NULL ELSE (h / 100) % 13 END,
       CASE WHEN i > :n_students THEN 'I' ELSE 'A' END,
       CASE WHEN h % 100 = 7 THEN NULL ELSE DATE '2014-09-02' + ((h / 1000) % 4000)::int END
FROM (SELECT i, pg_temp.h(i, 3) AS h FROM generate_series(1, :n_students + :n_inactive) AS i) AS s
CROSS JOIN (SELECT (SELECT array_agg(v ORDER BY n) FROM first_names) AS fa,
                   (SELECT array_agg(v ORDER BY n) FROM last_names) AS la) AS nm;

\echo staff
-- Staff t (0-based) has staff_id 100000 + t and home school 1 + t % n_schools.
INSERT INTO staff (staff_id, first_name, last_name, email, web_password, is_active)
SELECT 100000 + t,
       nm.fa[1 + pg_temp.h(t, 21) % :n_first],
       nm.la[1 + pg_temp.h(t, 22) % :n_last],
       CASE WHEN t % 97 = 5 THEN NULL ELSE 't' || (100000 + t) || '@bench.k12.example' END,
       CASE WHEN t % 61 = 2 THEN NULL ELSE 'Tw-' || to_hex(pg_temp.h(t, 6)) END,
       t % 50 <> 17
FROM generate_series(0, :n_staff - 1) AS t
CROSS JOIN (SELECT (SELECT array_agg(v ORDER BY n) FROM first_names) AS fa,
                   (SELECT array_agg(v ORDER BY n) FROM last_names) AS la) AS nm;

INSERT INTO staff_schools (staff_id, school_code)
SELECT 100000 + t, pg_temp.school_code(1 + t % :n_schools)
FROM generate_series(0, :n_staff - 1) AS t
UNION ALL -- 10% teach in a second school
SELECT 100000 + t, pg_temp.school_code(1 + (t + 1) % :n_schools)
FROM generate_series(0, :n_staff - 1) AS t WHERE t % 10 = 3
UNION ALL -- 0.5% are still assigned to a closed school (the exporter drops those rows)
SELECT 100000 + t, pg_temp.school_code(:n_schools + 1 + t % :n_closed)
FROM generate_series(0, :n_staff - 1) AS t WHERE t % 200 = 7;

\echo courses and sections
-- Section g (0-based): school s = g % n_schools, number L = g / n_schools within the school,
-- course L % n_courses, section code L / n_courses + 1 (two digits). Its teacher is a teacher of
-- the same school: staff index (L % teachers_of_s) * n_schools + s; 1% have none.
INSERT INTO courses (school_code, course_code, course_name)
SELECT pg_temp.school_code(1 + s), c.code,
       CASE WHEN pg_temp.h(s * 64 + c.n, 7) % 100 = 0 THEN NULL ELSE c.name END
FROM generate_series(0, :n_schools - 1) AS s
JOIN course_list c ON c.n < least(:n_courses, pg_temp.per_school(:n_sections, :n_schools, s));

INSERT INTO sections (school_code, course_code, section_code, staff_id, term_start, term_end)
SELECT pg_temp.school_code(1 + s), cl.codes[1 + l % :n_courses], lpad((l / :n_courses + 1)::text, 2, '0'),
       CASE WHEN g % 100 = 37 THEN NULL
            ELSE 100000 + (l % pg_temp.per_school(:n_staff, :n_schools, s)) * :n_schools + s END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE DATE '2025-09-04' END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE DATE '2026-06-26' END
FROM (SELECT g, g % :n_schools AS s, g / :n_schools AS l
      FROM generate_series(0, :n_sections - 1) AS g) AS x
CROSS JOIN (SELECT array_agg(code ORDER BY n) AS codes FROM course_list) AS cl;

\echo enrollments
-- Rows are inserted student by student (as a SIS schedules them), so a sequential scan returns
-- each student's enrollments together; the student numbers themselves are not in order.
-- Active student i: 7 + i % 2 consecutive sections of its school from a pseudo-random start
-- (7.5 on average, all distinct courses), plus for 2% one more that is marked dropped, plus for
-- 0.1% one naming a section that does not exist. Inactive students: half keep 2 live enrollments.
INSERT INTO section_enrollments (student_number, school_code, course_code, section_code,
                                 entry_date, is_dropped)
SELECT pg_temp.student_number(i), pg_temp.school_code(1 + s), cl.codes[1 + e.l % :n_courses],
       CASE WHEN k = 99 THEN '99' ELSE lpad((l / :n_courses + 1)::text, 2, '0') END,
       DATE '2025-09-04' + (i % 5)::int,
       k >= 7 + (i % 2) AND k <> 99
FROM (SELECT i, s, k, (start + (CASE WHEN k = 99 THEN 0 ELSE k END)) % m AS l
      FROM (SELECT i, (i % :n_schools)::int AS s,
                   pg_temp.per_school(:n_sections, :n_schools, (i % :n_schools)::int) AS m,
                   pg_temp.h(i, 4) AS start
            FROM generate_series(1, :n_students + :n_inactive) AS i) AS st
      CROSS JOIN LATERAL (
          SELECT k FROM generate_series(0,
                   CASE WHEN i > :n_students THEN (CASE WHEN i % 2 = 0 THEN 1 ELSE -1 END)
                        WHEN i % 50 = 0 THEN 7 + (i % 2)::int
                        ELSE 6 + (i % 2)::int END) AS k
          UNION ALL
          SELECT 99 WHERE i <= :n_students AND i % 1000 = 0) AS ks) AS e
CROSS JOIN (SELECT array_agg(code ORDER BY n) AS codes FROM course_list) AS cl;

\echo primary keys
ALTER TABLE students ADD CONSTRAINT students_pkey PRIMARY KEY (student_number);
ALTER TABLE section_enrollments ADD CONSTRAINT section_enrollments_pkey
    PRIMARY KEY (student_number, school_code, course_code, section_code);

\echo vacuum analyze
-- Sets hint bits and the visibility map now, so the first timed read does not write pages.
VACUUM (FREEZE, ANALYZE);
