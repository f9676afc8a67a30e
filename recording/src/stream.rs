//! Records as a stream: read one from any reader (the pipe from ray-gpu), and the compressed
//! file's writer and reader.

use std::io::{self, Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::error::ReadError;
use crate::record::Record;
use crate::{MAGIC, MAX_RECORD_BYTES, VERSION};

/// Reads the next record from `input` (no header, no compression: the pipe's framing).
/// `offset` is where the record starts, for errors, and moves past it. `Ok(None)` at a
/// clean end of input.
pub fn read_record(
    input: &mut impl Read,
    offset: &mut u64,
    index: u64,
) -> Result<Option<Record>, ReadError> {
    let start = *offset;
    let mut head = [0u8; 5];
    let got = read_full(input, &mut head, start)?;
    if got == 0 {
        return Ok(None);
    }
    if got < head.len() {
        return Err(ReadError::Truncated {
            offset: start,
            what: "the input ends inside a record header",
        });
    }
    let len = u32::from_le_bytes(head[1..5].try_into().expect("four bytes"));
    if len > MAX_RECORD_BYTES {
        return Err(ReadError::Corrupt {
            offset: start,
            index,
            source: crate::FormatError::TooLarge(u64::from(len)),
        });
    }
    let mut payload = vec![0u8; len as usize];
    if read_full(input, &mut payload, start)? < payload.len() {
        return Err(ReadError::Truncated {
            offset: start,
            what: "the input ends inside a record",
        });
    }
    let record = Record::decode(head[0], &payload).map_err(|source| ReadError::Corrupt {
        offset: start,
        index,
        source,
    })?;
    *offset = start + 5 + u64::from(len);
    Ok(Some(record))
}

/// Fills `buf` as far as the input goes; returns how many bytes it got.
fn read_full(input: &mut impl Read, buf: &mut [u8], offset: u64) -> Result<usize, ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::Truncated {
                    offset,
                    what: "the compressed data ends early",
                })
            }
            Err(e) if is_zlib_error(&e) => return Err(ReadError::Compressed { offset, source: e }),
            Err(source) => return Err(ReadError::Io { offset, source }),
        }
    }
    Ok(got)
}

/// flate2 reports undecodable data as `InvalidInput` or `InvalidData`.
fn is_zlib_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
}

/// Writes a recording file: the header, then compressed records, then End.
pub struct Writer<W: Write> {
    out: ZlibEncoder<W>,
    buffer: Vec<u8>,
    commands: u64,
    records: u64,
    uncompressed: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the header to `out`.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_le_bytes());
        out.write_all(&header)?;
        Ok(Writer {
            out: ZlibEncoder::new(out, Compression::fast()),
            buffer: Vec::new(),
            commands: 0,
            records: 0,
            uncompressed: 0,
        })
    }

    /// Appends one record. End is written by [`Writer::finish`] only.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        if matches!(record, Record::End { .. }) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "End is written by finish",
            ));
        }
        self.append(record)?;
        if matches!(record, Record::Command { .. }) {
            self.commands += 1;
        }
        Ok(())
    }

    fn append(&mut self, record: &Record) -> io::Result<()> {
        self.buffer.clear();
        record
            .encode(&mut self.buffer)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.out.write_all(&self.buffer)?;
        self.records += 1;
        self.uncompressed += self.buffer.len() as u64;
        Ok(())
    }

    /// Compressed bytes written so far (header included), for size limits.
    pub fn compressed_bytes(&self) -> u64 {
        16 + self.out.total_out()
    }

    /// Record bytes before compression.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Commands written so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Writes End and finishes the compressed stream; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let end = Record::End {
            commands: self.commands,
            records: self.records,
        };
        self.append(&end)?;
        self.out.finish()
    }
}

/// Reads a recording file back, checking everything; see [`ReadError`] for what it refuses.
pub struct Reader<R: Read> {
    input: ZlibDecoder<R>,
    offset: u64,
    commands: u64,
    records: u64,
    ended: bool,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Reader<R>, ReadError> {
        let mut header = [0u8; 16];
        input.read_exact(&mut header).map_err(ReadError::Header)?;
        let magic: [u8; 8] = header[..8].try_into().expect("eight bytes");
        if magic != MAGIC {
            return Err(ReadError::BadMagic(magic));
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(ReadError::UnsupportedVersion(version));
        }
        let flags = u16::from_le_bytes([header[10], header[11]]);
        let reserved = u32::from_le_bytes(header[12..16].try_into().expect("four bytes"));
        if flags != 0 || reserved != 0 {
            return Err(ReadError::BadHeader { flags, reserved });
        }
        Ok(Reader {
            input: ZlibDecoder::new(input),
            offset: 0,
            commands: 0,
            records: 0,
            ended: false,
        })
    }

