-- Row counts that each SDS v1 file must have for the benchmark database, computed in SQL from
-- the reference tables with the exporter's rules (README "What goes into the files"), not by
-- sds-sync: active schools; sections, students and teacher assignments of those schools; active
-- students and teachers only, with an e-mail address (the benchmark's username rule is "email":
-- a user without one has no username and is dropped, as SDS could not match it; the generator
-- gives every other user a distinct address); an enrollment or roster row needs both its
-- section and its user exported; the default queries' filters (not dropped, staff_id not
-- null). scripts/bench.sh
-- stores the result (one JSON object) in the database's comment and checks every run against it.
WITH sch AS (SELECT school_code FROM schools WHERE is_active = TRUE),
sec AS (SELECT school_code, course_code, section_code, staff_id
        FROM sections WHERE school_code IN (SELECT school_code FROM sch)),
stu AS (SELECT student_number FROM students
        WHERE enroll_status = 'A' AND school_code IN (SELECT school_code FROM sch)
          AND btrim(coalesce(email, '')) <> ''),
tea AS (SELECT DISTINCT ss.staff_id, ss.school_code
        FROM staff sf JOIN staff_schools ss ON ss.staff_id = sf.staff_id
        WHERE sf.is_active = TRUE AND ss.school_code IN (SELECT school_code FROM sch)
          AND btrim(coalesce(sf.email, '')) <> '')
SELECT json_build_object(
  'School.csv', (SELECT count(*) FROM sch),
  'Section.csv', (SELECT count(*) FROM sec),
  'Student.csv', (SELECT count(*) FROM stu),
  'Teacher.csv', (SELECT count(*) FROM tea),
  'StudentEnrollment.csv',
      (SELECT count(*) FROM section_enrollments en
       JOIN sec ON sec.school_code = en.school_code AND sec.course_code = en.course_code
               AND sec.section_code = en.section_code
       WHERE en.is_dropped = FALSE AND en.student_number IN (SELECT student_number FROM stu)),
  'TeacherRoster.csv',
      (SELECT count(*) FROM sec WHERE staff_id IN (SELECT staff_id FROM tea)))
