//! Push-based CSV scanning: bytes go in chunk by chunk (from an HTTP body, a
//! file, a decompressor), records come out with their fields, and the byte
//! position where each record ends is known. Nothing is buffered beyond one
//! record, so memory does not grow with the file.
//!
//! Most rows of real tables hold no quotes: between records, each complete
//! line without a quote or a stray `\r` is split with `memchr` straight from
//! the input (no copy); everything else goes through csv-core's state machine,
//! which stays the reference for what is valid.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, WriteResult, Writer, WriterBuilder};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
        }
    }
}

impl Dialect {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One parsed record: its fields, borrowed from the scanner's buffer.
pub struct Record<'a> {
    data: &'a [u8],
    ends: &'a [usize],
    /// Bytes between fields in `data`: 0 for csv-core's unescaped output,
    /// 1 for a line split in place (its delimiters are still there).
    sep: usize,
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] + self.sep
        };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// True for the record of an empty line (one empty field).
    pub fn is_blank(&self) -> bool {
        self.len() == 1 && self.ends[0] == 0
    }
}

/// Splits pushed bytes into records.
pub struct Scanner {
    rdr: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    dialect: Dialect,
    /// csv-core sits between records (its last result was a record), so
    /// whole lines may take the fast path.
    boundary: bool,
    /// Whether the fast path is used at all (off only to test it against
    /// csv-core alone).
    fast: bool,
    /// Field ends of the line the fast path is splitting.
    line_ends: Vec<usize>,
    /// Bytes consumed so far, over all pushes.
    pub consumed: u64,
}

impl Scanner {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            rdr: ReaderBuilder::new()
                .delimiter(dialect.delimiter)
                .quote(dialect.quote)
                .build(),
            out: vec![0; 64 * 1024],
            ends: vec![0; 256],
            out_len: 0,
            ends_len: 0,
            dialect,
            boundary: false,
            fast: true,
            line_ends: Vec::new(),
            consumed: 0,
        }
    }

    /// Feeds `input` (empty slice = end of input). Calls `on_record` with each
    /// complete record and the absolute byte offset just past it.
    pub fn push<E>(
        &mut self,
        mut input: &[u8],
        on_record: &mut impl FnMut(Record<'_>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        // csv-core reads an empty slice as the end of input: pass one only then.
        let at_end = input.is_empty();
        loop {
            if self.boundary && !at_end {
                input = self.fast_lines(input, on_record)?;
            }
            if !at_end && input.is_empty() {
                return Ok(());
            }
            let (res, nin, nout, nends) = self.rdr.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            self.consumed += nin as u64;
            if nin > 0 {
                self.boundary = false;
            }
            // Field ends are positions within the whole record (csv-core's contract).
            self.out_len += nout;
            self.ends_len += nends;
            match res {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    let rec = Record {
                        data: &self.out[..self.out_len],
                        ends: &self.ends[..self.ends_len],
                        sep: 0,
                    };
                    let r = on_record(rec, self.consumed);
                    self.out_len = 0;
                    self.ends_len = 0;
                    self.boundary = self.fast;
                    r?;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    /// Splits the complete, quote-free lines at the start of `input` in place
    /// and returns the rest (starting at the first line csv-core must read).
    /// Blank lines are skipped, as csv-core skips them.
    fn fast_lines<'i, E>(
        &mut self,
        mut input: &'i [u8],
        on_record: &mut impl FnMut(Record<'_>, u64) -> Result<(), E>,
    ) -> Result<&'i [u8], E> {
        let Dialect { delimiter, quote } = self.dialect;
        // Where the next quote or `\r` is: lines wholly before it are clean
        // without looking at them again.
        let special = |rest: &[u8]| memchr::memchr2(quote, b'\r', rest).unwrap_or(usize::MAX);
        let mut next_special = special(input);
        while let Some(nl) = memchr::memchr(b'\n', input) {
            let mut line = &input[..nl];
            // Like csv-core, a record ending in `\r\n` ends after the `\r`.
            let mut end = self.consumed + nl as u64 + 1;
            if next_special < nl {
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                    end -= 1;
                }
                if memchr::memchr2(quote, b'\r', line).is_some() {
                    break;
                }
                next_special = special(&input[nl..]).saturating_add(nl);
            }
            next_special = next_special.saturating_sub(nl + 1);
            input = &input[nl + 1..];
            self.consumed += nl as u64 + 1;
            if line.is_empty() {
                continue;
            }
            self.line_ends.clear();
            split_fields(line, delimiter, &mut self.line_ends);
            let rec = Record {
                data: line,
                ends: &self.line_ends,
                sep: 1,
            };
            on_record(rec, end)?;
        }
        Ok(input)
    }

    /// Signals the end of input (flushes a last record without a newline).
    pub fn finish<E>(
        &mut self,
        on_record: &mut impl FnMut(Record<'_>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        self.push(&[], on_record)
    }
}

/// Appends where each field of `line` ends (each `delimiter`, then the
/// line's end) to `ends`. Eight bytes at a time: in each word XORed with the
/// delimiter, a zero byte is a delimiter, found exactly (no carry crosses a
/// byte) and taken lowest first. Short fields make this several times faster
/// than a `memchr` call per field.
fn split_fields(line: &[u8], delimiter: u8, ends: &mut Vec<usize>) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = ONES * u64::from(delimiter);
    let mut words = line.chunks_exact(8);
    let mut base = 0;
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let x = u64::from_le_bytes(word) ^ pattern;
        // High bit of each byte set where that byte of `x` is zero.
        let mut zeros = !(((x & LOW7) + LOW7) | x | LOW7);
        while zeros != 0 {
            ends.push(base + (zeros.trailing_zeros() / 8) as usize);
            zeros &= zeros - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == delimiter {
            ends.push(base + i);
        }
    }
    ends.push(line.len());
}

/// Encodes records as canonical CSV (`,` and `"`, `\n` line ends).
pub struct Encoder {
    wtr: Writer,
    buf: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            wtr: WriterBuilder::new().build(),
            buf: vec![0; 4096],
        }
    }
}

