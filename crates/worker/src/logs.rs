//! From raw container output to events: lines of bounded length, secrets
//! hidden, structured lines read, a per-job cap, and a tail for error messages.
//! Memory stays bounded: one partial line per stream plus a bounded channel.

use gantry_core::events::{parse_line, LineSplitter, LogLine, Redactor, Stream, Tail};
use gantry_runtime::OutputStream;
use tokio::sync::mpsc;

/// Longest line stored as one event; longer lines are cut into pieces.
pub const MAX_LINE: usize = 64 * 1024;
/// Default per-job cap on stored output.
pub const DEFAULT_CAP: u64 = 16 << 20;

pub struct LogPipeline {
    out: mpsc::Sender<LogLine>,
    redactor: Redactor,
    cap: u64,
    stored: u64,
    stored_lines: u64,
    dropped_bytes: u64,
    dropped_lines: u64,
    stdout: LineSplitter,
    stderr: LineSplitter,
    tail_out: Tail,
    tail_err: Tail,
}

impl LogPipeline {
    pub fn new(out: mpsc::Sender<LogLine>, redactor: Redactor, cap: u64) -> Self {
        Self {
            out,
            redactor,
            cap,
            stored: 0,
            stored_lines: 0,
            dropped_bytes: 0,
            dropped_lines: 0,
            stdout: LineSplitter::new(MAX_LINE),
            stderr: LineSplitter::new(MAX_LINE),
            tail_out: Tail::default(),
            tail_err: Tail::default(),
        }
    }

    pub async fn push(&mut self, stream: OutputStream, data: &[u8]) {
        let mut lines = Vec::new();
        let splitter = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        splitter.push(data, &mut |l| lines.push(l.to_vec()));
        for l in lines {
            self.line(stream, &l).await;
        }
    }

    async fn line(&mut self, stream: OutputStream, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let text = self.redactor.redact(&text);
        let (stream, tail) = match stream {
            OutputStream::Stdout => (Stream::Stdout, &mut self.tail_out),
            OutputStream::Stderr => (Stream::Stderr, &mut self.tail_err),
        };
        tail.push(&text);
        let cost = text.len() as u64 + 1;
        if self.stored + cost > self.cap {
            self.dropped_bytes += cost;
            self.dropped_lines += 1;
            return;
        }
        self.stored += cost;
        self.stored_lines += 1;
        // A closed receiver means nobody stores events any more; keep draining.
        let _ = self.out.send(parse_line(stream, text)).await;
    }

    pub async fn system(&mut self, level: &str, message: impl Into<String>) {
        let _ = self.out.send(LogLine::system(level, message)).await;
    }

    /// Flushes partial lines and reports dropped output; returns the tail of
    /// stderr, or of stdout when stderr was empty.
    pub async fn finish(mut self) -> String {
        let mut rest = Vec::new();
        self.stdout
            .finish(&mut |l| rest.push((OutputStream::Stdout, l.to_vec())));
        self.stderr
            .finish(&mut |l| rest.push((OutputStream::Stderr, l.to_vec())));
        for (s, l) in rest {
            self.line(s, &l).await;
        }
        // Counted once per attempt, when its output ends.
        let metrics = gantry_metrics::global();
        metrics.log_captured(self.stored_lines, self.stored);
        metrics.log_dropped(self.dropped_lines, self.dropped_bytes);
        if self.dropped_lines > 0 {
            let msg = format!(
                "output past the log cap of {} was dropped: {} lines, {} bytes",
                gantry_core::units::format_size(self.cap),
                self.dropped_lines,
                self.dropped_bytes
            );
            self.system("warning", msg).await;
        }
        if self.tail_err.is_empty() {
            self.tail_out.text()
        } else {
            self.tail_err.text()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_and_reports_dropped_output() {
        let (tx, mut rx) = mpsc::channel(1000);
        let mut p = LogPipeline::new(tx, Redactor::new(&["tok".to_string()]), 30);
        p.push(
            OutputStream::Stdout,
            b"0123456789\nabc tok\nthis one is dropped\n",
        )
        .await;
        p.push(OutputStream::Stderr, b"err tail no newline").await;
        let tail = p.finish().await;
        assert_eq!(tail, "err tail no newline");
        let mut got = Vec::new();
        while let Ok(l) = rx.try_recv() {
            got.push(l.message);
        }
        assert_eq!(got[0], "0123456789");
        assert_eq!(got[1], "abc [hidden]");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[2].contains("2 lines"), "{got:?}");
    }
}
