-- sds-sync demo data for the reference SIS schema (schema-*.sql in this folder).
--
-- One file for PostgreSQL, MySQL/MariaDB and SQLite alike: standard string literals (a quote
-- inside a string is doubled), no backslashes, TRUE and FALSE for booleans, dates as
-- YYYY-MM-DD text, UTF-8 characters written as they are. Load it after the schema, into empty
-- tables, with the client set to UTF-8 (see README.md in this folder).
--
-- All names, e-mail addresses and passwords are made up. E-mail uses the reserved example
-- domain demo.k12.example.
--
-- The hard cases the exporter must handle each have a comment starting with HARD CASE.
-- README.md in this folder lists them with the rows that carry them.

-- ---------------------------------------------------------------------------------------------
-- Schools
-- ---------------------------------------------------------------------------------------------
-- HARD CASE: leading-zero school codes. 001 is not 1.
-- HARD CASE: school 099 is closed (is_active FALSE), but staff assignments and a section still
-- point at it, so those rows come back from the default queries and the exporter must drop them.
-- School 003 is active: the demo config may leave it out of the selected schools.
INSERT INTO schools (school_code, school_name, is_active) VALUES
('001', 'Harbor View Middle School', TRUE),
('002', 'Northgate High School', TRUE),
('003', 'Cedar Ridge Elementary', TRUE),
('099', 'Old Mill Annex (closed)', FALSE);

