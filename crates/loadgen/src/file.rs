//! A simple length-delimited file of records, so a run can be written once and
//! replayed (or inspected) without a broker.
//!
//! Format (all integers little-endian):
//! ```text
//! file   := magic frame*
//! magic  := "RAMPREC1"                      (8 bytes)
//! frame  := frame_len:u32                   (bytes after this field, >= 16)
//!           partition:i32 timestamp_ms:i64
//!           key_len:u32 key[key_len]
//!           payload[frame_len - 16 - key_len]
//! ```
//! A file ends cleanly at a frame boundary; a partial frame is an error.
//! A record's `clock_ms` is not stored: records read back carry
//! `clock_ms = timestamp_ms`.

use std::io::{Read, Write};

use crate::error::LoadgenError;
use crate::record::Record;

/// The 8 magic bytes a record file starts with.
pub const MAGIC: &[u8; 8] = b"RAMPREC1";
/// Largest frame the reader accepts (256 MiB).
pub const MAX_FRAME: u32 = 256 << 20;

fn io(e: std::io::Error) -> LoadgenError {
    LoadgenError::Io {
        path: "<record file>".to_string(),
        source: e,
    }
}

/// Writes records in the record-file format.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    out: W,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the magic and returns the writer. Wrap files in a `BufWriter`.
    pub fn new(mut out: W) -> Result<Self, LoadgenError> {
        out.write_all(MAGIC).map_err(io)?;
        Ok(RecordWriter { out })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &Record) -> Result<(), LoadgenError> {
        let frame_len = 16 + r.key.len() as u64 + r.payload.len() as u64;
        let frame_len = u32::try_from(frame_len)
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| {
                LoadgenError::BadFile(format!("record of {frame_len} bytes exceeds {MAX_FRAME}"))
            })?;
        let mut head = [0u8; 20];
        head[..4].copy_from_slice(&frame_len.to_le_bytes());
        head[4..8].copy_from_slice(&r.partition.to_le_bytes());
        head[8..16].copy_from_slice(&r.timestamp_ms.to_le_bytes());
        head[16..20].copy_from_slice(&(r.key.len() as u32).to_le_bytes());
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(&r.key).map_err(io)?;
        self.out.write_all(&r.payload).map_err(io)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, LoadgenError> {
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

/// Reads a record file; an iterator of `Result<Record, LoadgenError>` that
/// stops after the first error.
#[derive(Debug)]
pub struct RecordReader<R: Read> {
    input: R,
    failed: bool,
}

impl<R: Read> RecordReader<R> {
    /// Checks the magic. Wrap files in a `BufReader`.
    pub fn new(mut input: R) -> Result<Self, LoadgenError> {
        let mut m = [0u8; 8];
        input.read_exact(&mut m).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                LoadgenError::BadFile("shorter than the magic".to_string())
            }
            _ => io(e),
        })?;
        if &m != MAGIC {
            return Err(LoadgenError::BadFile(
                "not a rampart record file (bad magic)".to_string(),
            ));
        }
        Ok(RecordReader {
            input,
            failed: false,
        })
    }

    fn read_one(&mut self) -> Result<Option<Record>, LoadgenError> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.input.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(LoadgenError::BadFile("truncated frame length".to_string())),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        let frame_len = u32::from_le_bytes(len);
        if !(16..=MAX_FRAME).contains(&frame_len) {
            return Err(LoadgenError::BadFile(format!(
                "frame length {frame_len} out of range"
            )));
        }
        let mut frame = vec![0u8; frame_len as usize];
        self.input
            .read_exact(&mut frame)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    LoadgenError::BadFile("truncated frame".to_string())
                }
                _ => io(e),
            })?;
        let (head, rest) = frame.split_at(16);
        let le4 = |b: &[u8]| -> [u8; 4] { [b[0], b[1], b[2], b[3]] };
        let partition = i32::from_le_bytes(le4(&head[0..4]));
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[4..12]);
        let key_len = u32::from_le_bytes(le4(&head[12..16])) as usize;
        if key_len > rest.len() {
            return Err(LoadgenError::BadFile(format!(
                "key length {key_len} exceeds frame"
            )));
        }
        let (key, payload) = rest.split_at(key_len);
        Ok(Some(Record {
            partition,
            key: key.to_vec(),
            payload: payload.to_vec(),
            timestamp_ms: i64::from_le_bytes(ts),
            clock_ms: i64::from_le_bytes(ts),
        }))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, LoadgenError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.read_one() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(i: u8) -> Record {
        Record {
            partition: i as i32,
            key: vec![i; 4],
            payload: vec![i; 10 + i as usize],
            timestamp_ms: 1_000 + i as i64,
            clock_ms: 1_000 + i as i64,
        }
    }

    #[test]
    fn roundtrip_and_errors() {
        let mut w = RecordWriter::new(Vec::new()).unwrap();
        let recs: Vec<Record> = (0..5).map(rec).collect();
        for r in &recs {
            w.write(r).unwrap();
        }
        let bytes = w.finish().unwrap();
        let back: Vec<Record> = RecordReader::new(&bytes[..])
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(back, recs);

        // A cut inside the last frame is an error, not a silent end.
        let cut = &bytes[..bytes.len() - 3];
        let res: Vec<_> = RecordReader::new(cut).unwrap().collect();
        assert_eq!(res.len(), 5);
        assert!(matches!(res[4], Err(LoadgenError::BadFile(_))));
        assert!(RecordReader::new(&b"NOTMAGIC"[..]).is_err());
        assert!(RecordReader::new(&b"RAM"[..]).is_err());
    }
}
