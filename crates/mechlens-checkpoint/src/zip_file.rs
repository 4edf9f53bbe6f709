//! Zip archives holding weights (`torch.save` archives, NumPy `.npz`), opened and read with
//! errors that name the file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};

pub(crate) struct ZipFile {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
}

impl ZipFile {
    /// Opens `path`; `what` says what it should have been, for the error when it is no zip.
    pub(crate) fn open(path: &Path, what: &str) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| Error::WeightFile {
            path: path.to_path_buf(),
            reason: format!("not {what} ({e})"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            zip,
        })
    }

    /// The member names, in archive order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.zip.file_names().map(str::to_string).collect()
    }

    /// The bytes of member `name`.
    pub(crate) fn read(&mut self, name: &str) -> std::result::Result<Vec<u8>, String> {
        let mut member = self
            .zip
            .by_name(name)
            .map_err(|e| format!("`{name}` cannot be read: {e}"))?;
        let mut bytes = Vec::new();
        member
            .read_to_end(&mut bytes)
            .map_err(|e| format!("`{name}` cannot be read: {e}"))?;
        Ok(bytes)
    }

    /// A [`Error::WeightFile`] about this archive.
    pub(crate) fn error(&self, reason: String) -> Error {
        Error::WeightFile {
            path: self.path.clone(),
            reason,
        }
    }
}
