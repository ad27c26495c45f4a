//! The audit trail on disk: records from the router and the token endpoint, one JSON object per
//! line, appended to `[audit] path` (or written to standard output for `-`) by a thread of its
//! own, so that a slow disk never holds a request.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use registry_http::audit::{AuditRecord, AuditSink};

/// Records waiting for the writer, at most; past that, records are dropped and a warning logged.
const QUEUE: usize = 65_536;

/// Sends records to the writer thread.
pub struct AuditFile {
    queue: SyncSender<AuditRecord>,
}

impl AuditFile {
    /// Opens `path` for appending (`-`: standard output) and starts the writer.
    pub fn open(path: &std::path::Path) -> Result<AuditFile, String> {
        let mut out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
            Box::new(file)
        };
        let (queue, records) = sync_channel::<AuditRecord>(QUEUE);
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                for record in records {
                    let written = serde_json::to_string(&record)
                        .map_err(std::io::Error::other)
                        .and_then(|line| writeln!(out, "{line}"))
                        .and_then(|()| out.flush());
                    if let Err(e) = written {
                        tracing::error!("cannot write the audit log: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(AuditFile { queue })
    }
}

impl AuditSink for AuditFile {
    fn record(&self, record: AuditRecord) {
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) => {
                tracing::warn!(kind = ?r.kind, "the audit writer is behind: record dropped");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the audit writer stopped: record dropped");
            }
        }
    }
}
