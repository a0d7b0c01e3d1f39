//! A tiny W3C WebDriver client for the browser tests: starts `chromedriver` on a free
//! loopback port, opens one headless Chromium session and drives it over the WebDriver HTTP
//! API with reqwest (the client the other tests use). Chromedriver runs in its own process
//! group, which Chromium's processes join, so dropping a [`Browser`] kills all of them even
//! when a test panics half-way.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian's `chromium` package puts the browser; `INNKEEP_CHROMIUM` overrides it.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` package puts chromedriver; `INNKEEP_CHROMEDRIVER`
/// overrides it.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Most time chromedriver gets to listen, and a session to start (a loaded 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The browser or driver binary named by `var`, else `default`. Missing is a failure, not
/// a skip: README's test command installs both.
fn tool(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing (Debian package `{package}`; set {var} to use another path). The \
         browser tests need chromium and chromium-driver: run the README's test command, \
         `scripts/test.sh`, which installs them when they are missing.",
        path.display()
    );
    path
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The chromedriver process, leader of its own process group. Dropping it SIGKILLs the
/// whole group: chromedriver and every Chromium process it started.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the leader's pid. `kill` from the command line: the crate forbids
        // unsafe code, so no libc::kill.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it says it listens (a port taken
    /// in the meantime makes it exit; then another port is tried).
    async fn start(binary: &PathBuf, log: &std::path::Path) -> Driver {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(binary)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let stdout = child.stdout.take().expect("chromedriver stdout");
            let driver = Driver {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            // Its stdout says "ChromeDriver was started successfully on port N." once it
            // listens, or why it exits.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("started successfully") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    seen.push(line);
                }
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Err(seen.join("\n")));
                }
            });
            match tokio::time::timeout(START_TIMEOUT, rx).await {
                Ok(Ok(Ok(()))) => return driver,
                Ok(Ok(Err(output))) => failures.push(output),
                Ok(Err(_)) => failures.push("no output".to_owned()),
                Err(_) => failures.push(format!("not listening within {START_TIMEOUT:?}")),
            }
        }
        panic!("chromedriver did not start: {failures:#?}");
    }
}

/// One headless Chromium session.
pub struct Browser {
    // Dropped in this order: the processes first, then their profile directory.
    driver: Driver,
    profile: tempfile::TempDir,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Browser {
        let chromium = tool("INNKEEP_CHROMIUM", CHROMIUM, "chromium");
        let chromedriver = tool("INNKEEP_CHROMEDRIVER", CHROMEDRIVER, "chromium-driver");
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = Driver::start(&chromedriver, &profile.path().join("chromedriver.log")).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(START_TIMEOUT)
            .build()
            .expect("client");
        let user_data = profile.path().join("chromium");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", user_data.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let res = http
            .post(format!("{}/session", driver.base))
            .json(&capabilities)
            .send()
            .await
            .expect("new session");
        let status = res.status();
        let body: Value = res.json().await.expect("new session answer");
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session ({status}): {body}"))
            .to_owned();
        Browser {
            driver,
            profile,
            session,
            http,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = res.status();
        let body: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: bad answer: {e}"));
        assert!(
            status.is_success(),
            "WebDriver {method} {path} → {status}: {}",
            body["value"]
        );
        body["value"].clone()
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` every 100 ms until it returns something other than `null`, `false`,
    /// `undefined` or `""`, and returns that; fails the test after `within`, showing what
    /// the page looked like.
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        script: &str,
        args: Value,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.execute(script, args.clone()).await;
            if !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not seen within {within:?}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's state, text and console messages, for failure messages.
    pub async fn diagnostics(&self) -> String {
        let page = self
            .execute(
                "return {url: location.href, data: Object.assign({}, document.body.dataset), \
                 text: document.body.innerText.slice(0, 3000)};",
                json!([]),
            )
            .await;
        // Chromedriver's (non-W3C) log endpoint; best effort.
        let console = self
            .http
            .post(format!(
                "{}/session/{}/se/log",
                self.driver.base, self.session
            ))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .ok();
        let console = match console {
            Some(res) => res.json::<Value>().await.unwrap_or(Value::Null)["value"].clone(),
            None => Value::Null,
        };
        let log = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        format!(
            "page: {page:#}\nconsole: {console:#}\nchromedriver log (last lines, newest first):\n{}",
            tail.join("\n")
        )
    }

    /// Ends the session (Chromium quits); the driver is killed on drop.
    pub async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.driver.base, self.session))
            .send()
            .await;
    }
}
