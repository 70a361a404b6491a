-- sds-sync reference SIS schema: PostgreSQL.
--
-- A small, made-up student information system that the default queries of sds-sync read
-- (crates/source/src/queries.rs). The column types are deliberately varied (CHAR, VARCHAR,
-- NUMERIC, INTEGER, BOOLEAN, DATE, TIMESTAMP) so that the source has to turn each of them into text.
--
-- There are no foreign keys on purpose: real SIS databases hold rows that point at closed
-- schools or retired staff, and the exporter has to find and count those itself.
--
-- The same tables exist in schema-sqlite.sql and schema-mysql.sql.
-- Load into an empty, UTF8-encoded database (see README.md in this folder).

CREATE TABLE schools (
    school_code  CHAR(3)      PRIMARY KEY,
    school_name  VARCHAR(100) NOT NULL,
    is_active    BOOLEAN      NOT NULL,
    -- Optional columns of the full SDS formats (School.csv optional columns), all NULL-able.
    school_number   VARCHAR(10)  NULL,
    nces_id         VARCHAR(12)  NULL,
    state_school_id VARCHAR(12)  NULL,
    low_grade       VARCHAR(2)   NULL,  -- as the SIS spells it (K, 6, 9): sds-sync maps grades
    high_grade      VARCHAR(2)   NULL,
    principal_id    VARCHAR(12) NULL,
    principal_name  VARCHAR(120) NULL,
    principal_email VARCHAR(120) NULL,
    street_address  VARCHAR(120) NULL,
    city            VARCHAR(60)  NULL,
    state_code      CHAR(2)      NULL,
    country         VARCHAR(60)  NULL,
    zip             VARCHAR(10)  NULL,
    phone           VARCHAR(24)  NULL
);

CREATE TABLE students (
    student_number VARCHAR(12)  PRIMARY KEY,
    school_code    CHAR(3)      NOT NULL,
    first_name     VARCHAR(60)  NOT NULL,
    last_name      VARCHAR(60)  NOT NULL,
    email          VARCHAR(120) NULL,
    web_password   VARCHAR(60)  NULL,
    grade_level    NUMERIC(2,0) NULL,
    enroll_status  CHAR(1)      NOT NULL,  -- A = active, I = inactive
    entry_date     DATE         NULL,
    -- Optional columns of the full SDS formats, all NULL-able. birth_date is text on purpose
    -- (some SIS keep dates as text): sds-sync turns the shapes it knows into YYYY-MM-DD.
    middle_name      VARCHAR(60)  NULL,
    state_student_id VARCHAR(12)  NULL,
    birth_date       VARCHAR(10)  NULL,
    graduation_year  SMALLINT     NULL,
    personal_email   VARCHAR(120) NULL,
    phone            VARCHAR(24)  NULL
);

CREATE TABLE staff (
    staff_id     INTEGER      PRIMARY KEY,
    first_name   VARCHAR(60)  NOT NULL,
    last_name    VARCHAR(60)  NOT NULL,
    email        VARCHAR(120) NULL,
    web_password VARCHAR(60)  NULL,
    is_active    BOOLEAN      NOT NULL,
    -- Optional columns of the full SDS formats, all NULL-able.
    middle_name    VARCHAR(60)  NULL,
    state_staff_id VARCHAR(12)  NULL,
    job_title      VARCHAR(60)  NULL,
    qualification  VARCHAR(60)  NULL,
    personal_email VARCHAR(120) NULL,
    phone          VARCHAR(24)  NULL
);

CREATE TABLE staff_schools (
    staff_id    INTEGER NOT NULL,
    school_code CHAR(3) NOT NULL,
    PRIMARY KEY (staff_id, school_code)
);

CREATE TABLE courses (
    school_code CHAR(3)      NOT NULL,
    course_code VARCHAR(12)  NOT NULL,
    course_name VARCHAR(100) NULL,
    -- The full SDS formats: a district-wide course ID (courses.csv sourcedId), the subject,
    -- the grade as the SIS spells it, and the school year (a term_id of type school year).
    course_id   VARCHAR(20) NULL,
    subject     VARCHAR(40)  NULL,
    grade_level VARCHAR(2)   NULL,
    school_year VARCHAR(12) NULL,
    PRIMARY KEY (school_code, course_code)
);

CREATE TABLE sections (
    school_code  CHAR(3)     NOT NULL,
    course_code  VARCHAR(12) NOT NULL,
    section_code VARCHAR(8)  NOT NULL,
    staff_id     INTEGER     NULL,
    term_start   DATE        NULL,
    term_end     DATE        NULL,
    -- The full SDS formats: the section's term (terms.term_id) and its periods.
    term_id      VARCHAR(12) NULL,
    periods      VARCHAR(12) NULL,
    PRIMARY KEY (school_code, course_code, section_code)
);

CREATE TABLE section_enrollments (
    student_number VARCHAR(12) NOT NULL,
    school_code    CHAR(3)     NOT NULL,
    course_code    VARCHAR(12) NOT NULL,
    section_code   VARCHAR(8)  NOT NULL,
    entry_date     DATE        NULL,
    is_dropped     BOOLEAN     NOT NULL,
    PRIMARY KEY (student_number, school_code, course_code, section_code)
);

-- Terms (academic sessions of the full SDS formats): school years, semesters, grading periods.
-- term_type is spelled as people type it (School Year, SEMESTER, grading_period): sds-sync
-- writes Microsoft's values (schoolYear, semester, gradingPeriod). end_date is a timestamp on
-- purpose: sds-sync writes any date or timestamp as YYYY-MM-DD.
CREATE TABLE terms (
    term_id        VARCHAR(12) PRIMARY KEY,
    term_name      VARCHAR(60) NOT NULL,
    term_type      VARCHAR(20) NOT NULL,
    school_year    VARCHAR(4)  NOT NULL,
    start_date     DATE        NOT NULL,
    end_date       TIMESTAMP   NOT NULL,
    parent_term_id VARCHAR(12) NULL,
    is_active      BOOLEAN     NOT NULL
);

-- Guardians (parents and other contacts) and which students they are guardians of.
CREATE TABLE guardians (
    guardian_id VARCHAR(12) PRIMARY KEY,
    first_name  VARCHAR(60)  NOT NULL,
    last_name   VARCHAR(60)  NOT NULL,
    email       VARCHAR(120) NULL,
    phone       VARCHAR(24)  NULL
);

CREATE TABLE student_guardians (
    student_number VARCHAR(12) NOT NULL,
    guardian_id    VARCHAR(12) NOT NULL,
    relationship   VARCHAR(20) NULL,  -- Parent, Guardian, Grandparent, ...; NULL for unknown
    PRIMARY KEY (student_number, guardian_id)
);
