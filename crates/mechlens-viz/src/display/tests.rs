//! Tests of `display`.

use super::*;
use polars::df;

#[test]
fn floats_keep_six_significant_digits() {
    assert_eq!(format_float(0.0), "0.0");
    assert_eq!(format_float(1.0), "1.0");
    assert_eq!(format_float(1.23456789), "1.23457");
    assert_eq!(format_float(-123.456789), "-123.457");
    assert_eq!(format_float(2.5e-7), "2.50000e-7");
    assert_eq!(format_float(f64::NAN), "NaN");
    assert_eq!(format_float(f64::NEG_INFINITY), "-inf");
}

#[test]
fn dataframe_html_has_names_dtypes_and_escapes() -> polars::prelude::PolarsResult<()> {
    let df = df!("token" => &["<b>", "a&b"], "value" => &[1.5f64, -2.0])?;
    let html = dataframe_html(&df);
    assert!(html.contains("shape: (2, 2)"));
    assert!(html.contains("<th>token</th><th>value</th>"));
    assert!(html.contains("<td><i>str</i></td><td><i>f64</i></td>"));
    assert!(html.contains("<td>&lt;b&gt;</td><td>1.5</td>"));
    assert!(html.contains("<td>a&amp;b</td><td>-2.0</td>"));
    Ok(())
}

#[test]
fn empty_dataframe_shows_its_shape_and_no_rows() -> polars::prelude::PolarsResult<()> {
    let html = dataframe_html(&DataFrame::empty());
    assert!(
        html.contains("shape: (0, 0)") && html.contains("<tbody></tbody>"),
        "{html}"
    );
    let no_rows = df!("token" => Vec::<String>::new())?;
    let html = dataframe_html(&no_rows);
    assert!(
        html.contains("shape: (0, 1)") && html.contains("<th>token</th>"),
        "{html}"
    );
    Ok(())
}

#[test]
fn long_dataframe_shows_head_gap_and_tail() -> polars::prelude::PolarsResult<()> {
    let n: Vec<i64> = (0..100).collect();
    let df = df!("n" => n)?;
    let html = dataframe_html(&df);
    assert_eq!(html.matches("<tr>").count(), 2 + 2 * DF_EDGE_ROWS + 1);
    assert!(html.contains("<td>4</td></tr><tr><td>…</td></tr><tr><td>95</td>"));
    assert!(html.contains("<td>99</td>"));
    Ok(())
}

#[test]
fn tensor_summary_shows_shape_kind_device_and_values() {
    let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape([2, 3]);
    assert_eq!(
        tensor_summary(&t),
        "Tensor [2, 3] Float cpu\n[[1.0, 2.0, 3.0],\n [4.0, 5.0, 6.0]]"
    );
    let big = Tensor::arange(100, (Kind::Int64, tch::Device::Cpu)).reshape([2, 5, 10]);
    assert_eq!(
        tensor_summary(&big),
        "Tensor [2, 5, 10] Int64 cpu\nfirst values: [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, …]"
    );
}

#[test]
fn tensor_html_tables_small_tensors_and_elides_big_ones() {
    let t = Tensor::from_slice(&[1.0f32, f32::NAN, -3.5, f32::INFINITY]).reshape([2, 2]);
    let html = tensor_html(&t);
    assert!(html.contains("Tensor [2, 2] Float cpu"), "{html}");
    assert!(
        html.contains("<tr><td>1.0</td><td>NaN</td></tr><tr><td>-3.5</td><td>inf</td></tr>"),
        "{html}"
    );
    let big = Tensor::arange(100, (Kind::Float, tch::Device::Cpu)).reshape([10, 10]);
    let html = tensor_html(&big);
    // The first 5 rows, a gap row and the last.
    assert_eq!(
        html.matches("<tr>").count(),
        TENSOR_EDGE as usize + 1,
        "{html}"
    );
    assert!(
        html.contains("<td>4.0</td><td>…</td><td>9.0</td>"),
        "{html}"
    );
    assert!(html.contains("<td>99.0</td>"), "{html}");
    // Rank 3: the summary's first values instead of a table.
    let cube = Tensor::zeros([2, 2, 2], (Kind::Float, tch::Device::Cpu));
    assert!(tensor_html(&cube).contains("first values"));
}

#[test]
fn tensor_summary_of_empty_and_scalar() {
    let empty = Tensor::zeros([0, 3], (Kind::Float, tch::Device::Cpu));
    assert_eq!(tensor_summary(&empty), "Tensor [0, 3] Float cpu\n(empty)");
    let scalar = Tensor::from(2.5f64).set_requires_grad(true);
    assert_eq!(
        tensor_summary(&scalar),
        "Tensor [] Double cpu, requires_grad\n2.5"
    );
}
