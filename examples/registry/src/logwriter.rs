//! The log writer: a request appends its line to a shared buffer and goes on (no write, no
//! thread woken), and a thread of its own writes what gathered every [`INTERVAL`], or as soon as
//! [`BATCH`] bytes wait. Under load that is one write per batch instead of a write and a context
//! switch per line; past [`LIMIT`] bytes waiting (an output that cannot keep up) lines are
//! dropped, and counted, rather than requests slowed.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Bytes waiting that get written at once.
pub const BATCH: usize = 64 << 10;
/// Bytes waiting past which lines are dropped.
pub const LIMIT: usize = 8 << 20;

/// What the writing thread and the lines share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    dropped: u64,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands out writers of log lines (a [`MakeWriter`] for `tracing_subscriber`).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
    /// What every line gets besides its own fields (`[log] fields`), already formatted: a
    /// JSON object's members, or text `key=value` pairs.
    fields: Option<Arc<Fields>>,
}

/// Fields added to every line.
struct Fields {
    json: bool,
    text: String,
}

/// Writes what waits when dropped, then stops the writing thread.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread writing to `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> (LogWriter, Guard) {
    let shared = Arc::new(Shared::default());
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(&for_thread, out))
        .ok();
    (
        LogWriter {
            shared: shared.clone(),
            fields: None,
        },
        Guard { shared, thread },
    )
}

impl LogWriter {
    /// The same writer adding `fields` to every line: as members of each JSON object when
    /// `json`, else as `key=value` at the end of each line.
    pub fn with_fields(mut self, fields: &[(String, String)], json: bool) -> LogWriter {
        if fields.is_empty() {
            return self;
        }
        let text = match json {
            true => fields
                .iter()
                .map(|(k, v)| format!("{}:{},", serde_json::json!(k), serde_json::json!(v)))
                .collect(),
            false => fields.iter().map(|(k, v)| format!(" {k}={v}")).collect(),
        };
        self.fields = Some(Arc::new(Fields { json, text }));
        self
    }

    /// `line` with the added fields.
    fn decorated<'a>(&self, line: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let Some(fields) = &self.fields else {
            return std::borrow::Cow::Borrowed(line);
        };
        let mut out = Vec::with_capacity(line.len() + fields.text.len());
        match (fields.json, line.first()) {
            (true, Some(b'{')) => {
                out.push(b'{');
                out.extend_from_slice(fields.text.as_bytes());
                out.extend_from_slice(&line[1..]);
            }
            (true, _) => out.extend_from_slice(line),
            (false, _) => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                out.extend_from_slice(body);
                out.extend_from_slice(fields.text.as_bytes());
                out.push(b'\n');
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

/// The writing thread: waits for a batch or the interval, takes what gathered, writes it.
fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.buf.is_empty() && !state.closing {
            state = shared.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.buf.len() < BATCH && !state.closing {
            state = shared
                .ready
                .wait_timeout(state, INTERVAL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let closing = state.closing;
        let dropped = std::mem::take(&mut state.dropped);
        std::mem::swap(&mut state.buf, &mut spare);
        drop(state);
        // A log that cannot be written has nowhere to say so: the lines are lost.
        let _ = out.write_all(&spare);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "registry: {dropped} log lines dropped: the log output did not keep up"
            );
        }
        let _ = out.flush();
        spare.clear();
        if closing && shared.lock().buf.is_empty() {
            return;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, given: &[u8]) -> std::io::Result<usize> {
        let written = given.len();
        let line = &*self.decorated(given);
        let mut state = self.shared.lock();
        let before = state.buf.len();
        if before + line.len() > LIMIT {
            state.dropped += 1;
        } else {
            state.buf.extend_from_slice(line);
            // Wake the writer when the buffer gets its first bytes (it then waits out the
            // interval) and when it reaches a batch; not for the lines in between.
            if before == 0 || (before < BATCH && state.buf.len() >= BATCH) {
                self.shared.ready.notify_one();
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_out_whole_in_order_and_all_by_the_guards_end() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let mine: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let want: Vec<String> = (0..5000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, want);
        }
        assert_eq!(out.lines().count(), 20_000);
    }

    #[test]
    fn a_quiet_line_is_written_within_the_interval() {
        let sink = Sink::default();
        let (mut writer, _guard) = spawn(sink.clone());
        writer.write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never came");
            std::thread::yield_now();
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"one line\n");
    }

    #[test]
    fn past_the_limit_lines_are_dropped_and_counted() {
        /// An output that says when a write begins, and blocks it until the test lets it go.
        struct Stuck {
            entered: Arc<std::sync::atomic::AtomicBool>,
            gate: Arc<(Mutex<bool>, Condvar)>,
            sink: Sink,
        }
        impl Write for Stuck {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.entered
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let (open, cv) = &*self.gate;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
                self.sink.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let entered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (mut writer, guard) = spawn(Stuck {
            entered: entered.clone(),
            gate: gate.clone(),
            sink: sink.clone(),
        });
        let line = vec![b'x'; 1 << 20];
        // One line, taken by the writer, which then blocks on the output.
        writer.write_all(&line).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !entered.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never wrote"
            );
            std::thread::yield_now();
        }
        // Twelve more while it is stuck: 8 MiB fit, four lines are dropped.
        for _ in 0..12 {
            writer.write_all(&line).unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let out = sink.0.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&out[out.len().saturating_sub(200)..]).into_owned();
        assert!(text.contains("registry: 4 log lines dropped"), "{text}");
        let kept = out.iter().filter(|&&b| b == b'x').count() >> 20;
        assert_eq!(kept, 9, "MiB of lines kept");
    }
}
