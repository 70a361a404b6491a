//! Rendering the files of a built export, each once: its bytes are hashed and compared with
//! the current snapshot's copy in one pass; only a file that differs is written (into a staging
//! folder created on the first difference), and one that does not is hard-linked from the
//! current snapshot. Only when something changed does the publish gate check the rows of every
//! file, straight from the built tables (no CSV): an unchanged run, the common case, pays for no
//! gate at all (it publishes nothing), and a changed one pays for it once. The gate starts the
//! moment the first file is found to differ and runs beside the rest of the render.
//!
//! The files are unequal (the enrollments alone are most of the bytes) and do not depend on
//! each other to be rendered, so a few threads (one per core) take them largest first: the
//! enrollments start at once while the others share the remaining cores, and no thread waits
//! for another file to end. Only the gate goes level by level (a file after those it refers to).
//!
//! Why compare instead of hashing first: deciding "unchanged" from a hash alone needs a
//! rendering before anything is written, and a second one to write what changed. Comparing the
//! rendered bytes with the old file as they stream decides it in the same pass that writes:
//! - first export (no old files): every file is written as it is rendered, as before;
//! - unchanged: every file matches its old copy to the last byte; nothing is written, no
//!   staging folder exists;
//! - one name changed: the files that match are linked, the one that differs is written from
//!   the point where it diverges (its identical prefix copied from the old file first).
//!
//! Reading the old copy byte by byte is also the re-check the link needs: a snapshot file edited
//! by hand no longer matches, so the rendered file is written instead of the edited one linked.

use anyhow::{Context, anyhow};
use sds_core::csvout::NoRows;
use sds_core::diff::HashingWriter;
use sds_core::validate::{FileDone, Planned, SetCheck, Violation};
use sds_core::{Built, FileEntry, FileSpec};
use sds_store::{Snapshot, Staging, Store};
use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use tracing::info;

/// One file of the export as rendered.
#[derive(Debug)]
pub struct RenderedFile {
    pub spec: &'static FileSpec,
    /// What the snapshot records of it; `compare` adds the row counts.
    pub entry: FileEntry,
    /// Not the current snapshot's file by its recorded size and hash (or there is none).
    pub changed: bool,
}

/// Every file of the export, in the export's file order.
#[derive(Debug)]
pub struct Rendered {
    pub files: Vec<RenderedFile>,
    /// The folder holding the new snapshot's files; `None` when the export is unchanged and
    /// nothing was written.
    pub staging: Option<Staging>,
    /// The publish gate's findings (all severities).
    pub findings: Vec<Violation>,
}

/// Where a file's bytes ended up.
enum Placed {
    /// Identical to this file of the current snapshot, byte for byte: nothing written.
    Same(PathBuf),
    Written,
}

/// The staging folder, created by whichever file first needs it: the first file that differs
/// from the current snapshot, which is also the moment the gate must run.
struct LazyStaging<'s> {
    store: &'s Store,
    cell: OnceLock<Result<Staging, sds_store::StoreError>>,
    start_gate: Sender<bool>,
}

