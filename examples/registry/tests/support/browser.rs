//! Headless Chromium driven through ChromeDriver (Debian's `chromium` and `chromium-driver`) with
//! the fantoccini WebDriver client, for the web UI tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// ChromeDriver on a free port, and a browser session through it; both end when dropped.
pub struct Browser {
    driver: Child,
    profile: std::path::PathBuf,
    pub client: Client,
}

/// How the browser's window is: its size, and the colour scheme it prefers.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub width: u32,
    pub height: u32,
    /// Whether the system prefers a dark scheme (`prefers-color-scheme: dark`).
    pub dark: bool,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            width: 1280,
            height: 900,
            dark: false,
        }
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium whose profile lives under `dir`.
    pub async fn start(dir: &Path) -> Browser {
        Browser::start_with(dir, Window::default()).await
    }

    /// [`Browser::start`] with a window of this size and scheme.
    pub async fn start_with(dir: &Path, window: Window) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium chromium-driver)");
        super::wait::until(
            "chromedriver listening",
            Duration::from_secs(30),
            async || {
                if let Ok(Some(status)) = driver.try_wait() {
                    panic!("chromedriver exited: {status}");
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        )
        .await;
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        // Flags from the machine notes: no sandbox as root, no background traffic to a closed
        // network, a fresh profile.
        let args = serde_json::json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--window-size={},{}", window.width, window.height),
            format!("--user-data-dir={}", profile.display()),
        ]);
        let mut args = args.as_array().cloned().unwrap_or_default();
        if window.dark {
            // Blink's preferred scheme: 0 is dark.
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            profile,
            client,
        }
    }

    /// Ends the browser session (and Chromium with it).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// The text of the first element `css` selects, waiting for it (ten seconds at most). An
    /// element that a navigation replaced between finding and reading it is found again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let element = self
                .client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match element.text().await {
                Ok(text) => return text,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot read {css}: {e}"),
            }
        }
    }

    /// Clicks the first element `css` selects, waiting for it.
    pub async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// The value of the JavaScript expression `expression` on the current page.
    pub async fn eval(&self, expression: &str) -> serde_json::Value {
        self.client
            .execute(&format!("return {expression};"), vec![])
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// The page's HTML source.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A test that failed before closing leaves Chromium running: its profile names it.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.display().to_string())
            .status();
    }
}