    /// The next record; `Ok(None)` after End, which is checked against what came before.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if self.ended {
            return Ok(None);
        }
        let start = self.offset;
        let record = read_record(&mut self.input, &mut self.offset, self.records)?;
        match record {
            None => Err(ReadError::Truncated {
                offset: start,
                what: "the recording ends without its End record",
            }),
            Some(Record::End { commands, records }) => {
                if (commands, records) != (self.commands, self.records) {
                    return Err(ReadError::EndMismatch {
                        offset: start,
                        claimed_commands: commands,
                        claimed_records: records,
                        commands: self.commands,
                        records: self.records,
                    });
                }
                let mut probe = [0u8; 1];
                if read_full(&mut self.input, &mut probe, self.offset)? != 0 {
                    return Err(ReadError::TrailingData {
                        offset: self.offset,
                    });
                }
                self.ended = true;
                Ok(Some(Record::End { commands, records }))
            }
            Some(record) => {
                self.records += 1;
                if matches!(record, Record::Command { .. }) {
                    self.commands += 1;
                }
                Ok(Some(record))
            }
        }
    }

    /// Where the next record starts in the uncompressed stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FormatError, Queue};

    fn command(n: u8) -> Record {
        Record::Command {
            queue: Queue::Control,
            at_us: u64::from(n),
            response_len: 24,
            request: vec![n; 40],
        }
    }

    fn file(records: &[Record]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new()).unwrap();
        for record in records {
            writer.write(record).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, ReadError> {
        let mut reader = Reader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    /// Raw record bytes behind a valid header, compressed: what a writer would make of them,
    /// right or wrong.
    fn compressed(raw: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        let mut z = ZlibEncoder::new(out, Compression::fast());
        z.write_all(raw).unwrap();
        z.finish().unwrap()
    }

    /// The same records, compressed, with a different End count.
    fn file_with_end(records: &[Record], end: Record) -> Vec<u8> {
        let mut raw = Vec::new();
        for record in records.iter().chain([&end]) {
            record.encode(&mut raw).unwrap();
        }
        compressed(&raw)
    }

    #[test]
    fn reader_returns_what_the_writer_wrote_then_end() {
        let records = vec![Record::Features(3), command(1), command(2)];

        let read = read_all(&file(&records)).unwrap();

        assert_eq!(
            read,
            vec![
                Record::Features(3),
                command(1),
                command(2),
                Record::End {
                    commands: 2,
                    records: 3
                }
            ]
        );
    }

    #[test]
    fn reader_rejects_truncated_file_naming_the_offset() {
        let mut writer = Writer::new(Vec::new()).unwrap();
        writer.write(&command(1)).unwrap();
        writer.write(&command(2)).unwrap();
        let mut bytes = writer.finish().unwrap();
        let cut = bytes.len() - 12;
        bytes.truncate(cut);

        let err = read_all(&bytes).unwrap_err();

        assert!(
            matches!(
                err,
                ReadError::Truncated { .. } | ReadError::Compressed { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("at offset"), "{err}");
    }

    #[test]
    fn reader_rejects_file_without_end_record() {
        let mut raw = Vec::new();
        command(1).encode(&mut raw).unwrap();
        let bytes = compressed(&raw);

        let err = read_all(&bytes).unwrap_err();

        assert_eq!(
            err.to_string(),
            "recording truncated at offset 58: the recording ends without its End record"
        );
    }

    #[test]
    fn reader_rejects_end_with_wrong_counts() {
        let bytes = file_with_end(
            &[command(1)],
            Record::End {
                commands: 5,
                records: 1,
            },
        );

        let err = read_all(&bytes).unwrap_err();

        assert!(matches!(
            err,
            ReadError::EndMismatch {
                offset: 58,
                claimed_commands: 5,
                commands: 1,
                ..
            }
        ));
    }

    #[test]
    fn reader_rejects_corrupt_record_naming_offset_and_index() {
        let mut raw = Vec::new();
        command(1).encode(&mut raw).unwrap();
        let second = raw.len();
        command(2).encode(&mut raw).unwrap();
        raw[second + 5] = 7;
        let bytes = compressed(&raw);

        let err = read_all(&bytes).unwrap_err();

        assert!(matches!(
            err,
            ReadError::Corrupt {
                offset: 58,
                index: 1,
                source: FormatError::BadQueue(7)
            }
        ));
    }

    #[test]
    fn reader_rejects_flipped_compressed_byte() {
        let mut bytes = file(&[command(1), command(2), command(3)]);
        let middle = 16 + (bytes.len() - 16) / 2;
        bytes[middle] ^= 0xff;

        let err = read_all(&bytes).unwrap_err();

        assert!(err.to_string().contains("at offset"), "{err}");
    }

    #[test]
    fn reader_rejects_wrong_magic_and_version() {
        let mut bytes = file(&[command(1)]);
        bytes[9] = 9;

        let version = Reader::new(&bytes[..]).err().unwrap();
        bytes[0] = b'X';
        let magic = Reader::new(&bytes[..]).err().unwrap();

        assert!(matches!(version, ReadError::UnsupportedVersion(0x0901)));
        assert!(matches!(magic, ReadError::BadMagic(_)));
    }

    #[test]
    fn read_record_rejects_length_over_the_limit_before_allocating() {
        let mut bytes = vec![5];
        bytes.extend_from_slice(&(MAX_RECORD_BYTES + 1).to_le_bytes());
        let mut offset = 0;

        let err = read_record(&mut &bytes[..], &mut offset, 0).unwrap_err();

        assert!(matches!(
            err,
            ReadError::Corrupt {
                source: FormatError::TooLarge(_),
                ..
            }
        ));
    }

    #[test]
    fn writer_refuses_an_end_record_from_its_caller() {
        let mut writer = Writer::new(Vec::new()).unwrap();

        let err = writer
            .write(&Record::End {
                commands: 0,
                records: 0,
            })
            .unwrap_err();

        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
