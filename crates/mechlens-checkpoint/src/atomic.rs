//! Writes that are all or nothing: a file is written beside its final name and renamed into
//! place when complete, so a crash or a full disk never leaves half a file where a whole one
//! was expected (or was before).

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};

/// Creates `dir` and its parents.
///
/// # Errors
/// [`Error::Io`] naming the folder.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })
}

/// A name beside `path` for its temporary copy (unique to this process).
pub fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
///
/// # Errors
/// [`Error::Io`] naming `path`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_name(path);
    let io = |source| Error::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Moves a folder written in full under a temporary name to `dir` (replacing nothing: `dir`
/// must not exist).
///
/// # Errors
/// [`Error::Io`] naming `dir`.
pub fn rename_dir(tmp: &Path, dir: &Path) -> Result<()> {
    std::fs::rename(tmp, dir).map_err(|source| Error::Io {
        action: "renaming a folder into",
        path: dir.to_path_buf(),
        source,
    })
}
