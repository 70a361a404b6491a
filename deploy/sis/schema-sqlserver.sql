-- sds-sync reference SIS schema: Microsoft SQL Server (T-SQL), read through ODBC.
--
-- A small, made-up student information system that the example T-SQL queries in
-- docs/configuration.md ("ODBC: SQL Server, Oracle and others") read. The column types are
-- deliberately varied (CHAR, VARCHAR, NVARCHAR, NUMERIC, INTEGER, BIT, DATE) so that the source
-- has to turn each of them into text.
--
-- There are no foreign keys on purpose: real SIS databases hold rows that point at closed
-- schools or retired staff, and the exporter has to find and count those itself.
--
-- The same tables exist in schema-postgres.sql, schema-mysql.sql and schema-sqlite.sql; keep
-- them in step. Differences from them: BOOLEAN is BIT (T-SQL has no boolean type, and no TRUE
-- or FALSE literal: compare with 1 and 0), names, e-mail addresses and passwords are NVARCHAR
-- (UTF-16: every character kept on any collation), and IDs and codes use a binary collation so
-- that they compare case-sensitively, as SDS matches IDs.
--
-- Not tested by the project's CI (no SQL Server there). demo-data.sql does not load unchanged:
-- replace TRUE and FALSE by 1 and 0 and prefix the string literals of the NVARCHAR columns
-- with N (N'Zoë').
-- Load into an empty database.

CREATE TABLE schools (
    school_code  CHAR(3) COLLATE Latin1_General_100_BIN2 PRIMARY KEY,
    school_name  NVARCHAR(100) NOT NULL,
    is_active    BIT           NOT NULL
);

CREATE TABLE students (
    student_number VARCHAR(12) COLLATE Latin1_General_100_BIN2 PRIMARY KEY,
    school_code    CHAR(3) COLLATE Latin1_General_100_BIN2 NOT NULL,
    first_name     NVARCHAR(60)  NOT NULL,
    last_name      NVARCHAR(60)  NOT NULL,
    email          NVARCHAR(120) NULL,
    web_password   NVARCHAR(60)  NULL,
    grade_level    NUMERIC(2,0)  NULL,
    enroll_status  CHAR(1) COLLATE Latin1_General_100_BIN2 NOT NULL,  -- A = active, I = inactive
    entry_date     DATE          NULL
);

CREATE TABLE staff (
    staff_id     INTEGER       PRIMARY KEY,
    first_name   NVARCHAR(60)  NOT NULL,
    last_name    NVARCHAR(60)  NOT NULL,
    email        NVARCHAR(120) NULL,
    web_password NVARCHAR(60)  NULL,
    is_active    BIT           NOT NULL
);

CREATE TABLE staff_schools (
    staff_id    INTEGER NOT NULL,
    school_code CHAR(3) COLLATE Latin1_General_100_BIN2 NOT NULL,
    PRIMARY KEY (staff_id, school_code)
);

CREATE TABLE courses (
    school_code CHAR(3) COLLATE Latin1_General_100_BIN2 NOT NULL,
    course_code VARCHAR(12) COLLATE Latin1_General_100_BIN2 NOT NULL,
    course_name NVARCHAR(100) NULL,
    PRIMARY KEY (school_code, course_code)
);

CREATE TABLE sections (
    school_code  CHAR(3) COLLATE Latin1_General_100_BIN2 NOT NULL,
    course_code  VARCHAR(12) COLLATE Latin1_General_100_BIN2 NOT NULL,
    section_code VARCHAR(8) COLLATE Latin1_General_100_BIN2 NOT NULL,
    staff_id     INTEGER     NULL,
    term_start   DATE        NULL,
    term_end     DATE        NULL,
    PRIMARY KEY (school_code, course_code, section_code)
);

CREATE TABLE section_enrollments (
    student_number VARCHAR(12) COLLATE Latin1_General_100_BIN2 NOT NULL,
    school_code    CHAR(3) COLLATE Latin1_General_100_BIN2 NOT NULL,
    course_code    VARCHAR(12) COLLATE Latin1_General_100_BIN2 NOT NULL,
    section_code   VARCHAR(8) COLLATE Latin1_General_100_BIN2 NOT NULL,
    entry_date     DATE        NULL,
    is_dropped     BIT         NOT NULL,
    PRIMARY KEY (student_number, school_code, course_code, section_code)
);