impl LazyStaging<'_> {
    fn path(&self) -> io::Result<&Path> {
        let made = self.cell.get_or_init(|| {
            let made = self.store.new_staging();
            if made.is_ok() {
                // The gate thread may be gone after an error of its own; that error is
                // reported when it is joined.
                let _ = self.start_gate.send(true);
            }
            made
        });
        match made {
            Ok(s) => Ok(s.path()),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    /// The folder, or the store's own error (so `failure_kind` can name it).
    fn into_inner(self) -> anyhow::Result<Option<Staging>> {
        match self.cell.into_inner() {
            None => Ok(None),
            Some(Ok(s)) => Ok(Some(s)),
            Some(Err(e)) => Err(e).context("cannot create a staging folder in the state directory"),
        }
    }
}

/// Renders every file of `built` once (see the module comment), largest first on a thread per
/// core, and gates them when the export is not the current snapshot's.
pub fn render_files(
    built: &Built,
    current: Option<&Snapshot>,
    store: &Store,
) -> anyhow::Result<Rendered> {
    let mut gate = SetCheck::new(built.format(), true);
    let names: Vec<&str> = built.files().iter().map(|f| f.name).collect();
    let levels = gate.plan(&names);
    let cancel = AtomicBool::new(false);
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        // Made inside the scope, so a panic drops the senders and the gate thread ends.
        let (start_gate, gate_go) = channel();
        let gate_thread = std::thread::Builder::new()
            .name("sds-gate".into())
            .spawn_scoped(scope, || {
                let _in_run = span.enter();
                gate_when_told(built, gate, &levels, gate_go, &cancel)
            })
            .context("cannot start a thread (sds-gate)")?;
        let staging = LazyStaging {
            store,
            cell: OnceLock::new(),
            start_gate: start_gate.clone(),
        };
        let rendered = render_all(built, current, &levels, &names, staging, &start_gate);
        let changed = matches!(&rendered, Ok(r) if r.staging.is_some());
        if !changed {
            // Started for a snapshot copy that was missing or edited by hand (the data itself
            // is unchanged), or the render failed: its findings would not be used.
            cancel.store(true, Ordering::Relaxed);
        }
        // Whatever the render decided, the gate thread is told (a second `true` is ignored).
        let _ = start_gate.send(changed);
        let joined = gate_thread.join();
        // The render's own error first: it may be the store's, which `failure_kind` names.
        let mut rendered = rendered?;
        if !changed {
            return Ok(rendered);
        }
        let gated = joined
            .map_err(|_| anyhow!("the sds-gate thread panicked (a bug: please report it)"))??
            .ok_or_else(|| {
                anyhow!(
                    "the publish gate did not run on a changed export (a bug: please report it)"
                )
            })?;
        info!(
            files = gated.files,
            findings = gated.findings.len(),
            duration_ms = gated.duration_ms,
            "files gated"
        );
        rendered.findings = gated.findings;
        Ok(rendered)
    })
}

/// What the publish gate found, over how many files, in how long.
struct Gated {
    findings: Vec<Violation>,
    files: usize,
    duration_ms: u64,
}

/// The publish gate, once the render says the export changed (`true` on `go`); nothing when
/// it is unchanged (`false`), the render failed (the sender dropped), or `cancel` is set
/// before the gate is through (its findings would not be used).
fn gate_when_told(
    built: &Built,
    gate: SetCheck,
    levels: &[Vec<Planned>],
    go: Receiver<bool>,
    cancel: &AtomicBool,
) -> anyhow::Result<Option<Gated>> {
    if go.recv() != Ok(true) {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    Ok(
        check_files(built, gate, levels, cancel)?.map(|(findings, files)| Gated {
            findings,
            files,
            duration_ms: started.elapsed().as_millis() as u64,
        }),
    )
}

/// The render proper: every file, largest first, then linked or staged.
fn render_all(
    built: &Built,
    current: Option<&Snapshot>,
    levels: &[Vec<Planned>],
    names: &[&str],
    staging: LazyStaging,
    start_gate: &Sender<bool>,
) -> anyhow::Result<Rendered> {
    let old_dir = current
        .filter(|c| c.folder_present)
        .map(|c| c.folder.as_path());
    let mut placed: Vec<Option<(FileEntry, Placed)>> = built.files().iter().map(|_| None).collect();
    let all: Vec<&Planned> = levels.iter().flatten().collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rows = |p: &&Planned| built.row_count(p.spec.name);
    let done = largest_first(all, rows, cores, "sds-render", |planned| {
        let old = old_dir.map(|d| d.join(planned.spec.name));
        render_one(built, planned, old.as_deref(), &staging)
    });
    let failed = match done {
        Ok(done) => {
            for (m, p) in done {
                if let Some(slot) = names
                    .iter()
                    .position(|n| *n == m.name)
                    .and_then(|i| placed.get_mut(i))
                {
                    *slot = Some((m, p));
                }
            }
            None
        }
        Err(e) => Some(e),
    };
    // A staging folder that could not be created is the store's error, whatever a thread said.
    let store = staging.store;
    let staging = staging.into_inner()?;
    if let Some(e) = failed {
        return Err(e);
    }
    let placed = placed
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("a file of the export was not written (a bug: please report it)"))?;

    let recorded = |name: &str| current.and_then(|c| c.files.iter().find(|f| f.name == name));
    let files: Vec<RenderedFile> = built
        .files()
        .iter()
        .zip(&placed)
        .map(|(spec, (m, _))| RenderedFile {
            spec,
            entry: m.clone(),
            changed: recorded(&m.name).is_none_or(|r| r.hash != m.hash || r.bytes != m.bytes),
        })
        .collect();
    let unchanged = current.is_some_and(|c| {
        c.files.len() == files.len()
            && c.files.iter().all(|f| names.contains(&f.name.as_str()))
            && files.iter().all(|f| !f.changed)
    });
    if unchanged {
        // Written anyway only when the old copies were missing or edited: the record says
        // the data is the current snapshot's, which stays.
        if let Some(s) = staging {
            s.discard().context("cannot remove the staging folder")?;
        }
        return Ok(Rendered {
            files,
            staging: None,
            findings: Vec::new(),
        });
    }
    let staging = match staging {
        Some(s) => s,
        None => {
            // Every file matched but the set did not (a file more or less): changed after all.
            let made = store
                .new_staging()
                .context("cannot create a staging folder in the state directory")?;
            let _ = start_gate.send(true);
            made
        }
    };
    for (m, p) in &placed {
        if let Placed::Same(old) = p {
            link_or_copy(old, &staging.path().join(&m.name))?;
        }
    }
    Ok(Rendered {
        files,
        staging: Some(staging),
        // Filled in from the gate thread by `render_files`.
        findings: Vec::new(),
    })
}

