//! The checkpoint state file: `{shard_id: last_sequence_number}` of delivered batches, written
//! atomically (temp file + rename) so a crash never leaves it half written.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

/// Why the state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint state file {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object of strings.
    #[error(
        "checkpoint state file {file} is not a JSON object of shard id to sequence number: line {line} column {column}"
    )]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

/// The last delivered sequence number of each shard, optionally persisted.
#[derive(Debug, Default)]
pub struct Checkpoints {
    path: Option<PathBuf>,
    shards: BTreeMap<String, String>,
}

impl Checkpoints {
    /// Checkpoints kept in memory only (no `--state`).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Checkpoints persisted at `path`, starting from what it holds (nothing if it does not exist).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let file = path.display().to_string();
        let shards = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| CheckpointError::Invalid {
                file: file.clone(),
                line: error.line(),
                column: error.column(),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(CheckpointError::Io { file, source }),
        };
        Ok(Self { path: Some(path.to_owned()), shards })
    }

    /// The last delivered sequence number of `shard_id`.
    pub fn get(&self, shard_id: &str) -> Option<&str> {
        self.shards.get(shard_id).map(String::as_str)
    }

    /// Every shard's checkpoint.
    pub fn shards(&self) -> &BTreeMap<String, String> {
        &self.shards
    }

    /// Records `sequence_number` as delivered for `shard_id` and persists the state.
    pub fn commit(&mut self, shard_id: &str, sequence_number: &str) -> Result<(), CheckpointError> {
        self.shards.insert(shard_id.to_owned(), sequence_number.to_owned());
        let Some(path) = &self.path else { return Ok(()) };
        let io = |source| CheckpointError::Io { file: path.display().to_string(), source };
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let mut file = std::fs::File::create(&temp).map_err(io)?;
        let text = serde_json::to_vec_pretty(&self.shards).expect("a map of strings serializes");
        file.write_all(&text).and_then(|()| file.sync_all()).map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_a_reload_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut checkpoints = Checkpoints::load(&path).unwrap();
        assert_eq!(checkpoints.get("file"), None);
        checkpoints.commit("file", "12").unwrap();
        checkpoints.commit("shardId-1", "7").unwrap();
        checkpoints.commit("file", "13").unwrap();
        let reloaded = Checkpoints::load(&path).unwrap();
        assert_eq!((reloaded.get("file"), reloaded.get("shardId-1")), (Some("13"), Some("7")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "[1, 2").unwrap();
        let error = Checkpoints::load(&path).unwrap_err();
        assert!(matches!(error, CheckpointError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("state.json"), "{error}");
    }
}
