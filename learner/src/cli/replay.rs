//! `baseliner replay`: score a recorded trace (`capture --json` output) offline against an
//! exported profile, and print the alerts it raises.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    path::PathBuf,
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context as _, bail};
use profiles::{Event, rates::DEFAULT_WINDOW_NS, redact::Redactor};
use scorer::{
    alert::{Aggregator, Alert, Observed},
    rates::{RateModel, RateWatch},
    score::{Scorer, WorkloadState},
};

/// Options of `baseliner replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace: one event per line, as `baseliner capture --json` prints.
    events: PathBuf,
    /// The exported profile to score against (`baseliner profile export`), JSON or YAML; its
    /// windows of activity, when it has them, give the rate model too.
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
    /// Print each alert as one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("reading {}", args.profile.display()))?;
    let export = profiles::export::import(&text)
        .with_context(|| format!("{} was not accepted", args.profile.display()))?;
    let file = std::fs::File::open(&args.events)
        .with_context(|| format!("opening {}", args.events.display()))?;
    let scorer = Scorer::default();
    // The rate model, when the export carries the windows it was learned from.
    let model = match export.rates.as_ref().map(RateModel::fit) {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            eprintln!("no rate model: {e}");
            None
        }
        None => None,
    };
    let window_ns = model.as_ref().map_or(DEFAULT_WINDOW_NS, |m| m.window_ns);
    let redactor = Redactor::default();
    let mut aggregator = Aggregator::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut events, mut raised) = (0u64, 0u64);
    let started = Instant::now();
    let mut lines = Lines::new(file);
    // One event decoded over and over, reusing its buffers; one state per workload, and the
    // index of the last event's workload, so a run of events of one workload hashes nothing.
    let mut event: Option<Event> = None;
    let mut workloads: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut states: Vec<(WorkloadState, RateWatch)> = Vec::new();
    let mut last: Option<usize> = None;
    let mut n = 0u64;
    while let Some(line) = lines
        .next_line()
        .with_context(|| format!("reading {}", args.events.display()))?
    {
        n += 1;
        if is_blank(line) {
            continue;
        }
        // One UTF-8 check of the line is cheaper than the parser's check of each string.
        let decoded = std::str::from_utf8(line)
            .map_err(anyhow::Error::from)
            .and_then(|line| match &mut event {
                Some(e) => Ok(profiles::event::decode_json_into(line, e)?),
                None => {
                    event = Some(serde_json::from_str(line)?);
                    Ok(())
                }
            });
        decoded.with_context(|| format!("{} line {n}: not an event", args.events.display()))?;
        let event = event.as_mut().expect("decoded above");
        if event.schema != profiles::event::SCHEMA_VERSION {
            bail!(
                "{} line {n}: event schema {} (this build reads {})",
                args.events.display(),
                event.schema,
                profiles::event::SCHEMA_VERSION
            );
        }
        redactor.redact_event(event);
        events += 1;
        let id = &event.workload.id;
        let i = match last {
            Some(i) if names[i] == *id => i,
            _ => match workloads.get(id) {
                Some(&i) => i,
                None => {
                    workloads.insert(id.clone(), states.len());
                    names.push(id.clone());
                    states.push((WorkloadState::default(), RateWatch::new(window_ns)));
                    states.len() - 1
                }
            },
        };
        last = Some(i);
        let (state, windows) = &mut states[i];
        let alert = scorer.score(event, &export.profile, state);
        let rate = windows.observe(model.as_ref(), event, alert.as_ref());
        for a in alert.into_iter().chain(rate) {
            raised += print_new(&mut out, &mut aggregator, a, args.json)?;
        }
    }
    for (_, windows) in &mut states {
        if let Some(a) = windows.tick(model.as_ref(), u64::MAX) {
            raised += print_new(&mut out, &mut aggregator, a, args.json)?;
        }
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "scored {events} events against {} ({} entries) in {secs:.3} s ({:.0} events/s); {raised} alerts, {} repeats aggregated",
        export.workload,
        export.profile.len(),
        events as f64 / secs,
        aggregator
            .alerts()
            .map(|a| a.count.saturating_sub(1))
            .sum::<u64>()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints `alert` when it is new (as JSON with `json`); returns 1 when it was.
fn print_new(
    out: &mut impl Write,
    aggregator: &mut Aggregator,
    alert: Alert,
    json: bool,
) -> anyhow::Result<u64> {
    if !matches!(aggregator.observe(alert.clone()), Observed::New) {
        return Ok(0);
    }
    if json {
        writeln!(out, "{}", serde_json::to_string(&alert)?)?;
    } else {
        writeln!(
            out,
            "{:8} {} {}",
            alert.severity.as_str(),
            alert.workload,
            alert.summary
        )?;
    }
    Ok(1)
}

/// Lines of a file as bytes, read in large blocks and handed out in place (no copy per line).
/// A last line
/// without a newline is a line; a `\r` before the newline is left to the caller.
struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the next line in `buf`.
    start: usize,
    /// End of the data read into `buf`.
    end: usize,
    eof: bool,
}

impl<R: Read> Lines<R> {
    const BLOCK: usize = 1 << 20;

    fn new(inner: R) -> Self {
        Lines {
            inner,
            buf: vec![0; Self::BLOCK],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line = self.start..self.start + i;
                self.start += i + 1;
                return Ok(Some(&self.buf[line]));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.end;
                self.start = self.end;
                return Ok(Some(&self.buf[line]));
            }
            // Keep the partial line, make room, read more.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// True for a line of whitespace only (as `str::trim` sees it), which the trace may contain.
fn is_blank(line: &[u8]) -> bool {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => true,
        Some(b'{') => false,
        Some(_) => std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(text);
        lines.buf = vec![0; block];
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push(l.to_vec());
        }
        out
    }

    #[test]
    fn lines_split_like_buf_read_whatever_the_block_size() {
        for text in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"ab\ncd",
            b"abc\n\ndef\n",
            b"a long line that needs growing\nx\n",
        ] {
            let expected: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let expected = match text.last() {
                None => vec![],
                Some(b'\n') => expected[..expected.len() - 1].to_vec(),
                Some(_) => expected,
            };
            for block in [1, 2, 3, 7, 64] {
                assert_eq!(all(text, block), expected, "{text:?} in blocks of {block}");
            }
        }
    }

    #[test]
    fn blank_lines_are_whitespace_only() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t\r"));
        assert!(is_blank("\u{a0} \u{b}".as_bytes()));
        assert!(!is_blank(b" {}"));
        assert!(!is_blank(b"x"));
        assert!(!is_blank(&[0xff]));
    }
}
