//! Maps a query's result columns onto the entity's contract columns, once per query, and reads
//! each row through that map.
//!
//! Names match case-insensitively (SQL folds or keeps case differently per database). A missing
//! required column is an error that lists what the query did return; a missing optional column
//! reads as NULL; extra columns are ignored and never decoded, so their types do not matter.

use crate::error::{QueryName, SourceError};
use crate::render::{Backend, Kind};
pub(crate) use sds_core::contract::MAX_COLUMNS;
use sqlx::{Column, TypeInfo};
use std::borrow::Cow;

/// A contract column's place in a COPY line (`None`: the query does not return it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CopyColumn {
    pub(crate) index: Option<usize>,
    /// `char(n)`: drop the padding, as the row path does.
    pub(crate) trim_padding: bool,
}

/// Where each contract column comes from, in contract order.
#[derive(Debug)]
pub(crate) struct Plan {
    slots: Vec<Option<Slot>>,
}

#[derive(Debug)]
struct Slot {
    index: usize,
    /// The result column's name as the query spells it, for messages.
    column: String,
    type_name: String,
    kind: Kind,
}

/// For each contract column of `query.entity`, in contract order, the position in `names` (the
/// query's result columns) of the column that carries it; `None` for an optional column the
/// query does not return. Names match case-insensitively. Shared by the sqlx and ODBC sources so
/// that both accept and refuse the same queries.
pub(crate) fn match_columns(
    query: QueryName,
    names: &[&str],
) -> Result<Vec<Option<usize>>, SourceError> {
    let mut slots = Vec::with_capacity(query.entity.columns().len());
    for contract in query.entity.columns() {
        let mut found = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.eq_ignore_ascii_case(contract.name));
        let Some((position, _)) = found.next() else {
            if contract.optional {
                slots.push(None);
                continue;
            }
            return Err(SourceError::MissingColumn {
                query,
                column: contract.name,
                returned: names.iter().map(|n| (*n).to_owned()).collect(),
            });
        };
        if found.next().is_some() {
            return Err(SourceError::DuplicateColumn {
                query,
                column: contract.name,
            });
        }
        slots.push(Some(position));
    }
    Ok(slots)
}

impl Plan {
    /// Checks that `columns` (from the prepared statement or a row) carry the contract of
    /// `query.entity`, each in a type this crate can read.
    pub(crate) fn build<DB: Backend>(
        query: QueryName,
        columns: &[DB::Column],
    ) -> Result<Plan, SourceError> {
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        let mut slots = Vec::with_capacity(query.entity.columns().len());
        for found in match_columns(query, &names)? {
            let Some(position) = found else {
                slots.push(None);
                continue;
            };
            // `position` indexes `names`, which has one entry per column.
            let column = &columns[position];
            let type_name = column.type_info().name().to_owned();
            let Some(kind) = DB::kind(column.type_info()) else {
                return Err(SourceError::UnsupportedType {
                    query,
                    backend: DB::LABEL,
                    column: column.name().to_owned(),
                    cast: DB::cast_hint(column.name()),
                    type_name,
                });
            };
            slots.push(Some(Slot {
                index: column.ordinal(),
                column: column.name().to_owned(),
                type_name,
                kind,
            }));
        }
        Ok(Plan { slots })
    }

    /// The row's values in contract order (the first [`Plan::width`] cells), borrowed from the
    /// row where possible. `row_number` counts from 1, for messages.
    pub(crate) fn read<'r, DB: Backend>(
        &self,
        query: QueryName,
        row: &'r DB::Row,
        row_number: u64,
    ) -> Result<[Option<Cow<'r, str>>; MAX_COLUMNS], SourceError> {
        let mut cells: [Option<Cow<'r, str>>; MAX_COLUMNS] = Default::default();
        for (cell, slot) in cells.iter_mut().zip(&self.slots) {
            if let Some(slot) = slot {
                *cell = DB::render(row, slot.index, slot.kind).map_err(|e| SourceError::Value {
                    query,
                    column: slot.column.clone(),
                    type_name: slot.type_name.clone(),
                    row: row_number,
                    message: e.to_string(),
                    cast: DB::cast_hint(&slot.column),
                })?;
            }
        }
        Ok(cells)
    }

    /// Where each contract column is in a COPY line, when PostgreSQL's text output of every
    /// column the query returns for the contract is what [`crate::render`] prints (text-like
    /// and integer types); `None` when any is not, so the row path stays the reference.
    pub(crate) fn copy_columns(&self) -> Option<Vec<CopyColumn>> {
        self.slots
            .iter()
            .map(|slot| match slot {
                None => Some(CopyColumn {
                    index: None,
                    trim_padding: false,
                }),
                Some(slot) => match slot.kind {
                    Kind::Text | Kind::Int => Some(CopyColumn {
                        index: Some(slot.index),
                        trim_padding: false,
                    }),
                    Kind::PaddedText => Some(CopyColumn {
                        index: Some(slot.index),
                        trim_padding: true,
                    }),
                    _ => None,
                },
            })
            .collect()
    }

    /// Number of contract columns (at most [`MAX_COLUMNS`]).
    pub(crate) fn width(&self) -> usize {
        self.slots.len()
    }

    /// For each contract column, whether the query returns it.
    pub(crate) fn present(&self) -> Vec<bool> {
        self.slots.iter().map(Option::is_some).collect()
    }
}
