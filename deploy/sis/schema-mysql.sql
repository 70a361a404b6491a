-- sds-sync reference SIS schema: MySQL and MariaDB.
--
-- A small, made-up student information system that the default queries of sds-sync read
-- (crates/source/src/queries.rs). The column types are deliberately varied (CHAR, VARCHAR,
-- NUMERIC, INTEGER, BOOLEAN, DATE) so that the source has to turn each of them into text.
--
-- There are no foreign keys on purpose: real SIS databases hold rows that point at closed
-- schools or retired staff, and the exporter has to find and count those itself.
--
-- The same tables exist in schema-postgres.sql and schema-sqlite.sql. Differences from them:
-- BOOLEAN is TINYINT(1) and NUMERIC is DECIMAL here (MySQL does that itself), and every table
-- uses utf8mb4 with the binary collation utf8mb4_bin, so that IDs compare case-sensitively
-- (SDS matches IDs case-sensitively) and names keep every character.
-- Load into an empty database (see README.md in this folder).

CREATE TABLE schools (
    school_code  CHAR(3)      PRIMARY KEY,
    school_name  VARCHAR(100) NOT NULL,
    is_active    BOOLEAN      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE students (
    student_number VARCHAR(12)  PRIMARY KEY,
    school_code    CHAR(3)      NOT NULL,
    first_name     VARCHAR(60)  NOT NULL,
    last_name      VARCHAR(60)  NOT NULL,
    email          VARCHAR(120) NULL,
    web_password   VARCHAR(60)  NULL,
    grade_level    NUMERIC(2,0) NULL,
    enroll_status  CHAR(1)      NOT NULL,  -- A = active, I = inactive
    entry_date     DATE         NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE staff (
    staff_id     INTEGER      PRIMARY KEY,
    first_name   VARCHAR(60)  NOT NULL,
    last_name    VARCHAR(60)  NOT NULL,
    email        VARCHAR(120) NULL,
    web_password VARCHAR(60)  NULL,
    is_active    BOOLEAN      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE staff_schools (
    staff_id    INTEGER NOT NULL,
    school_code CHAR(3) NOT NULL,
    PRIMARY KEY (staff_id, school_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE courses (
    school_code CHAR(3)      NOT NULL,
    course_code VARCHAR(12)  NOT NULL,
    course_name VARCHAR(100) NULL,
    PRIMARY KEY (school_code, course_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE sections (
    school_code  CHAR(3)     NOT NULL,
    course_code  VARCHAR(12) NOT NULL,
    section_code VARCHAR(8)  NOT NULL,
    staff_id     INTEGER     NULL,
    term_start   DATE        NULL,
    term_end     DATE        NULL,
    PRIMARY KEY (school_code, course_code, section_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE section_enrollments (
    student_number VARCHAR(12) NOT NULL,
    school_code    CHAR(3)     NOT NULL,
    course_code    VARCHAR(12) NOT NULL,
    section_code   VARCHAR(8)  NOT NULL,
    entry_date     DATE        NULL,
    is_dropped     BOOLEAN     NOT NULL,
    PRIMARY KEY (student_number, school_code, course_code, section_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;