impl Encoder {
    /// Appends one record made of `fields` to `out`.
    pub fn record<'a>(&mut self, fields: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.delimiter(out);
            }
            self.field(field, out);
        }
        self.terminator(out);
    }

    fn field(&mut self, mut field: &[u8], out: &mut Vec<u8>) {
        loop {
            let (res, nin, nout) = self.wtr.field(field, &mut self.buf);
            out.extend_from_slice(&self.buf[..nout]);
            field = &field[nin..];
            if res == WriteResult::InputEmpty {
                break;
            }
        }
        loop {
            let (res, nout) = self.wtr.finish(&mut self.buf);
            out.extend_from_slice(&self.buf[..nout]);
            if res == WriteResult::InputEmpty {
                break;
            }
        }
    }

    fn delimiter(&mut self, out: &mut Vec<u8>) {
        let (_, nout) = self.wtr.delimiter(&mut self.buf);
        out.extend_from_slice(&self.buf[..nout]);
    }

    fn terminator(&mut self, out: &mut Vec<u8>) {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(chunks: &[&[u8]]) -> Vec<Vec<String>> {
        let mut s = Scanner::new(Dialect::default());
        let mut out = Vec::new();
        let mut f = |r: Record<'_>, _| -> Result<(), ()> {
            out.push(
                r.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect(),
            );
            Ok(())
        };
        for c in chunks {
            s.push(c, &mut f).expect("push");
        }
        s.finish(&mut f).expect("finish");
        out
    }

    #[test]
    fn records_across_chunks_quotes_and_no_trailing_newline() {
        let got = records(&[b"a,b\n1,\"x", b",y\"\n2,\"say \"\"hi\"\"\"\n3,last"]);
        assert_eq!(
            got,
            vec![
                vec!["a", "b"],
                vec!["1", "x,y"],
                vec!["2", "say \"hi\""],
                vec!["3", "last"]
            ]
        );
    }

    /// The fast path yields exactly what csv-core alone yields (fields and
    /// end offsets), whatever the content and wherever the chunks split.
    #[test]
    fn fast_path_matches_csv_core() {
        fn scan(text: &[u8], chunk: usize, fast: bool) -> Vec<(Vec<Vec<u8>>, u64)> {
            let mut s = Scanner::new(Dialect::default());
            s.fast = fast;
            let mut out = Vec::new();
            let mut f = |r: Record<'_>, end: u64| -> Result<(), ()> {
                out.push((r.iter().map(<[u8]>::to_vec).collect(), end));
                Ok(())
            };
            for c in text.chunks(chunk) {
                s.push(c, &mut f).expect("push");
            }
            s.finish(&mut f).expect("finish");
            out
        }
        let pieces: [&[u8]; 15] = [
            b"a",
            b"bc",
            b",",
            b"\n",
            b"\r\n",
            b"\r",
            b"\"",
            b"\"\"",
            b"x,y",
            b"\n\n",
            b"",
            b",,",
            b"longer field",
            "\u{e9}\u{1f600}".as_bytes(),
            b"\x80\xff\xac",
        ];
        // A small deterministic generator (no rand dependency).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut text = b"h1,h2\n".to_vec();
            for _ in 0..(next() % 40) {
                text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let chunk = 1 + (next() % 9) as usize;
            let want = scan(&text, text.len().max(1), false);
            assert_eq!(scan(&text, text.len().max(1), true), want, "{text:?}");
            assert_eq!(
                scan(&text, chunk, true),
                want,
                "{text:?} in chunks of {chunk}"
            );
        }
    }

    /// The word-at-a-time split finds exactly the delimiters a byte loop
    /// finds, for any bytes (UTF-8, high bytes, the delimiter's neighbours).
    #[test]
    fn split_fields_matches_a_byte_loop() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for delimiter in [b',', b';', b'\t', b'|', 0x80, 0xff, 0x00, 0x01, 0x7f] {
            for _ in 0..2000 {
                let len = (next() % 70) as usize;
                let line: Vec<u8> = (0..len)
                    .map(|_| match next() % 4 {
                        0 => delimiter,
                        1 => delimiter.wrapping_add(1),
                        2 => delimiter.wrapping_sub(1),
                        _ => next() as u8,
                    })
                    .collect();
                let mut want: Vec<usize> = (0..len).filter(|&i| line[i] == delimiter).collect();
                want.push(len);
                let mut got = Vec::new();
                split_fields(&line, delimiter, &mut got);
                assert_eq!(got, want, "{line:?} split on {delimiter}");
            }
        }
    }

    #[test]
    fn encoder_quotes_when_needed() {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        e.record([&b"plain"[..], b"with,comma", b"with \"quote\""], &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "plain,\"with,comma\",\"with \"\"quote\"\"\"\n"
        );
    }

    #[test]
    fn long_records_grow_the_buffers() {
        let long = "x".repeat(200_000);
        let fields: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let text = format!("{long}\n{}\n", fields.join(","));
        let got = records(&[text.as_bytes()]);
        assert_eq!(got[0][0].len(), 200_000);
        assert_eq!(got[1].len(), 1000);
    }
}
