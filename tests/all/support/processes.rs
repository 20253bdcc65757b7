//! `bandpass serve` as a child process of a test: its config and how it
//! is started ([`ServeBuilder`]), the running process ([`Serve`]), the
//! signals the tests send it, and what /proc and its log say of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::http::{admin_until, free_addr};
use super::kafka::{brokers, unique};
use super::{bandpass_bin, filters_dir};

/// A `bandpass serve` process, killed if the test ends early.
pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config for `bandpass serve` and how to start it on that config.
///
/// The config reads one input topic in one group from the earliest
/// offset, with a short session so that a killed instance's partitions
/// move on quickly; [`write`](Self::write) writes it, after which a test
/// may still edit the file before [`spawn`](Self::spawn) or
/// [`start`](Self::start). A clone, given another log, starts another
/// instance on the same config (and on the same admin port, if any: one
/// at a time then).
#[derive(Clone)]
pub struct ServeBuilder {
    config: PathBuf,
    brokers: String,
    input: String,
    group: String,
    dead_letter: String,
    cache_dir: Option<PathBuf>,
    schemas: Option<PathBuf>,
    /// Each filter's component, output topic and more keys of its table.
    filters: Vec<(PathBuf, String, String)>,
    /// Lines after everything else (more sections).
    extra: String,
    admin: Option<(SocketAddr, String)>,
    binary: PathBuf,
    log: Option<PathBuf>,
    args: Vec<String>,
}

impl ServeBuilder {
    /// A config to be written at `config`, reading `input` in `group` on
    /// the shared broker, with a dead-letter topic of its own and no
    /// filter yet.
    pub fn new(config: impl Into<PathBuf>, input: &str, group: &str) -> ServeBuilder {
        ServeBuilder {
            config: config.into(),
            brokers: brokers(),
            input: input.to_string(),
            group: group.to_string(),
            dead_letter: unique("dead-letter"),
            cache_dir: None,
            schemas: None,
            filters: Vec::new(),
            extra: String::new(),
            admin: None,
            binary: bandpass_bin(),
            log: None,
            args: Vec::new(),
        }
    }

    /// Through the broker at `brokers` instead of the shared one.
    pub fn brokers(mut self, brokers: &str) -> ServeBuilder {
        self.brokers = brokers.to_string();
        self
    }

    /// Where bad messages go.
    pub fn dead_letter_topic(&self) -> &str {
        &self.dead_letter
    }

    /// Bad messages go to `topic`.
    pub fn dead_letter(mut self, topic: &str) -> ServeBuilder {
        self.dead_letter = topic.to_string();
        self
    }

    /// Compiled components cached in `dir`, a cache of its own.
    pub fn cache_dir(mut self, dir: &Path) -> ServeBuilder {
        self.cache_dir = Some(dir.to_path_buf());
        self
    }

    /// Schemas read from `dir`.
    pub fn schemas(mut self, dir: &Path) -> ServeBuilder {
        self.schemas = Some(dir.to_path_buf());
        self
    }

    /// The built sample filter `stem` (its component's file name),
    /// producing to `output`.
    pub fn filter(self, stem: &str, output: &str) -> ServeBuilder {
        let path = filters_dir().join(format!("{stem}.wasm"));
        self.filter_at(&path, output)
    }

    /// The component at `path`, producing to `output`.
    pub fn filter_at(self, path: &Path, output: &str) -> ServeBuilder {
        self.filter_with(path, output, "")
    }

    /// [`filter_at`](Self::filter_at), with `keys` (such as `params = {
    /// max_mag = "18" }`) in its table.
    pub fn filter_with(mut self, path: &Path, output: &str, keys: &str) -> ServeBuilder {
        self.filters
            .push((path.to_path_buf(), output.to_string(), keys.to_string()));
        self
    }

    /// `text` (more sections, such as `[sky]`) at the end of the config.
    pub fn extra(mut self, text: &str) -> ServeBuilder {
        self.extra.push_str(text);
        self
    }

    /// An admin port on a loopback port free now; see
    /// [`admin_addr`](Self::admin_addr).
    pub fn admin(self) -> ServeBuilder {
        self.admin_with("")
    }

    /// [`admin`](Self::admin), with `keys` (more keys and subtables of
    /// `[admin]`) after its address.
    pub fn admin_with(mut self, keys: &str) -> ServeBuilder {
        self.admin = Some((free_addr(), keys.to_string()));
        self
    }

    /// Runs the executable at `binary` instead of the one built for these
    /// tests.
    pub fn binary(mut self, binary: &Path) -> ServeBuilder {
        self.binary = binary.to_path_buf();
        self
    }