/// The publish gate over every file of the export, fed each file's rows from the built tables
/// (the same fields the CSV writer got), one dependency level at a time: a file is checked
/// after the files it refers to, the files of a level in parallel. The findings and the
/// number of files checked; `None` when `cancel` was set (looked at before each level).
fn check_files(
    built: &Built,
    mut gate: SetCheck,
    levels: &[Vec<Planned>],
    cancel: &AtomicBool,
) -> anyhow::Result<Option<(Vec<Violation>, usize)>> {
    let mut files = 0;
    for level in levels {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let gate_ref = &gate;
        let done = each_in_parallel(level, "sds-gate", |planned| {
            check_one(built, gate_ref, planned)
        })?;
        for checked in done {
            gate.absorb(checked);
            files += 1;
        }
    }
    Ok(Some((gate.finish(), files)))
}

/// `work` on every item by `workers` threads (at most one per item), the heaviest items first,
/// each thread taking the next item when it is done with one; the results in no particular
/// order (in weight order with one worker), or an error (of the first thread joined that had
/// one): after an error or a panic no thread takes a new item.
fn largest_first<I: Sync, T: Send>(
    mut items: Vec<I>,
    weight: impl Fn(&I) -> u64,
    workers: usize,
    thread_name: &str,
    work: impl Fn(&I) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    items.sort_by_key(|i| std::cmp::Reverse(weight(i)));
    let workers = workers.clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let take = || -> anyhow::Result<Vec<T>> {
        // A panic in `work` stops the others taking new items at once, not when it is joined.
        let _on_panic = StopOnPanic(&stop);
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            match work(item) {
                Ok(t) => done.push(t),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    std::thread::scope(|scope| {
        let take = &take;
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            match std::thread::Builder::new()
                .name(thread_name.into())
                .spawn_scoped(scope, take)
            {
                Ok(h) => handles.push(h),
                // One thread is enough to finish: go on with those that started.
                Err(e) if !handles.is_empty() => {
                    tracing::debug!(error = %e, thread = thread_name, "fewer threads than cores");
                    break;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot start a thread ({thread_name})"));
                }
            }
        }
        let mut all = Vec::new();
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(done)) => all.extend(done),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(anyhow!(
                        "a {thread_name} thread panicked (a bug: please report it)"
                    ));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })
}

/// Sets the flag when dropped by a panicking thread.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// `work` on every file of one level, each on a thread of its own; the results in level order,
/// or the first error.
fn each_in_parallel<T: Send>(
    level: &[Planned],
    thread_name: &str,
    work: impl Fn(&Planned) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles = level
            .iter()
            .map(|planned| {
                std::thread::Builder::new()
                    .name(thread_name.into())
                    .spawn_scoped(scope, move || work(planned))
                    .with_context(|| format!("cannot start a thread ({thread_name})"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    anyhow!("a {thread_name} thread panicked (a bug: please report it)")
                })?
            })
            .collect()
    })
}