-- ---------------------------------------------------------------------------------------------
-- Students
-- ---------------------------------------------------------------------------------------------
-- HARD CASE: leading-zero student numbers throughout (000123, and 000007 which is not 7).
INSERT INTO students (student_number, school_code, first_name, last_name, email, web_password, grade_level, enroll_status, entry_date) VALUES
-- HARD CASE: accents in a first name (José).
('000123', '001', 'José', 'Alvarez', 'jose.alvarez@demo.k12.example', 'Welcome-2026!', 7, 'A', '2024-08-26'),
-- HARD CASE: accents in both names (Zoë Ørsted).
('000124', '001', 'Zoë', 'Ørsted', 'zoe.orsted@demo.k12.example', 'Welcome-2026!', 7, 'A', '2024-08-26'),
-- HARD CASE: apostrophe in a last name (the literal doubles it).
('000125', '001', 'Liam', 'O''Brien', 'liam.obrien@demo.k12.example', 'Harbor-7731!', 8, 'A', '2023-08-28'),
-- HARD CASE: double quotes in a first name (a nickname).
('000126', '001', 'Robert "Bobby"', 'Chen', 'robert.chen@demo.k12.example', 'Tide-4410!', 7, 'A', '2024-08-26'),
-- HARD CASE: comma in a last name.
('000127', '001', 'Marcus', 'Reyes, Jr.', 'marcus.reyes@demo.k12.example', 'Anchor-2290!', 8, 'A', '2023-08-28'),
-- HARD CASE: a line break inside a first name (pasted into the SIS). The string literal below
-- holds a real newline between Mary and Kate.
('000128', '001', 'Mary
Kate', 'Sullivan', 'marykate.sullivan@demo.k12.example', 'Welcome-2026!', 7, 'A', '2024-08-26'),
-- HARD CASE: mixed-case e-mail address (usernames are derived from it).
('000129', '001', 'Ava', 'Martinez', 'Ava.Martinez@Demo.K12.Example', 'Welcome-2026!', 7, 'A', '2024-08-26'),
-- HARD CASE: student without an e-mail address (NULL), so no username can be derived.
('000130', '001', 'Noah', 'Patel', NULL, 'Welcome-2026!', 8, 'A', '2023-08-28'),
-- HARD CASE: inactive student (enroll_status I) who still has a non-dropped enrollment
-- (MATH7-01 below). The students query leaves the student out, the enrollments query does not.
('000131', '001', 'Ethan', 'Brooks', 'ethan.brooks@demo.k12.example', 'Welcome-2026!', 8, 'I', '2023-08-28'),
('000132', '001', 'Chloe', 'Kim', 'chloe.kim@demo.k12.example', 'Lantern-5127!', 6, 'A', '2025-08-25'),
('000133', '001', 'Lucas', 'Nguyen', 'lucas.nguyen@demo.k12.example', 'Welcome-2026!', 6, 'A', '2025-08-25'),
('000134', '001', 'Sofia', 'Rossi', 'sofia.rossi@demo.k12.example', 'Welcome-2026!', 8, 'A', '2023-08-28'),
-- HARD CASE: student with no grade level and no entry date (both NULL).
('000135', '001', 'Oliver', 'Haddad', 'oliver.haddad@demo.k12.example', 'Welcome-2026!', NULL, 'A', NULL),
('004501', '002', 'Amara', 'Okafor', 'amara.okafor@demo.k12.example', 'Welcome-2026!', 9, 'A', '2025-08-25'),
('004502', '002', 'Benjamin', 'Müller', 'benjamin.mueller@demo.k12.example', 'North-3318!', 10, 'A', '2024-08-26'),
('004503', '002', 'Chiara', 'Bianchi', 'chiara.bianchi@demo.k12.example', 'Welcome-2026!', 11, 'A', '2023-08-28'),
('004504', '002', 'Daniel', 'Kowalski', 'daniel.kowalski@demo.k12.example', 'Welcome-2026!', 12, 'A', '2022-08-29'),
('004505', '002', 'Elif', 'Yılmaz', 'elif.yilmaz@demo.k12.example', 'Compass-6042!', 9, 'A', '2025-08-25'),
('004506', '002', 'Finn', 'Andersen', 'finn.andersen@demo.k12.example', 'Welcome-2026!', 10, 'A', '2024-08-26'),
('004507', '002', 'Grace', 'Thompson', 'grace.thompson@demo.k12.example', 'Welcome-2026!', 11, 'A', '2023-08-28'),
('004508', '002', 'Hiroshi', 'Tanaka', 'hiroshi.tanaka@demo.k12.example', 'Summit-9185!', 12, 'A', '2022-08-29'),
('004509', '002', 'Isabella', 'Fernández', 'isabella.fernandez@demo.k12.example', 'Welcome-2026!', 9, 'A', '2025-08-25'),
('004510', '002', 'Jack', 'Wilson', 'jack.wilson@demo.k12.example', 'Welcome-2026!', 10, 'A', '2024-08-26'),
('004511', '002', 'Kaia', 'Begay', 'kaia.begay@demo.k12.example', 'Mesa-1276!', 11, 'A', '2023-08-28'),
('004512', '002', 'Leo', 'Dubois', 'leo.dubois@demo.k12.example', 'Welcome-2026!', 12, 'A', '2022-08-29'),
-- HARD CASE: inactive student (withdrew) with no enrollments at all.
('004513', '002', 'Mia', 'Johansson', 'mia.johansson@demo.k12.example', 'Welcome-2026!', 10, 'I', '2024-08-26'),
-- HARD CASE: student without a password (NULL web_password).
('004514', '002', 'Nora', 'Fitzgerald', 'nora.fitzgerald@demo.k12.example', NULL, 9, 'A', '2025-08-25'),
('004515', '002', 'Omar', 'Haddad', 'omar.haddad@demo.k12.example', 'Welcome-2026!', 11, 'A', '2023-08-28'),
('007001', '003', 'Penelope', 'Clarke', 'penelope.clarke@demo.k12.example', 'Cedar-2026!', 4, 'A', '2022-08-29'),
('007002', '003', 'Quinn', 'Morales', 'quinn.morales@demo.k12.example', 'Cedar-2026!', 4, 'A', '2022-08-29'),
-- HARD CASE: trailing space in a last name (the exporter trims values).
('007003', '003', 'Ruby', 'Stewart ', 'ruby.stewart@demo.k12.example', 'Cedar-2026!', 4, 'A', '2022-08-29'),
('007004', '003', 'Samuel', 'Lee', 'samuel.lee@demo.k12.example', 'Cedar-2026!', 4, 'A', '2022-08-29'),
('000007', '003', 'Tessa', 'Novak', 'tessa.novak@demo.k12.example', 'Cedar-2026!', 4, 'A', '2025-01-06');

-- ---------------------------------------------------------------------------------------------
-- Staff and their schools
-- ---------------------------------------------------------------------------------------------
INSERT INTO staff (staff_id, first_name, last_name, email, web_password, is_active) VALUES
(1001, 'Helen', 'Carter', 'h.carter@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
(1002, 'David', 'Moreau', 'd.moreau@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
-- HARD CASE: teacher with accents and an apostrophe, assigned to two schools (001 and 002).
(1003, 'Siobhán', 'O''Connell', 's.oconnell@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
(1004, 'Rajesh', 'Iyer', 'r.iyer@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
(1005, 'Karen', 'Lindqvist', 'k.lindqvist@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
-- HARD CASE: teacher without a password (NULL web_password).
(1006, 'Marcus', 'Webb', 'm.webb@demo.k12.example', NULL, TRUE),
(1007, 'Ingrid', 'Sørensen', 'i.sorensen@demo.k12.example', 'Staff-Welcome-2026!', TRUE),
-- HARD CASE: inactive (retired) teacher who is still the teacher of section FR2-01.
(1008, 'Thomas', 'Baker', 't.baker@demo.k12.example', 'Staff-Welcome-2026!', FALSE);

INSERT INTO staff_schools (staff_id, school_code) VALUES
(1001, '001'),
-- HARD CASE: active teacher still assigned to the closed school 099 (and to 001).
(1002, '001'),
(1002, '099'),
-- HARD CASE: teacher assigned to two schools: one teachers row for each.
(1003, '001'),
(1003, '002'),
(1004, '001'),
(1005, '002'),
(1006, '002'),
(1007, '003'),
(1008, '002');

-- ---------------------------------------------------------------------------------------------
-- Courses and sections
-- ---------------------------------------------------------------------------------------------
INSERT INTO courses (school_code, course_code, course_name) VALUES
('001', 'MATH7', 'Mathematics 7'),
('001', 'ENG7', 'English Language Arts 7'),
('001', 'SCI8', 'Science 8'),
-- HARD CASE: course with no name (NULL), so its section has no Section Name.
('001', 'HR', NULL),
('002', 'ALG1', 'Algebra I'),
('002', 'BIO', 'Biology'),
('002', 'ENG10', 'English 10'),
-- HARD CASE: course name with a comma and a non-ASCII dash.
('002', 'USHIST', 'History: U.S., 1865–Present'),
('002', 'FR2', 'French II'),
('003', 'GR4', 'Grade 4 Homeroom'),
('099', 'WOOD', 'Woodworking');

-- Section codes with leading zeros (01) are part of the section ID 001-MATH7-01.
INSERT INTO sections (school_code, course_code, section_code, staff_id, term_start, term_end) VALUES
('001', 'MATH7', '01', 1001, '2025-08-25', '2026-06-12'),
('001', 'MATH7', '02', 1002, '2025-08-25', '2026-06-12'),
('001', 'ENG7', '01', 1003, '2025-08-25', '2026-06-12'),
('001', 'SCI8', '01', 1004, '2025-08-25', '2026-06-12'),
-- HARD CASE: section of the course without a name, and without term dates.
('001', 'HR', '7A', 1001, NULL, NULL),
('002', 'ALG1', '01', 1005, '2025-08-25', '2026-06-12'),
('002', 'BIO', '01', 1006, '2025-08-25', '2026-06-12'),
-- HARD CASE: the two-school teacher 1003 teaches here too.
('002', 'ENG10', '01', 1003, '2025-08-25', '2026-06-12'),
-- HARD CASE: section with no teacher (NULL staff_id), so no roster row.
('002', 'USHIST', '01', NULL, '2025-08-25', '2026-06-12'),
-- HARD CASE: section taught by the inactive teacher 1008.
('002', 'FR2', '01', 1008, '2025-08-25', '2026-06-12'),
('003', 'GR4', '01', 1007, '2025-08-25', '2026-06-12'),
-- HARD CASE: old section of the closed school 099, still in the table.
('099', 'WOOD', '01', 1002, '2019-08-26', '2020-06-12');

-- ---------------------------------------------------------------------------------------------
-- Section enrollments
-- ---------------------------------------------------------------------------------------------
INSERT INTO section_enrollments (student_number, school_code, course_code, section_code, entry_date, is_dropped) VALUES
('000123', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000123', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000123', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000123', '001', 'HR', '7A', '2025-08-25', FALSE),
('000124', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000124', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000124', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000124', '001', 'HR', '7A', '2025-08-25', FALSE),
('000125', '001', 'MATH7', '02', '2025-08-25', FALSE),
('000125', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000125', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000126', '001', 'MATH7', '02', '2025-08-25', FALSE),
('000126', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000126', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000126', '001', 'HR', '7A', '2025-08-25', FALSE),
('000127', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000127', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000127', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000128', '001', 'MATH7', '02', '2025-08-25', FALSE),
('000128', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000128', '001', 'HR', '7A', '2025-08-25', FALSE),
('000129', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000129', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000129', '001', 'SCI8', '01', '2025-08-25', FALSE),
('000130', '001', 'MATH7', '02', '2025-08-25', FALSE),
('000130', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000130', '001', 'SCI8', '01', '2025-08-25', FALSE),
-- HARD CASE: enrollment of the inactive student 000131, not dropped in the SIS.
('000131', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000132', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000132', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000132', '001', 'HR', '7A', '2025-08-25', FALSE),
('000133', '001', 'MATH7', '02', '2025-08-25', FALSE),
('000133', '001', 'ENG7', '01', '2025-08-25', FALSE),
-- HARD CASE: dropped enrollment (is_dropped TRUE), left out by the default query.
('000133', '001', 'SCI8', '01', '2025-08-25', TRUE),
('000134', '001', 'MATH7', '01', '2025-08-25', FALSE),
('000134', '001', 'ENG7', '01', '2025-08-25', FALSE),
('000134', '001', 'SCI8', '01', '2025-08-25', FALSE),
-- Enrollments without an entry date (NULL).
('000135', '001', 'MATH7', '02', NULL, FALSE),
('000135', '001', 'ENG7', '01', NULL, FALSE),
('004501', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004501', '002', 'BIO', '01', '2025-08-25', FALSE),
('004501', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004501', '002', 'FR2', '01', '2025-08-25', FALSE),
('004502', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004502', '002', 'BIO', '01', '2025-08-25', FALSE),
('004502', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004502', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004503', '002', 'BIO', '01', '2025-08-25', FALSE),
('004503', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004503', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004503', '002', 'FR2', '01', '2025-08-25', FALSE),
('004504', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004504', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004505', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004505', '002', 'BIO', '01', '2025-08-25', FALSE),
('004505', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004506', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004506', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004506', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004506', '002', 'FR2', '01', '2025-08-25', FALSE),
('004507', '002', 'BIO', '01', '2025-08-25', FALSE),
('004507', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004507', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004508', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004508', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004508', '002', 'FR2', '01', '2025-08-25', FALSE),
('004509', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004509', '002', 'BIO', '01', '2025-08-25', FALSE),
('004509', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004510', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004510', '002', 'BIO', '01', '2025-08-25', FALSE),
('004510', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004510', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004511', '002', 'BIO', '01', '2025-08-25', FALSE),
('004511', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004511', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004511', '002', 'FR2', '01', '2025-08-25', FALSE),
('004512', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004512', '002', 'USHIST', '01', '2025-08-25', FALSE),
('004514', '002', 'ALG1', '01', '2025-09-15', FALSE),
('004514', '002', 'BIO', '01', '2025-09-15', FALSE),
('004514', '002', 'ENG10', '01', '2025-09-15', FALSE),
('004515', '002', 'ALG1', '01', '2025-08-25', FALSE),
('004515', '002', 'ENG10', '01', '2025-08-25', FALSE),
('004515', '002', 'FR2', '01', '2025-08-25', FALSE),
('007001', '003', 'GR4', '01', '2025-08-25', FALSE),
('007002', '003', 'GR4', '01', '2025-08-25', FALSE),
('007003', '003', 'GR4', '01', '2025-08-25', FALSE),
('007004', '003', 'GR4', '01', '2025-08-25', FALSE),
('000007', '003', 'GR4', '01', '2025-08-25', FALSE);

-- ---------------------------------------------------------------------------------------------
-- The full SDS formats: optional columns, terms, district-wide course IDs, guardians
-- ---------------------------------------------------------------------------------------------
-- Everything below only fills columns and tables the six core queries do not need: with the
-- keys of the full formats left out of the config, the exported files are the same as without
-- it. README.md in this folder lists what each hard case is for.

-- HARD CASE: school grade ranges as the SIS spells them (6, 9, K), not Microsoft's codes (06,
-- 09, kg): [export.grade_map] maps them. 002's address has a comma; 003 has no NCES ID and no
-- principal (NULLs in optional columns).
UPDATE schools SET school_number = 'HV01', nces_id = '530000100001', state_school_id = 'WA-1001',
    low_grade = '6', high_grade = '8', principal_id = 'P2001', principal_name = 'Patricia Gomez',
    principal_email = 'p.gomez@demo.k12.example', street_address = '100 Harbor Way',
    city = 'Port Demo', state_code = 'WA', country = 'US', zip = '98001', phone = '+1 555 0100'
WHERE school_code = '001';
UPDATE schools SET school_number = 'NG02', nces_id = '530000100002', state_school_id = 'WA-1002',
    low_grade = '9', high_grade = '12', principal_id = 'P2002', principal_name = 'Samuel Okoye',
    principal_email = 's.okoye@demo.k12.example', street_address = '2200 North Ave, Suite 4',
    city = 'Port Demo', state_code = 'WA', country = 'US', zip = '98002', phone = '+1 555 0200'
WHERE school_code = '002';
UPDATE schools SET school_number = 'CR03', state_school_id = 'WA-1003', low_grade = 'K',
    high_grade = '5', street_address = '31 Cedar Ridge Rd', city = 'Cedar', state_code = 'WA',
    country = 'US', zip = '98003', phone = '+1 555 0300'
WHERE school_code = '003';
UPDATE schools SET school_number = 'OM99', low_grade = '9', high_grade = '12'
WHERE school_code = '099';

-- Students. State IDs for all; middle names, personal e-mail and phones for some.
-- HARD CASE: birth_date is text (VARCHAR): ISO dates, one in the US order (000125, 3/7/2012)
-- and one that is not a date at all (000126, unknown), which is written blank with a warning.
UPDATE students SET middle_name = 'Luis', state_student_id = 'WA8800123', birth_date = '2013-04-02', graduation_year = 2031, personal_email = 'jose.a@mail.example', phone = '+1 555 0123' WHERE student_number = '000123';
UPDATE students SET state_student_id = 'WA8800124', birth_date = '2013-01-19', graduation_year = 2031 WHERE student_number = '000124';
UPDATE students SET middle_name = 'Patrick', state_student_id = 'WA8800125', birth_date = '3/7/2012', graduation_year = 2030 WHERE student_number = '000125';
UPDATE students SET state_student_id = 'WA8800126', birth_date = 'unknown', graduation_year = 2031 WHERE student_number = '000126';
UPDATE students SET middle_name = 'Antonio', state_student_id = 'WA8800127', birth_date = '2012-06-30', graduation_year = 2030 WHERE student_number = '000127';
UPDATE students SET state_student_id = 'WA8800128', birth_date = '2013-02-14', graduation_year = 2031 WHERE student_number = '000128';
UPDATE students SET middle_name = 'Sofía', state_student_id = 'WA8800129', birth_date = '2013-08-08', graduation_year = 2031, phone = '+1 555 0129' WHERE student_number = '000129';
UPDATE students SET state_student_id = 'WA8800130', birth_date = '2012-11-11', graduation_year = 2030 WHERE student_number = '000130';
UPDATE students SET state_student_id = 'WA8800131', birth_date = '2012-05-05', graduation_year = 2030 WHERE student_number = '000131';
UPDATE students SET state_student_id = 'WA8800132', birth_date = '2014-03-03', graduation_year = 2032 WHERE student_number = '000132';
UPDATE students SET state_student_id = 'WA8800133', birth_date = '2014-09-21', graduation_year = 2032 WHERE student_number = '000133';
UPDATE students SET state_student_id = 'WA8800134', birth_date = '2012-12-01', graduation_year = 2030, personal_email = 'sofia.r@mail.example' WHERE student_number = '000134';
UPDATE students SET state_student_id = 'WA8800135' WHERE student_number = '000135';
UPDATE students SET middle_name = 'Ngozi', state_student_id = 'WA8804501', birth_date = '2010-02-27', graduation_year = 2029 WHERE student_number = '004501';
UPDATE students SET state_student_id = 'WA8804502', birth_date = '2009-07-15', graduation_year = 2028 WHERE student_number = '004502';
UPDATE students SET state_student_id = 'WA8804503', birth_date = '2008-10-10', graduation_year = 2027 WHERE student_number = '004503';
UPDATE students SET state_student_id = 'WA8804504', birth_date = '2007-04-04', graduation_year = 2026, phone = '+1 555 4504' WHERE student_number = '004504';
UPDATE students SET state_student_id = 'WA8804505', birth_date = '2010-01-01', graduation_year = 2029 WHERE student_number = '004505';
UPDATE students SET state_student_id = 'WA8804506', birth_date = '2009-03-17', graduation_year = 2028 WHERE student_number = '004506';
UPDATE students SET middle_name = 'Rose', state_student_id = 'WA8804507', birth_date = '2008-05-20', graduation_year = 2027 WHERE student_number = '004507';
UPDATE students SET state_student_id = 'WA8804508', birth_date = '2007-09-09', graduation_year = 2026 WHERE student_number = '004508';
UPDATE students SET state_student_id = 'WA8804509', birth_date = '2010-06-06', graduation_year = 2029 WHERE student_number = '004509';
UPDATE students SET state_student_id = 'WA8804510', birth_date = '2009-11-30', graduation_year = 2028 WHERE student_number = '004510';
UPDATE students SET state_student_id = 'WA8804511', birth_date = '2008-08-18', graduation_year = 2027, personal_email = 'kaia.b@mail.example' WHERE student_number = '004511';
UPDATE students SET state_student_id = 'WA8804512', birth_date = '2007-12-24', graduation_year = 2026 WHERE student_number = '004512';
UPDATE students SET state_student_id = 'WA8804513', birth_date = '2009-02-02', graduation_year = 2028 WHERE student_number = '004513';
UPDATE students SET state_student_id = 'WA8804514', birth_date = '2010-10-31', graduation_year = 2029 WHERE student_number = '004514';
UPDATE students SET state_student_id = 'WA8804515', birth_date = '2008-04-22', graduation_year = 2027 WHERE student_number = '004515';
UPDATE students SET state_student_id = 'WA8807001', birth_date = '2016-05-12', graduation_year = 2034 WHERE student_number = '007001';
UPDATE students SET state_student_id = 'WA8807002', birth_date = '2016-07-04', graduation_year = 2034 WHERE student_number = '007002';
UPDATE students SET state_student_id = 'WA8807003', birth_date = '2016-01-25', graduation_year = 2034 WHERE student_number = '007003';
UPDATE students SET state_student_id = 'WA8807004', birth_date = '2016-09-13', graduation_year = 2034 WHERE student_number = '007004';
UPDATE students SET state_student_id = 'WA8800007', birth_date = '2016-02-29', graduation_year = 2034 WHERE student_number = '000007';

-- Staff: state certificate IDs, job titles and qualifications; some middle names and phones.
UPDATE staff SET state_staff_id = 'C-51001', job_title = 'Math Teacher', qualification = 'M.Ed.', phone = '+1 555 1001' WHERE staff_id = 1001;
UPDATE staff SET state_staff_id = 'C-51002', job_title = 'Math Teacher', qualification = 'B.Sc.' WHERE staff_id = 1002;
UPDATE staff SET middle_name = 'Máire', state_staff_id = 'C-51003', job_title = 'English Department Head', qualification = 'M.A., English', personal_email = 'siobhan.oc@mail.example' WHERE staff_id = 1003;
UPDATE staff SET state_staff_id = 'C-51004', job_title = 'Science Teacher', qualification = 'Ph.D.' WHERE staff_id = 1004;
UPDATE staff SET state_staff_id = 'C-51005', job_title = 'Math Teacher' WHERE staff_id = 1005;
UPDATE staff SET state_staff_id = 'C-51006', job_title = 'Biology Teacher', qualification = 'B.Sc.' WHERE staff_id = 1006;
UPDATE staff SET middle_name = 'Marie', state_staff_id = 'C-51007', job_title = 'Grade 4 Teacher', qualification = 'B.Ed.', phone = '+1 555 1007' WHERE staff_id = 1007;
UPDATE staff SET state_staff_id = 'C-51008', job_title = 'French Teacher' WHERE staff_id = 1008;

-- Courses: district-wide IDs (courses.csv sourcedId), subjects, grades, the school year.
-- HARD CASE: the course without a name (HR) has no subject and no grade either.
UPDATE courses SET course_id = '001-MATH7', subject = 'Mathematics', grade_level = '7', school_year = 'SY2526' WHERE school_code = '001' AND course_code = 'MATH7';
UPDATE courses SET course_id = '001-ENG7', subject = 'English Language Arts', grade_level = '7', school_year = 'SY2526' WHERE school_code = '001' AND course_code = 'ENG7';
UPDATE courses SET course_id = '001-SCI8', subject = 'Science', grade_level = '8', school_year = 'SY2526' WHERE school_code = '001' AND course_code = 'SCI8';
UPDATE courses SET course_id = '001-HR', school_year = 'SY2526' WHERE school_code = '001' AND course_code = 'HR';
UPDATE courses SET course_id = '002-ALG1', subject = 'Mathematics', grade_level = '9', school_year = 'SY2526' WHERE school_code = '002' AND course_code = 'ALG1';
UPDATE courses SET course_id = '002-BIO', subject = 'Science', grade_level = '10', school_year = 'SY2526' WHERE school_code = '002' AND course_code = 'BIO';
UPDATE courses SET course_id = '002-ENG10', subject = 'English Language Arts', grade_level = '10', school_year = 'SY2526' WHERE school_code = '002' AND course_code = 'ENG10';
UPDATE courses SET course_id = '002-USHIST', subject = 'Social Studies', grade_level = '11', school_year = 'SY2526' WHERE school_code = '002' AND course_code = 'USHIST';
UPDATE courses SET course_id = '002-FR2', subject = 'World Languages', grade_level = '10', school_year = 'SY2526' WHERE school_code = '002' AND course_code = 'FR2';
UPDATE courses SET course_id = '003-GR4', subject = 'Homeroom', grade_level = '4', school_year = 'SY2526' WHERE school_code = '003' AND course_code = 'GR4';
UPDATE courses SET course_id = '099-WOOD', subject = 'Career and Technical Education', grade_level = '10', school_year = 'SY1920' WHERE school_code = '099' AND course_code = 'WOOD';

-- Terms. HARD CASE: term types as people type them (School Year, SEMESTER, grading_period);
-- end dates are timestamps; last year's terms are inactive and left out by the default query.
INSERT INTO terms (term_id, term_name, term_type, school_year, start_date, end_date, parent_term_id, is_active) VALUES
('SY2526', '2025-2026 School Year', 'School Year', '2026', '2025-08-25', '2026-06-12 15:30:00', NULL, TRUE),
('S1-2526', 'Fall Semester 2025', 'semester', '2026', '2025-08-25', '2026-01-16 15:30:00', 'SY2526', TRUE),
('S2-2526', 'Spring Semester 2026', 'SEMESTER', '2026', '2026-01-20', '2026-06-12 15:30:00', 'SY2526', TRUE),
('Q1-2526', 'Quarter 1', 'grading_period', '2026', '2025-08-25', '2025-10-31 15:30:00', 'S1-2526', TRUE),
('SY2425', '2024-2025 School Year', 'School Year', '2025', '2024-08-26', '2025-06-13 15:30:00', NULL, FALSE),
('S2-2425', 'Spring Semester 2025', 'semester', '2025', '2025-01-21', '2025-06-13 15:30:00', 'SY2425', FALSE);

-- Sections: their term and periods. HARD CASE: the homeroom 001-HR-7A has no term; 002-FR2-01
-- still points at last year's (inactive) term S2-2425, so its class links to no session.
UPDATE sections SET term_id = 'SY2526', periods = '1' WHERE school_code = '001' AND course_code = 'MATH7' AND section_code = '01';
UPDATE sections SET term_id = 'SY2526', periods = '2' WHERE school_code = '001' AND course_code = 'MATH7' AND section_code = '02';
UPDATE sections SET term_id = 'SY2526', periods = '3' WHERE school_code = '001' AND course_code = 'ENG7' AND section_code = '01';
UPDATE sections SET term_id = 'S1-2526', periods = '4-5' WHERE school_code = '001' AND course_code = 'SCI8' AND section_code = '01';
UPDATE sections SET term_id = 'SY2526', periods = '1' WHERE school_code = '002' AND course_code = 'ALG1' AND section_code = '01';
UPDATE sections SET term_id = 'S1-2526', periods = '2' WHERE school_code = '002' AND course_code = 'BIO' AND section_code = '01';
UPDATE sections SET term_id = 'SY2526', periods = '3' WHERE school_code = '002' AND course_code = 'ENG10' AND section_code = '01';
UPDATE sections SET term_id = 'S2-2526', periods = '4' WHERE school_code = '002' AND course_code = 'USHIST' AND section_code = '01';
UPDATE sections SET term_id = 'S2-2425', periods = '5' WHERE school_code = '002' AND course_code = 'FR2' AND section_code = '01';
UPDATE sections SET term_id = 'SY2526', periods = '1-6' WHERE school_code = '003' AND course_code = 'GR4' AND section_code = '01';
UPDATE sections SET term_id = 'SY1920' WHERE school_code = '099' AND course_code = 'WOOD' AND section_code = '01';

-- Guardians.
INSERT INTO guardians (guardian_id, first_name, last_name, email, phone) VALUES
('G001', 'María', 'Alvarez', 'maria.alvarez@mail.example', '+1 555 7001'),
('G002', 'Lars', 'Ørsted', 'lars.orsted@mail.example', NULL),
-- HARD CASE: one guardian of two students (000125 and 000127).
('G003', 'Aisling', 'O''Brien', 'aisling.obrien@mail.example', '+1 555 7003'),
('G004', 'Wei', 'Chen', 'wei.chen@mail.example', NULL),
-- HARD CASE: guardian without an e-mail address (SDS needs one for a guardian): dropped.
('G005', 'Bridget', 'Sullivan', NULL, '+1 555 7005'),
('G006', 'Grace', 'Okafor', 'grace.okafor@mail.example', NULL),
-- HARD CASE: guardian of the inactive student 000131 only: nobody to relate to, left out.
('G007', 'Paul', 'Brooks', 'paul.brooks@mail.example', NULL),
-- HARD CASE: the guardian's address is the student's (Ava.Martinez@Demo.K12.Example, 000129),
-- in another letter case: one account for two people, so the guardian is dropped (only the
-- guardian: the student keeps theirs).
('G008', 'Lucia', 'Martinez', 'ava.martinez@demo.k12.example', NULL),
-- HARD CASE: two guardians sharing one family address: both dropped.
('G009', 'Paolo', 'Bianchi', 'bianchi.family@mail.example', NULL),
('G010', 'Giulia', 'Bianchi', 'bianchi.family@mail.example', NULL),
('G011', 'Ivana', 'Novak', 'ivana.novak@mail.example', '+1 555 7011');

-- HARD CASE: relationships as the SIS spells them: Parent (Microsoft's parent), NULL (written
-- as guardian, the default), Grandparent (not in Microsoft's list: written as grandparent, with
-- a warning).
INSERT INTO student_guardians (student_number, guardian_id, relationship) VALUES
('000123', 'G001', 'Parent'),
('000124', 'G002', 'parent'),
('000125', 'G003', 'Guardian'),
('000127', 'G003', 'Guardian'),
('000126', 'G004', NULL),
('000128', 'G005', 'Parent'),
('004501', 'G006', 'Grandparent'),
('000131', 'G007', 'Parent'),
('000129', 'G008', 'Parent'),
('004503', 'G009', 'Parent'),
('004503', 'G010', 'Parent'),
('000007', 'G011', 'relative');
