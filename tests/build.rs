//! Turns README.md's Rust blocks into functions that the `readme` test compiles (never runs),
//! so that an example that no longer builds fails `cargo test`.
//!
//! Each block is a notebook cell: statements, items, `?` and a last expression. It is
//! compiled as the body of a function returning `mechlens::Result<()>` with the kernel's
//! prelude in scope; `:dep` lines (kernel commands) are dropped. Names a block uses without
//! defining them (a `model`, some `tokens`) are declared in an HTML comment just above it,
//! which GitHub does not show:
//!
//! ```text
//! <!-- readme-test: let model: HookedTransformer = todo!(); -->
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::Path;

const SETUP_OPEN: &str = "<!-- readme-test:";

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("README.md is readable");
    let mut out = String::new();
    let mut setup: Option<String> = None;
    let mut blocks = 0;
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        if let Some(rest) = line.trim_start().strip_prefix(SETUP_OPEN) {
            // The setup runs to the closing `-->`, on this line or a later one.
            let mut body = String::new();
            let mut rest = rest.to_string();
            loop {
                if let Some(before) = rest.strip_suffix("-->") {
                    body.push_str(before);
                    break;
                }
                body.push_str(&rest);
                body.push('\n');
                rest = lines
                    .next()
                    .expect("an unclosed readme-test comment")
                    .1
                    .to_string();
            }
            setup = Some(body);
            continue;
        }
        if line.trim_end() != "```rust" {
            if !line.trim().is_empty() {
                setup = None; // a setup comment belongs to the block right below it
            }
            continue;
        }
        let mut body = String::new();
        for (_, code) in lines.by_ref() {
            if code.trim_end() == "```" {
                break;
            }
            if !code.trim_start().starts_with(':') {
                body.push_str(code);
                body.push('\n');
            }
        }
        blocks += 1;
        let setup = setup.take().unwrap_or_default();
        write!(
            out,
            "/// README.md, the block at line {line}.\n\
             #[allow(warnings, unused_must_use, clippy::all, clippy::pedantic, clippy::restriction)]\n\
             pub fn block_{blocks}() -> mechlens::Result<()> {{\n\
             use mechlens::prelude::*;\n\
             {setup}\n\
             let _ = {{\n{body}}};\n\
             Ok(())\n}}\n\n",
            line = index + 1,
        )
        .unwrap();
    }
    writeln!(
        out,
        "/// How many Rust blocks README.md has.\npub const BLOCKS: usize = {blocks};"
    )
    .unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("readme_blocks.rs");
    std::fs::write(dest, out).unwrap();
}
