//! Figures as the benchmark prints them, and the loopback limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One measured figure.
#[derive(Debug)]
pub struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    extra: Vec<(&'static str, f64)>,
}

impl Figure {
    /// Bytes moved in `secs`, as MB/s (10^6 bytes).
    pub fn throughput(name: &str, bytes: u64, secs: f64) -> Figure {
        Figure {
            name: name.to_owned(),
            value: bytes as f64 / secs / 1e6,
            unit: "MB/s",
            extra: vec![("seconds", secs)],
        }
    }

    /// Requests completed in `secs`, with latency percentiles in milliseconds.
    pub fn rate(name: &str, mut latencies: Vec<Duration>, secs: f64) -> Figure {
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Figure {
            name: name.to_owned(),
            value: latencies.len() as f64 / secs,
            unit: "req/s",
            extra: vec![
                ("p50_ms", pct(0.50)),
                ("p99_ms", pct(0.99)),
                ("max_ms", pct(1.0)),
                ("requests", latencies.len() as f64),
            ],
        }
    }

    /// The figure with one more named value printed beside it.
    pub fn with(mut self, key: &'static str, value: f64) -> Figure {
        self.extra.push((key, value));
        self
    }

    /// Prints a line of text or JSON.
    pub fn print(&self, json: bool) {
        if json {
            let mut v =
                serde_json::json!({ "name": self.name, "value": self.value, "unit": self.unit });
            for (k, x) in &self.extra {
                v[*k] = serde_json::json!(x);
            }
            println!("{v}");
        } else {
            let extra: Vec<String> = self
                .extra
                .iter()
                .map(|(k, x)| format!("{k}={x:.3}"))
                .collect();
            println!(
                "{:<44} {:>12.1} {:<6} {}",
                self.name,
                self.value,
                self.unit,
                extra.join(" ")
            );
        }
    }
}

/// Sends `mib` MiB through a loopback TCP connection: the rate no HTTP transfer here can beat.
pub async fn loopback(mib: u64) -> Result<Figure, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let total = mib << 20;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if k == 0 {
                return Ok::<u64, String>(n);
            }
            n += k as u64;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let buf = vec![7u8; 1 << 20];
    let started = Instant::now();
    for _ in 0..mib {
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
    }
    s.shutdown().await.map_err(|e| e.to_string())?;
    drop(s);
    let got = reader.await.map_err(|e| e.to_string())??;
    let secs = started.elapsed().as_secs_f64();
    if got != total {
        return Err(format!("loopback moved {got} of {total} bytes"));
    }
    Ok(Figure::throughput(
        &format!("limit_loopback_tcp_{mib}MiB"),
        total,
        secs,
    ))
}
