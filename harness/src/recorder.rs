//! Writes `history.jsonl` as operations happen. Each event gets its index
//! and time stamp inside the same lock that writes it, so the file's order
//! is real-time order, and every line is flushed at once: a harness killed
//! mid-run leaves a history that can still be analysed.

use checker::Op;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The history being recorded.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    out: BufWriter<File>,
    next_index: u64,
    ops: Vec<Op>,
    error: Option<std::io::Error>,
}

impl Recorder {
    /// Creates (truncates) the history file.
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                out: BufWriter::new(file),
                next_index: 0,
                ops: Vec::new(),
                error: None,
            }),
        })
    }

    /// Nanoseconds since the recorder was created.
    pub fn elapsed_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Stamps, appends and flushes one event; returns it as recorded.
    pub fn record(&self, mut op: Op) -> Op {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        op.index = inner.next_index;
        op.time = self.elapsed_ns();
        inner.next_index += 1;
        if inner.error.is_none() {
            let r = serde_json::to_writer(&mut inner.out, &op)
                .map_err(std::io::Error::other)
                .and_then(|_| inner.out.write_all(b"\n"))
                .and_then(|_| inner.out.flush());
            if let Err(e) = r {
                inner.error = Some(e);
            }
        }
        inner.ops.push(op.clone());
        op
    }

    /// Every event recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ops
            .clone()
    }

    /// The first write error, if any (the history file is then incomplete).
    pub fn take_error(&self) -> Option<std::io::Error> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{History, OpType, Process};
    use serde_json::json;

    #[test]
    fn lines_are_flushed_in_order_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let r = Recorder::create(&path).unwrap();
        r.record(Op::new(Process::Client(0), OpType::Invoke, "write", json!(1)).with_key(json!(0)));
        r.record(Op::new(Process::Client(0), OpType::Ok, "write", json!(1)).with_key(json!(0)));
        // Readable before the recorder is dropped: every line is flushed.
        let h = History::read_jsonl(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[1].index, 1);
        assert!(h.ops[1].time >= h.ops[0].time);
    }
}