    /// bandpass's INFO logs (and every warning) go to `log` rather than
    /// to the test's output.
    pub fn log(mut self, log: &Path) -> ServeBuilder {
        self.log = Some(log.to_path_buf());
        self
    }

    /// More arguments after `serve`'s own.
    pub fn args(mut self, args: &[&str]) -> ServeBuilder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes the config file.
    pub fn write(self) -> ServeBuilder {
        let mut toml = format!(
            "dead_letter_topic = \"{dead_letter}\"\n\
             [kafka]\nbrokers = [\"{brokers}\"]\n\
             [kafka.librdkafka]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\
             [input]\ntopics = [\"{input}\"]\ngroup = \"{group}\"\nstart = \"earliest\"\n",
            dead_letter = self.dead_letter,
            brokers = self.brokers,
            input = self.input,
            group = self.group,
        );
        if let Some(cache) = &self.cache_dir {
            toml.push_str(&format!("[engine]\ncache_dir = \"{}\"\n", cache.display()));
        }
        if let Some(schemas) = &self.schemas {
            toml.push_str(&format!("[schemas]\ndir = \"{}\"\n", schemas.display()));
        }
        for (path, output, keys) in &self.filters {
            toml.push_str(&format!(
                "[[filter]]\npath = \"{}\"\noutput_topic = \"{output}\"\n{keys}\n",
                path.display()
            ));
        }
        if let Some((addr, keys)) = &self.admin {
            toml.push_str(&format!("[admin]\nlisten = \"{addr}\"\n{keys}"));
        }
        toml.push('\n');
        toml.push_str(&self.extra);
        std::fs::write(&self.config, toml).unwrap();
        self
    }

    /// Where the config is written.
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// The admin port's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.as_ref().expect("a config with an admin port").0
    }

    /// Starts `bandpass serve` on the config.
    pub fn spawn(&self) -> Serve {
        let mut command = Command::new(&self.binary);
        command.arg("serve");
        if let Some(log) = &self.log {
            command
                .args(["--log", "warn,bandpass=info"])
                .stderr(std::fs::File::create(log).unwrap());
        }
        command
            .args(["--config", self.config.to_str().unwrap()])
            .args(&self.args);
        Serve(command.spawn().expect("bandpass serve starts"))
    }

    /// [`spawn`](Self::spawn)s it and waits until its admin port answers
    /// `/readyz` with 200.
    pub fn start(&self) -> Serve {
        let serve = self.spawn();
        let (status, body) =
            admin_until(self.admin_addr(), "/readyz", 200, Duration::from_secs(90));
        if status != 200 {
            // What serve said, where it logs to a file.
            let said = self
                .log
                .as_ref()
                .and_then(|l| std::fs::read_to_string(l).ok())
                .map(|t| t.lines().rev().take(30).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            panic!("never ready: {body}; its log, last lines first:\n{said}");
        }
        serve
    }
}

/// Sends SIGTERM and returns the exit status (within 60 s).
pub fn terminate(serve: &mut Serve) -> ExitStatus {
    signal(serve, "-TERM");
    exited_within(serve, Duration::from_secs(60))
        .expect("serve did not exit within 60 s of SIGTERM")
}

/// Sends SIGHUP: serve reloads its config.
pub fn hangup(serve: &Serve) {
    signal(serve, "-HUP");
}

fn signal(serve: &Serve, signal: &str) {
    let pid = serve.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// serve's exit status once it has exited, or `None` if it still runs
/// after `wait`.
pub fn exited_within(serve: &mut Serve, wait: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `log` holds `n` lines containing `text` (within 60 s).
pub fn wait_for_log(log: &Path, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(text)
            .count();
        if found >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} x '{text}' in the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The processes whose parent is `pid` (from /proc: field 4 of `stat`).
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // `pid (comm) state ppid ...`; the name may hold spaces.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid.parse::<u32>().ok()? == pid).then_some(child)
        })
        .collect()
}

/// Resident memory of a process, in MiB (`VmRSS` in /proc).
pub fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

/// [`resident_mib`] once it has settled: the same (within 1 MiB) for
/// 3 s, so that serve's once-a-second return of freed memory has run.
pub fn settled_resident_mib(pid: u32) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (resident_mib(pid), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = resident_mib(pid);
        if (now - last).abs() > 1.0 {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(3) {
            return now;
        }
        assert!(Instant::now() < deadline, "serve's RSS never settled");
    }
}

/// Runs Debian's Chromium headless (scripts/test.sh installs it) on `args`
/// and returns what it printed.
pub fn chromium(args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(args)
        .output()
        .expect("chromium runs (scripts/test.sh installs it: apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
