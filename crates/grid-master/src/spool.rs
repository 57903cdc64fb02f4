//! `Spool`: one replica's output, kept aside until the job's quorum
//! decides whose result stands. Nothing of it reaches watchers or the
//! record before that: the output is written to an unnamed temporary file
//! (gone with the spool, whatever happens to the master) and hashed as it
//! comes, so memory holds a write buffer per replica, never its output.

use grid_core::OutputStream;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// The write buffer of one replica's spool file.
const BUFFER: usize = 16 << 10;

/// One replica's output so far.
pub struct Spool {
    /// Where its file goes (the master's data dir); the system's temporary
    /// dir when `None`.
    dir: Option<Arc<Path>>,
    file: Option<BufWriter<File>>,
    stdout: Sha256,
    stderr: Sha256,
    /// Bytes of stdout and of stderr.
    pub lengths: (u64, u64),
    /// Why the spool could not keep the output, if it could not.
    pub failed: Option<String>,
}

impl Default for Spool {
    fn default() -> Self {
        Self { dir: None, file: None, stdout: Sha256::new(), stderr: Sha256::new(), lengths: (0, 0), failed: None }
    }
}

impl Spool {
    /// A spool whose file, once output comes, is made in `dir`.
    pub fn in_dir(dir: Option<Arc<Path>>) -> Self {
        Self { dir, ..Self::default() }
    }

    /// Bytes of output so far, both streams.
    pub fn bytes(&self) -> u64 {
        self.lengths.0 + self.lengths.1
    }

    /// Keeps a chunk of output. A failure to write (the disk is full) is
    /// kept in `failed`: the replica's output is then lost.
    pub fn write(&mut self, stream: OutputStream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match stream {
            OutputStream::Stdout => {
                self.stdout.update(data);
                self.lengths.0 += data.len() as u64;
            }
            OutputStream::Stderr => {
                self.stderr.update(data);
                self.lengths.1 += data.len() as u64;
            }
        }
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.append(stream, data) {
            self.failed = Some(format!("cannot keep a replica's output aside: {e}"));
            self.file = None;
        }
    }

    fn append(&mut self, stream: OutputStream, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let file = match &self.dir {
                Some(dir) => tempfile::tempfile_in(dir)?,
                None => tempfile::tempfile()?,
            };
            self.file = Some(BufWriter::with_capacity(BUFFER, file));
        }
        let file = self.file.as_mut().expect("made above");
        let tag = if stream == OutputStream::Stderr { 2u8 } else { 1u8 };
        file.write_all(&[tag])?;
        file.write_all(&(data.len() as u32).to_le_bytes())?;
        file.write_all(data)
    }

    /// The sha256 of stdout and of stderr so far.
    pub fn hashes(&self) -> ([u8; 32], [u8; 32]) {
        (self.stdout.clone().finalize().into(), self.stderr.clone().finalize().into())
    }

    /// Reads the output back in the order it came, in chunks of at most
    /// `chunk` bytes.
    pub fn replay(self, chunk: usize, mut each: impl FnMut(OutputStream, Vec<u8>)) -> io::Result<()> {
        if let Some(why) = self.failed {
            return Err(io::Error::other(why));
        }
        let Some(file) = self.file else { return Ok(()) };
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut r = BufReader::with_capacity(BUFFER, file);
        let mut head = [0u8; 5];
        loop {
            match r.read_exact(&mut head) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                other => other?,
            }
            let stream = if head[0] == 2 { OutputStream::Stderr } else { OutputStream::Stdout };
            let mut left = u32::from_le_bytes(head[1..].try_into().expect("four bytes")) as usize;
            while left > 0 {
                let mut data = vec![0; left.min(chunk)];
                r.read_exact(&mut data)?;
                left -= data.len();
                each(stream, data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comes_back_in_order_and_in_bounded_chunks() {
        let mut spool = Spool::default();
        spool.write(OutputStream::Stdout, b"hello ");
        spool.write(OutputStream::Stderr, &[b'e'; 10]);
        spool.write(OutputStream::Stdout, b"world");
        assert_eq!(spool.lengths, (11, 10));
        let (out, _) = spool.hashes();
        assert_eq!(out, <[u8; 32]>::from(Sha256::digest(b"hello world")));
        let mut back = Vec::new();
        spool.replay(4, |s, d| back.push((s, d))).unwrap();
        assert!(back.iter().all(|(_, d)| d.len() <= 4));
        let stdout: Vec<u8> =
            back.iter().filter(|(s, _)| *s == OutputStream::Stdout).flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(stdout, b"hello world");
        assert_eq!(back.iter().filter(|(s, _)| *s == OutputStream::Stderr).map(|(_, d)| d.len()).sum::<usize>(), 10);
    }

    #[test]
    fn an_empty_spool_replays_nothing() {
        let mut n = 0;
        Spool::default().replay(4, |_, _| n += 1).unwrap();
        assert_eq!(n, 0);
    }
}
