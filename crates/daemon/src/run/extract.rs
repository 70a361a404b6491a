//! Extraction: the SIS rows of every entity read by an async reader and handed in batches to
//! the thread that owns the `Builder`, which finishes the export.

use super::FileTooLarge;
use anyhow::{Context, anyhow};
use sds_core::contract::MAX_COLUMNS;
use sds_core::{Builder, Built, Entity, ExportOptions};
use sds_source::{Source, SourceConfig};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Rows per message from the reader to the build thread: enough that the channel costs
/// nothing per row, few enough that the rows in flight cost a few megabytes at most.
const BATCH_ROWS: usize = 2048;
const BATCHES_IN_FLIGHT: usize = 4;

/// Rows of one entity on their way to the build thread: all values in one arena, so a batch
/// costs no allocation per value, and batches go back to the reader to be filled again, so
/// memory is never allocated on one thread and freed on the other (glibc's malloc makes that
/// slow: the first version of this channel, one `Vec<Option<String>>` per row, cost more CPU
/// than it saved).
struct Batch {
    entity: Entity,
    width: usize,
    text: String,
    /// `width` cells per row: the value's range in `text`, or `None` for NULL.
    cells: Vec<Option<(usize, usize)>>,
}

impl Batch {
    fn new(entity: Entity) -> Batch {
        Batch {
            entity,
            width: entity.columns().len(),
            text: String::new(),
            cells: Vec::new(),
        }
    }

    fn reset(&mut self, entity: Entity) {
        self.entity = entity;
        self.width = entity.columns().len();
        self.text.clear();
        self.cells.clear();
    }

    fn push(&mut self, values: &[Option<&str>]) {
        for i in 0..self.width {
            let cell = values.get(i).copied().flatten().map(|v| {
                let start = self.text.len();
                self.text.push_str(v);
                (start, self.text.len())
            });
            self.cells.push(cell);
        }
    }

    fn rows(&self) -> usize {
        self.cells.len() / self.width.max(1)
    }

    /// Hands each row to `f` as borrowed values.
    fn for_each_row(&self, mut f: impl FnMut(&[Option<&str>])) {
        for row in self.cells.chunks(self.width.max(1)) {
            let values: [Option<&str>; MAX_COLUMNS] = std::array::from_fn(|i| {
                row.get(i)
                    .copied()
                    .flatten()
                    .and_then(|(a, b)| self.text.get(a..b))
            });
            f(values.get(..row.len()).unwrap_or(&values));
        }
    }
}

/// Connects to the SIS, reads every entity into a builder and finishes the export.
///
/// The reader and the builder each have an OS thread: validating and interning a row costs
/// about as much as decoding it, and at district scale (7.5 million enrollments) both take
/// seconds, so they overlap on two cores instead of adding up on one. The reader runs on a
/// current-thread runtime of its own (the connection is made there), so it never waits for a
/// worker of the daemon's runtime and the daemon's other tasks never wait for it.
pub async fn extract(
    source: &SourceConfig,
    opts: ExportOptions,
    max_rows_per_file: u64,
    dry_run: bool,
) -> anyhow::Result<Built> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
    // Which contract columns each query returns decides which optional columns are written: the
    // reader learns it, the builder needs it before the first row.
    let (returned_tx, returned_rx) = std::sync::mpsc::channel::<Vec<(Entity, Vec<bool>)>>();
    let reader = Reader {
        source: source.clone(),
        entities: read_entities(&opts),
        full_formats: opts.full_formats(),
        format: opts.format.as_str(),
        dry_run,
    };
    let build_thread = std::thread::Builder::new()
        .name("sds-build".into())
        .spawn(move || {
            let mut builder = Builder::new(opts);
            // Nothing comes when the reader failed before reading: its error ends the run.
            for (entity, present) in returned_rx.recv().unwrap_or_default() {
                builder.returned(entity, &present);
            }
            for batch in full_rx {
                batch.for_each_row(|values| builder.push_row(batch.entity, values));
                // The reader may be gone already (an error); the batch is then just dropped.
                let _ = empty_tx.send(batch);
            }
            builder
        })
        .context("cannot start the build thread")?;
    // This future is dropped when a run is abandoned at shutdown: the guard then stops the
    // reader, which drops its connection and the channel, and both threads end.
    let cancel = CancellationToken::new();
    let _stop_reader = cancel.clone().drop_guard();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("sds-read".into())
        .spawn(move || {
            let read = async {
                tokio::select! {
                    () = cancel.cancelled() => Err(anyhow!("the run was abandoned")),
                    read = reader.run(returned_tx, full_tx, empty_rx) => read,
                }
            };
            // The run's span for the whole thread, entered once: `Instrumented` would enter and
            // leave it on every poll (each COPY chunk), and the log filter's check on each
            // enter and leave was ~3% of a district export's CPU. The runtime runs only on
            // this thread, so everything it polls is inside the span.
            let _in_run = span.enter();
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime of the SIS reader")
                .and_then(|rt| rt.block_on(read));
            let _ = done_tx.send(result);
        })
        .context("cannot start the SIS reader thread")?;
    let read = done_rx.await.unwrap_or_else(|_| {
        Err(anyhow!(
            "the SIS reader thread stopped unexpectedly (a bug: please report it)"
        ))
    });
    // The reader has dropped its end of the channel: the thread finishes what is queued and
    // hands the builder back.
    let builder = build_thread
        .join()
        .map_err(|_| anyhow!("the build thread stopped unexpectedly (a bug: please report it)"))?;
    read?;
    let built = builder.finish().context("cannot build the export")?;
    let limit = max_rows_per_file;
    for spec in built.files() {
        let rows = built.row_count(spec.name);
        if rows > limit {
            return Err(FileTooLarge {
                file: spec.name.to_owned(),
                rows,
                limit,
            }
            .into());
        }
    }
    // Stable fields: file, reason, count, ids (up to 20, the smallest).
    for d in built.drops() {
        warn!(file = d.file, reason = %d.reason, count = d.count, ids = ?d.ids, "rows dropped");
    }
    for w in built.warnings() {
        warn!(warning = %w, "export warning");
    }
    Ok(built)
}

