//! Extraction: the SIS rows of every entity read by an async reader and handed in batches to
//! the thread that owns the `Builder`, which finishes the export.

use super::FileTooLarge;
use anyhow::{Context, anyhow};
use sds_core::contract::MAX_COLUMNS;
use sds_core::{Builder, Built, Entity, ExportOptions};
use sds_source::Source;
use std::time::Instant;
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

/// Reads every entity from the SIS into a builder and finishes the export.
///
/// The builder runs on a thread of its own: validating and interning a row costs about as much
/// as decoding it, and at district scale (7.5 million enrollments) both take seconds, so they
/// overlap on two cores instead of adding up on one.
pub async fn extract_and_build(
    source: &Source,
    opts: ExportOptions,
    max_rows_per_file: u64,
) -> anyhow::Result<Built> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch>();
    let entities = read_entities(&opts);
    // Which contract columns each query returns decides which optional columns are written.
    let mut returned = Vec::new();
    if opts.full_formats() {
        for &entity in &entities {
            let present = source
                .returned_columns(entity)
                .await
                .with_context(|| format!("cannot read {entity} from the SIS"))?;
            returned.push((entity, present));
        }
    }
    let build_thread = std::thread::Builder::new()
        .name("sds-build".into())
        .spawn(move || {
            let mut builder = Builder::new(opts);
            for (entity, present) in &returned {
                builder.returned(*entity, present);
            }
            for batch in full_rx {
                batch.for_each_row(|values| builder.push_row(batch.entity, values));
                // The reader may be gone already (an error); the batch is then just dropped.
                let _ = empty_tx.send(batch);
            }
            builder
        })
        .context("cannot start the build thread")?;
    let read = read_all(source, &entities, &full_tx, &empty_rx).await;
    // Closing the channel lets the thread finish what is queued and hand the builder back.
    drop(full_tx);
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
