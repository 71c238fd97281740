//! NDJSON target: one event per line to stdout or a file, flushed after each batch.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde_json::value::RawValue;

use super::{DeliveryError, Retry};

/// Where the NDJSON goes.
enum Sink {
    Stdout(io::Stdout),
    File(BufWriter<File>),
}

/// Writes events as NDJSON.
pub struct NdjsonTarget {
    sink: Sink,
    name: String,
}

impl std::fmt::Debug for NdjsonTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonTarget").field("name", &self.name).finish()
    }
}

impl NdjsonTarget {
    /// Events to stdout.
    pub fn stdout() -> Self {
        Self { sink: Sink::Stdout(io::stdout()), name: "stdout".to_owned() }
    }

    /// Events appended to `path` (created if needed): a restarted run adds to what an earlier
    /// run delivered, as a real target would.
    pub fn file(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { sink: Sink::File(BufWriter::new(file)), name: PathBuf::from(path).display().to_string() })
    }

    /// Writes the events, one per line, and flushes. A closed pipe (`| head`) stops the run:
    /// no reader comes back. Other write errors are retryable (a full disk may recover).
    /// Nothing of the events is quoted.
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        let result = match &mut self.sink {
            // Stdout is line-buffered: without a buffer of our own, a write per event.
            Sink::Stdout(stdout) => write_lines(&mut io::BufWriter::with_capacity(64 << 10, stdout.lock()), events),
            Sink::File(file) => write_lines(file, events),
        };
        result.map_err(|error| {
            let retry = if error.kind() == io::ErrorKind::BrokenPipe { Retry::Stop } else { Retry::Retryable };
            DeliveryError::of(retry, Vec::new(), format!("cannot write to {}: {}", self.name, error.kind()))
        })
    }
}

fn write_lines(out: &mut impl Write, events: &[Box<RawValue>]) -> io::Result<()> {
    for event in events {
        // An error event embeds its record as it came, which may be pretty-printed.
        match single_line(event.get()) {
            Some(line) => out.write_all(line.as_bytes())?,
            None => out.write_all(event.get().as_bytes())?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// `json` without line breaks (whitespace outside strings removed; JSON strings cannot hold a
/// raw line break), or `None` when it has none. Key order and number text are kept as written.
pub fn single_line(json: &str) -> Option<String> {
    if !json.contains(['\n', '\r']) {
        return None;
    }
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_one_event_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let events: Vec<Box<RawValue>> =
            ["{\"a\":1}", "{\"b\":2}"].iter().map(|e| RawValue::from_string((*e).to_owned()).unwrap()).collect();
        NdjsonTarget::file(&path).unwrap().deliver(&events).await.unwrap();
        NdjsonTarget::file(&path).unwrap().deliver(&events[..1]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"b\":2}\n{\"a\":1}\n");
    }

    #[test]
    fn pretty_json_becomes_one_line_with_strings_kept() {
        let pretty = "{\n  \"z\": \"a b\\\" \\\\\",\n  \"a\": [1, 2.50]\n}";
        let line = single_line(pretty).unwrap();
        assert_eq!(line, r#"{"z":"a b\" \\","a":[1,2.50]}"#);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, serde_json::from_str::<serde_json::Value>(pretty).unwrap());
        assert_eq!(single_line(r#"{"a": 1}"#), None);
    }
}