/// What the reader thread needs: the connection settings and what to read.
struct Reader {
    source: SourceConfig,
    entities: Vec<Entity>,
    full_formats: bool,
    format: &'static str,
    dry_run: bool,
}

impl Reader {
    /// Connects, sends the builder the columns each query returns, streams every entity's rows
    /// and disconnects. Ends by dropping `full`, which lets the builder finish.
    async fn run(
        self,
        returned: std::sync::mpsc::Sender<Vec<(Entity, Vec<bool>)>>,
        full: std::sync::mpsc::SyncSender<Batch>,
        empty: std::sync::mpsc::Receiver<Batch>,
    ) -> anyhow::Result<()> {
        let source = Source::connect(&self.source)
            .await
            .context("cannot connect to the SIS")?;
        info!(source = %source.describe(), format = self.format, dry_run = self.dry_run, "run started");
        let read = async {
            let mut present = Vec::new();
            if self.full_formats {
                for &entity in &self.entities {
                    let columns = source
                        .returned_columns(entity)
                        .await
                        .with_context(|| format!("cannot read {entity} from the SIS"))?;
                    present.push((entity, columns));
                }
            }
            let _ = returned.send(present);
            read_all(&source, &self.entities, &full, &empty).await
        }
        .await;
        source.close().await;
        read
    }
}

/// The six core entities, then the optional queries the config switches on.
pub(crate) fn read_entities(opts: &ExportOptions) -> Vec<Entity> {
    Entity::ALL
        .into_iter()
        .chain(Entity::OPTIONAL.into_iter().filter(|e| opts.reads(*e)))
        .collect()
}

/// Streams every entity's rows to the build thread in batches, logging one line per query.
async fn read_all(
    source: &Source,
    entities: &[Entity],
    full: &std::sync::mpsc::SyncSender<Batch>,
    empty: &std::sync::mpsc::Receiver<Batch>,
) -> anyhow::Result<()> {
    let fresh = |entity: Entity| match empty.try_recv() {
        Ok(mut b) => {
            b.reset(entity);
            b
        }
        Err(_) => Batch::new(entity),
    };
    for &entity in entities {
        let started = Instant::now();
        let mut batch = fresh(entity);
        let mut builder_gone = false;
        let rows = source
            .read(entity, |values| {
                batch.push(values);
                if batch.rows() == BATCH_ROWS {
                    let full_batch = std::mem::replace(&mut batch, fresh(entity));
                    builder_gone |= full.send(full_batch).is_err();
                }
            })
            .await
            .with_context(|| format!("cannot read {entity} from the SIS"))?;
        if batch.rows() > 0 {
            builder_gone |= full.send(batch).is_err();
        }
        if builder_gone {
            return Err(anyhow!(
                "the build thread stopped while reading {entity} (a bug: please report it)"
            ));
        }
        info!(
            entity = entity.key(),
            rows,
            duration_ms = started.elapsed().as_millis() as u64,
            "extracted"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(batch: &Batch) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        batch.for_each_row(|row| out.push(row.iter().map(|v| v.map(str::to_owned)).collect()));
        out
    }

    #[test]
    fn a_batch_gives_back_the_rows_it_was_given() {
        let mut batch = Batch::new(Entity::Sections);
        batch.push(&[Some("001"), Some("MATH"), Some("1"), Some("Algebra, I")]);
        // A short row: the missing optional column reads as NULL, like one the query lacks.
        batch.push(&[Some("001"), Some(""), Some("2")]);
        batch.push(&[Some("002"), None, Some("3"), None]);
        assert_eq!(batch.rows(), 3);
        let s = |v: &str| Some(v.to_owned());
        // Every row is as wide as the contract; the optional columns not given are NULL.
        let row = |mut r: Vec<Option<String>>| {
            r.resize(Entity::Sections.columns().len(), None);
            r
        };
        assert_eq!(
            collect(&batch),
            vec![
                row(vec![s("001"), s("MATH"), s("1"), s("Algebra, I")]),
                row(vec![s("001"), s(""), s("2")]),
                row(vec![s("002"), None, s("3")]),
            ]
        );
    }

    #[test]
    fn a_reused_batch_forgets_its_old_rows_and_width() {
        let mut batch = Batch::new(Entity::Students);
        batch.push(&[Some("7"), Some("001"), Some("Zoë"), Some("O'Brien")]);
        batch.reset(Entity::Schools);
        assert_eq!(batch.rows(), 0);
        batch.push(&[Some("001"), Some("North High")]);
        let mut want = vec![Some("001".to_owned()), Some("North High".to_owned())];
        want.resize(Entity::Schools.columns().len(), None);
        assert_eq!(collect(&batch), vec![want]);
    }
}
