//! Tests of `torch_archive`.

use super::*;

#[test]
fn a_pickled_global_outside_a_state_dict_is_an_error() {
    // PROTO 2, GLOBAL 'os system', MARK, 'ls', TUPLE, REDUCE, STOP
    let code = b"\x80\x02cos\nsystem\n(X\x02\x00\x00\x00lstR.";
    let e = Machine::default().run(code).unwrap_err();
    assert!(e.contains("os.system"), "{e}");
    let e = Machine::default()
        .run(b"\x80\x02}(X\x01\x00\x00\x00a")
        .unwrap_err();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn views_outside_their_storage_are_errors() {
    let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let view = |offset: i64, size: Vec<i64>, stride: Vec<i64>| TensorRef {
        key: "0".into(),
        kind: Kind::Float,
        offset,
        size,
        stride,
    };
    let t = build_tensor(&bytes, &view(0, vec![2, 2], vec![1, 2])).unwrap();
    assert_eq!(t.double_value(&[0, 1]), 3.0); // column-major view, made contiguous
    let e = build_tensor(&bytes, &view(1, vec![2, 2], vec![2, 1])).unwrap_err();
    assert!(e.contains("reaches past its storage of 4"), "{e}");
    let e = build_tensor(&bytes, &view(0, vec![2], vec![-1])).unwrap_err();
    assert!(e.contains("negative"), "{e}");
    let e = build_tensor(&bytes, &view(0, vec![i64::MAX, 2], vec![i64::MAX, 1])).unwrap_err();
    assert!(e.contains("overflows"), "{e}");
}

#[test]
fn small_ints_and_negative_longs_decode() {
    // {'a': -2 (LONG1), 'b': 300 (BININT2)}
    let code = b"\x80\x02}(X\x01\x00\x00\x00a\x8a\x01\xfeX\x01\x00\x00\x00bM\x2c\x01u.";
    let Value::Dict(d) = Machine::default().run(code).unwrap() else {
        panic!("not a dict");
    };
    assert!(matches!(d[0].1, Value::Int(-2)));
    assert!(matches!(d[1].1, Value::Int(300)));
}