fn check_one(built: &Built, gate: &SetCheck, planned: &Planned) -> anyhow::Result<FileDone> {
    // The export's own spec of the file: its header has the optional columns it writes.
    let spec = built.spec(planned.spec.name).unwrap_or(planned.spec);
    let mut check = gate.file(planned);
    check.header(&spec.header());
    check.expect_rows(built.row_count(spec.name));
    built
        .rows_to(spec.name, &mut check)
        .with_context(|| format!("cannot check the rows of {}", spec.name))?;
    Ok(check.finish())
}

/// A hard link to the current snapshot's identical file; a copy where links do not work (the
/// state directory spans file systems, or the file system has none).
fn link_or_copy(old: &Path, new: &Path) -> anyhow::Result<()> {
    if fs::hard_link(old, new).is_ok() {
        return Ok(());
    }
    fs::copy(old, new)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", old.display(), new.display()))
}

/// One file: rendered into the hasher and the old copy's comparison or the staging folder.
fn render_one(
    built: &Built,
    planned: &Planned,
    old: Option<&Path>,
    staging: &LazyStaging,
) -> anyhow::Result<(FileEntry, Placed)> {
    // The export's own spec of the file: its header has the optional columns it writes.
    let spec = built.spec(planned.spec.name).unwrap_or(planned.spec);
    let render = || -> io::Result<(FileEntry, Placed)> {
        let out = Output::open(spec.name, old, staging)?;
        let mut w = HashingWriter::new(out);
        built.write_file_to(spec.name, &mut w, NoRows)?;
        let (out, hash) = w.finish();
        let placed = out.finish()?;
        let m = FileEntry {
            name: spec.name.to_owned(),
            rows: built.row_count(spec.name),
            bytes: hash.bytes,
            hash: hash.hash,
            license: spec.license,
            changes: None,
        };
        Ok((m, placed))
    };
    let (m, placed) = render().with_context(|| {
        format!(
            "cannot write {} into the staging folder (is the disk full?)",
            spec.name
        )
    })?;
    Ok((m, placed))
}

/// Where the rendered bytes of a file go: compared with the old copy while they match it,
/// then into the staging folder.
struct Output<'a> {
    name: &'static str,
    staging: &'a LazyStaging<'a>,
    to: To,
}

enum To {
    /// Every byte so far equals the old copy's first `matched` bytes.
    Compare {
        path: PathBuf,
        old: BufReader<fs::File>,
        matched: u64,
    },
    Write(BufWriter<fs::File>),
}

/// Read-ahead of the old copy: large reads, few system calls.
const COMPARE_BUFFER: usize = 256 * 1024;

impl<'a> Output<'a> {
    fn open(
        name: &'static str,
        old: Option<&Path>,
        staging: &'a LazyStaging<'a>,
    ) -> io::Result<Self> {
        let to = match old.map(|p| (p, fs::File::open(p))) {
            Some((path, Ok(f))) => To::Compare {
                path: path.to_owned(),
                old: BufReader::with_capacity(COMPARE_BUFFER, f),
                matched: 0,
            },
            // No old copy (or an unreadable one): the file is new.
            _ => To::Write(create(staging, name)?),
        };
        Ok(Output { name, staging, to })
    }

    /// From comparing to writing: the staging file starts with the prefix that matched, copied
    /// from the old file (it is the rendered prefix, byte for byte).
    fn diverge(&mut self) -> io::Result<&mut BufWriter<fs::File>> {
        if let To::Compare { path, matched, .. } = &self.to {
            let mut file = create(self.staging, self.name)?;
            let copied = io::copy(&mut fs::File::open(path)?.take(*matched), &mut file)?;
            if copied != *matched {
                return Err(io::Error::other(format!(
                    "{} of the current snapshot shrank while it was read",
                    path.display()
                )));
            }
            self.to = To::Write(file);
        }
        match &mut self.to {
            To::Write(w) => Ok(w),
            To::Compare { .. } => Err(io::Error::other("unreachable: still comparing")),
        }
    }

