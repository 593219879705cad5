//! The file journal: an append-only file in a data directory.
//!
//! One JSON object per line, `\n`-terminated, appended and synced to disk before the change is applied:
//!
//! ```text
//! {"op":"register","subject":"raw.plays-value","version":1,"id":1,"schema":"{...}"}
//! {"op":"config","subject":null,"compatibility":"FULL"}
//! ```
//!
//! Opening replays it in order. A last line without its `\n` is the trace of a crash during an append: it is
//! ignored and cut off, since the change it describes was never acknowledged. Any other unreadable line is an
//! error. The file is locked while open, so two registries cannot share a data directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{JournalEntry, JournalStore};
use crate::registry::RegistryError;

/// The journal file's name inside a data directory.
pub const JOURNAL_FILE: &str = "schemas.journal";

/// An open journal file, locked for this process.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    file: File,
}

impl FileJournal {
    /// Opens (creating if needed) the journal [`JOURNAL_FILE`] in `dir`, creating `dir` too.
    pub fn open_dir(dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Journal { location: dir.display().to_string(), message: e.to_string() })?;
        Self::open(&dir.join(JOURNAL_FILE))
    }

    /// Opens (creating if needed) the journal at `path` and locks it for this process (an exclusive advisory
    /// lock, released when the journal is dropped).
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| RegistryError::Journal { location: path.display().to_string(), message: e.to_string() })?;
        // One writer per journal: a second registry on the same file would interleave ids.
        file.try_lock().map_err(|e| RegistryError::Journal {
            location: path.display().to_string(),
            message: match e {
                std::fs::TryLockError::WouldBlock => "in use by another registry".to_owned(),
                std::fs::TryLockError::Error(e) => format!("cannot lock: {e}"),
            },
        })?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl std::fmt::Display) -> RegistryError {
        RegistryError::Journal { location: self.path.display().to_string(), message: message.to_string() }
    }
}

impl JournalStore for FileJournal {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn replay(&mut self) -> Result<Vec<JournalEntry>, RegistryError> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0)).map_err(|e| self.error(e))?;
        self.file.read_to_string(&mut text).map_err(|e| self.error(e))?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            tracing::warn!(path = %self.path.display(), bytes = text.len() - complete, "dropping an unfinished last journal line");
            self.file.set_len(complete as u64).map_err(|e| self.error(e))?;
        }
        text[..complete]
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| serde_json::from_str(line).map_err(|e| self.error(format!("line {}: {e}", n + 1))))
            .collect()
    }

    fn append(&mut self, entry: &JournalEntry) -> Result<(), RegistryError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| self.error(e))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| self.error(e))?;
        self.file.sync_data().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Compatibility;

    #[test]
    fn replays_what_was_appended_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let first = JournalEntry::Register { subject: "s".into(), version: 1, id: 1, schema: "\"string\"".into() };
        let second = JournalEntry::Config { subject: None, compatibility: Compatibility::Full };
        {
            let mut j = FileJournal::open_dir(dir.path()).unwrap();
            j.append(&first).unwrap();
            j.append(&second).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"op":"config","sub"#).unwrap();
        drop(file);
        let mut j = FileJournal::open_dir(dir.path()).unwrap();
        assert_eq!(j.replay().unwrap(), vec![first.clone(), second.clone()]);
        // The torn line is gone, so the next append starts on a fresh line.
        j.append(&first).unwrap();
        drop(j);
        assert_eq!(FileJournal::open(&path).unwrap().replay().unwrap(), vec![first.clone(), second, first]);
    }

    #[test]
    fn a_journal_has_one_user_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileJournal::open_dir(dir.path()).unwrap();
        let err = FileJournal::open_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("in use by another registry"), "{err}");
        drop(first);
        FileJournal::open_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), "{\"op\":\"nope\"}\n").unwrap();
        let err = FileJournal::open_dir(dir.path()).unwrap().replay().unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
