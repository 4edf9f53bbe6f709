//! Numeric CSV files ↔ DataFrames: the logs `mechlens train-toy` writes (a header of column
//! names, then numbers; an empty cell is a missing value). polars' own CSV support is left out
//! of the build (it would lengthen every kernel's compile); these files need only this.

use std::path::Path;

use mechlens_core::{Error, Result};
use polars::prelude::{AnyValue, Column, DataFrame};

/// Reads a CSV of numbers into f64 columns (null where a cell is empty).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::InvalidInput`] naming the line and
/// column of a cell that is not a number, or of a row with another number of cells.
pub fn read_numeric_csv(path: impl AsRef<Path>) -> Result<DataFrame> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| {
            Error::invalid(
                path.display().to_string(),
                "the file is empty, expected a header line",
            )
        })?
        .split(',')
        .map(str::trim)
        .collect();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::new(); header.len()];
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let where_ = || format!("{} line {}", path.display(), i + 2);
        if cells.len() != header.len() {
            return Err(Error::invalid(
                where_(),
                format!(
                    "has {} cells, expected {} (the header's)",
                    cells.len(),
                    header.len()
                ),
            ));
        }
        for ((cell, column), name) in cells.iter().zip(&mut values).zip(&header) {
            column.push(if cell.is_empty() {
                None
            } else {
                Some(cell.parse().map_err(|_| {
                    Error::invalid(
                        where_(),
                        format!("column `{name}` holds {cell:?}, expected a number"),
                    )
                })?)
            });
        }
    }
    let columns: Vec<Column> = header
        .iter()
        .zip(values)
        .map(|(name, v)| Column::new((*name).into(), v))
        .collect();
    DataFrame::new_infer_height(columns).map_err(Error::from)
}

/// A DataFrame of numbers as CSV text: a header, then integers as they are, floats as
/// `{:.6e}`, and a null as an empty cell ([`read_numeric_csv`] reads it back).
///
/// # Errors
/// [`Error::InvalidInput`] naming a column that holds something other than numbers.
pub fn numeric_csv(df: &DataFrame) -> Result<String> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut text = names.join(",") + "\n";
    for row in 0..df.height() {
        let mut cells = Vec::with_capacity(names.len());
        for column in df.columns() {
            cells.push(match column.get(row)? {
                AnyValue::Null => String::new(),
                AnyValue::Float64(v) => format!("{v:.6e}"),
                AnyValue::Float32(v) => format!("{v:.6e}"),
                v @ (AnyValue::UInt64(_)
                | AnyValue::UInt32(_)
                | AnyValue::Int64(_)
                | AnyValue::Int32(_)) => v.to_string(),
                other => {
                    return Err(Error::invalid(
                        format!("column `{}`", column.name()),
                        format!("holds {other}, expected numbers for a numeric CSV"),
                    ));
                }
            });
        }
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_gaps_read_and_a_bad_cell_is_named() {
        let dir = std::env::temp_dir().join(format!("csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(&good, "epoch,loss,test\n0,4.5e0,1\n10,2.25,\n").unwrap();
        let df = read_numeric_csv(&good).unwrap();
        assert_eq!(df.shape(), (2, 3));
        let test = df.column("test").unwrap().f64().unwrap();
        assert_eq!((test.get(0), test.get(1)), (Some(1.0), None));
        assert_eq!(
            numeric_csv(&df).unwrap(),
            "epoch,loss,test\n0.000000e0,4.500000e0,1.000000e0\n1.000000e1,2.250000e0,\n"
        );
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "a,b\n1,x\n").unwrap();
        let err = read_numeric_csv(&bad).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("column `b` holds \"x\""),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