    /// Flushes a written file; a compared one is the old copy only if that ends here too.
    fn finish(mut self) -> io::Result<Placed> {
        if let To::Compare { old, path, .. } = &mut self.to {
            if old.fill_buf()?.is_empty() {
                return Ok(Placed::Same(path.clone()));
            }
            self.diverge()?;
        }
        match self.to {
            // Flushes, so a full disk is reported here, with the file's name.
            To::Write(w) => w
                .into_inner()
                .map_err(|e| e.into_error())
                .map(|_| Placed::Written),
            To::Compare { .. } => Err(io::Error::other("unreachable: still comparing")),
        }
    }
}

fn create(staging: &LazyStaging, name: &str) -> io::Result<BufWriter<fs::File>> {
    Ok(BufWriter::new(fs::File::create(
        staging.path()?.join(name),
    )?))
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let To::Compare { old, matched, .. } = &mut self.to {
            let mut rest = buf;
            while !rest.is_empty() {
                // An old copy that cannot be read any more is treated as different.
                let avail = match old.fill_buf() {
                    Ok(a) => a,
                    Err(_) => break,
                };
                let n = avail.len().min(rest.len());
                if n == 0 {
                    break; // the old copy is shorter
                }
                let (a, b) = (&avail[..n], &rest[..n]);
                // Everything up to the first different byte is still the old copy's prefix.
                let same = if a == b {
                    n
                } else {
                    a.iter().zip(b).take_while(|(x, y)| x == y).count()
                };
                old.consume(same);
                *matched += same as u64;
                rest = &rest[same..];
                if same < n {
                    break;
                }
            }
            if rest.is_empty() {
                return Ok(buf.len());
            }
            self.diverge()?.write_all(rest)?;
            return Ok(buf.len());
        }
        self.diverge()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.to {
            To::Compare { .. } => Ok(()),
            To::Write(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::largest_first;
    use std::sync::Mutex;

    #[test]
    fn largest_first_does_every_item_once_heaviest_first() {
        let items: Vec<u64> = vec![3, 900, 1, 40, 7];
        let one = largest_first(items.clone(), |i| *i, 1, "t", |i| Ok(*i)).expect("no error");
        assert_eq!(one, [900, 40, 7, 3, 1]);
        let mut two = largest_first(items.clone(), |i| *i, 2, "t", |i| Ok(*i * 10)).expect("ok");
        two.sort_unstable();
        assert_eq!(two, [10, 30, 70, 400, 9000]);
        // More workers than items, and no items at all.
        assert_eq!(
            largest_first(items, |i| *i, 64, "t", |i| Ok(*i))
                .map(|v| v.len())
                .ok(),
            Some(5)
        );
        let none: Vec<u64> = Vec::new();
        assert!(largest_first(none, |i| *i, 2, "t", |i| Ok(*i)).is_ok_and(|v| v.is_empty()));
    }

    #[test]
    fn an_error_is_returned_and_stops_new_items() {
        let items: Vec<u64> = (1..=50).collect();
        let started = Mutex::new(Vec::new());
        // Two workers: one takes 50 and is still busy with it when the other fails on 49; once
        // done with 50 it must take nothing more (an error ending only its own thread would
        // let it go on with 48, 47, ...).
        let err = largest_first(
            items,
            |i| *i,
            2,
            "t",
            |i| {
                started
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(*i);
                match *i {
                    50 => std::thread::sleep(std::time::Duration::from_millis(300)),
                    49 => anyhow::bail!("item {i} failed"),
                    _ => {}
                }
                Ok(())
            },
        )
        .expect_err("the failing item's error");
        assert_eq!(err.to_string(), "item 49 failed");
        let mut started = started.into_inner().expect("lock");
        started.sort_unstable();
        assert_eq!(started, [49, 50]);
    }

    #[test]
    fn zero_workers_is_one() {
        let done = largest_first(vec![2u64, 1], |i| *i, 0, "t", |i| Ok(*i)).expect("no error");
        assert_eq!(done, [2, 1]);
    }

    #[test]
    fn a_panicking_worker_is_an_error_not_a_crash() {
        let err = largest_first(
            vec![1u64, 2],
            |i| *i,
            2,
            "t",
            |i| {
                if *i == 2 {
                    panic!("boom");
                }
                Ok(())
            },
        )
        .expect_err("the panic as an error");
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}
