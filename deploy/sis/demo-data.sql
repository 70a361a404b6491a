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
