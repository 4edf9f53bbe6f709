//! README.md's Rust examples build: `tests/build.rs` makes each block a function, which this
//! binary compiles. A block that stops compiling fails `cargo test` with the compiler's error
//! (pointing into `readme_blocks.rs`; each function names its README line).

mod blocks {
    include!(concat!(env!("OUT_DIR"), "/readme_blocks.rs"));
}

#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_default();
    let fences = readme.lines().filter(|l| l.trim_end() == "```rust").count();
    assert!(
        fences > 10,
        "README.md has {fences} Rust blocks; expected its examples"
    );
    assert_eq!(blocks::BLOCKS, fences, "the build script missed a block");
}
