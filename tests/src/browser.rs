//! A real browser for the dashboard's tests: Debian's `chromedriver`
//! started on a free loopback port, driving headless `chromium` through
//! WebDriver (`fantoccini`), and stopped with everything it started when
//! the [`Browser`] is dropped. `scripts/install-browser` installs both.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::READY_TIMEOUT;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless chromium driven through its chromedriver.
pub struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// chromium session that accepts the grid's own certificates.
    pub async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(Path::new(path).exists(), "`{path}` is missing: run scripts/install-browser");
        }
        let port =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // Its own process group, so that the browsers it starts end with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("spawn chromedriver");
        let mut browser = Browser { driver, client: None };
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(start.elapsed() < READY_TIMEOUT, "chromedriver did not listen on port {port}");
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("chromedriver exited with {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1360,900"],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("open a chromium session");
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body that may `return` a value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client().execute(script, Vec::new()).await.unwrap_or_else(|e| panic!("run `{script}`: {e}"))
    }

    /// Polls `script` until it returns something other than null, false or
    /// an empty string, and returns that; fails the test after
    /// [`READY_TIMEOUT`], saying `what` it waited for.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            match self.eval(script).await {
                Value::Null | Value::Bool(false) => {}
                Value::String(s) if s.is_empty() => {}
                v => return v,
            }
            if start.elapsed() > READY_TIMEOUT {
                let shot = self.screenshot("timed-out").await;
                panic!("timed out waiting for {what} (the page is in {})", shot.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css` finds, once it is there; again if the page
    /// redrew it between finding and clicking (live tables do).
    pub async fn click(&self, css: &str) {
        let start = Instant::now();
        loop {
            let el = self.client().wait().at_most(READY_TIMEOUT).for_element(Locator::Css(css)).await;
            match el.unwrap_or_else(|e| panic!("find `{css}`: {e}")).click().await {
                Ok(()) => return,
                Err(_) if start.elapsed() < READY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("click `{css}`: {e}"),
            }
        }
    }

    /// Types `text` into the element `css` finds (for a file input, a path
    /// to upload).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.client().wait().at_most(READY_TIMEOUT).for_element(Locator::Css(css)).await;
        el.unwrap_or_else(|e| panic!("find `{css}`: {e}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// Empties the input `css` finds.
    pub async fn clear(&self, css: &str) {
        let el = self.client().wait().at_most(READY_TIMEOUT).for_element(Locator::Css(css)).await;
        el.unwrap_or_else(|e| panic!("find `{css}`: {e}"))
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
    }

    /// Saves a screenshot of the page as `target/screenshots/NAME.png`,
    /// prints its path, and returns it.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("take a screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("make target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the session (which closes chromium) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's process group: chromedriver and the browsers it
        // started, which a failed test leaves open.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.wait();
    }
}

/// `target/screenshots`, beside the profile dirs of this test binary.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-HASH
    let target = exe.ancestors().nth(3).expect("target dir");
    target.join("screenshots")
}
