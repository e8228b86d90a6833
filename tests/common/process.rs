//! The built `rampart` binary run as a user (or a supervisor) would: one
//! `rampart run` at a time, or a [`Fleet`] of named instances with
//! per-incarnation logs that a test kills, stalls and restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Workload;

/// The binary cargo built for these tests (and benches).
pub const RAMPART_BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// `rampart run --config <config> <args>`, output on the test's own stdout/stderr.
pub fn rampart_cmd(config: &Path, args: &[&str]) -> Child {
    Command::new(RAMPART_BIN)
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RAMPART_LOG", "info,rdkafka=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rampart")
}

impl Workload {
    /// `rampart run` on this workload's config.
    pub fn rampart(&self, args: &[&str]) -> Child {
        rampart_cmd(&self.config_path, args)
    }
}

/// Sends SIGTERM and waits (bounded) for the exit status.
pub fn terminate(child: &mut Child) -> ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    wait_bounded(child, Duration::from_secs(60))
}

pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rampart did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `rampart run` process of a [`Fleet`], with a stable instance name.
pub struct Instance {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub incarnation: u32,
    pub started: Instant,
}

/// Starts and restarts `rampart run` processes for one workload.
pub struct Fleet {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub extra_args: Vec<String>,
    /// Extra arguments of one instance (e.g. `--role ingest`), kept across restarts.
    pub instance_args: BTreeMap<String, Vec<String>>,
    /// Extra environment of the next starts (e.g. `RAMPART_PROCESSING__CHECKPOINT_INTERVAL`).
    pub env: Vec<(String, String)>,
    pub live: BTreeMap<String, Instance>,
    incarnations: BTreeMap<String, u32>,
    /// Processes that exited on their own (not by the driver) and were restarted.
    pub unexpected_exits: Vec<(String, String)>,
    pub logs: Vec<PathBuf>,
}

impl Fleet {
    pub fn new(w: &Workload) -> Self {
        Fleet {
            bin: PathBuf::from(RAMPART_BIN),
            config: w.config_path.clone(),
            dir: w.dir.path().to_owned(),
            extra_args: Vec::new(),
            env: Vec::new(),
            instance_args: BTreeMap::new(),
            live: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            unexpected_exits: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Starts instance `name` (again), its stderr in `<name>.<incarnation>.log`.
    pub fn start(&mut self, name: &str) {
        assert!(!self.live.contains_key(name), "{name} already runs");
        let n = self.incarnations.entry(name.to_owned()).or_default();
        *n += 1;
        let log = self.dir.join(format!("{name}.{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--instance", name])
            .args(&self.extra_args)
            .args(self.instance_args.get(name).into_iter().flatten())
            .env("RAMPART_LOG", "info,rdkafka=warn")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn rampart");
        eprintln!("[driver] started {name}#{n} pid {}", child.id());
        self.logs.push(log.clone());
        self.live.insert(
            name.to_owned(),
            Instance {
                name: name.to_owned(),
                child,
                log,
                incarnation: *n,
                started: Instant::now(),
            },
        );
    }

    pub fn names(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    fn signal(&self, name: &str, sig: &str) {
        let pid = self.live[name].child.id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// SIGKILL, reaped; the instance is no longer live.
    pub fn kill9(&mut self, name: &str) {
        let mut inst = self.live.remove(name).unwrap();
        eprintln!("[driver] SIGKILL {name} pid {}", inst.child.id());
        let _ = inst.child.kill();
        let _ = inst.child.wait();
    }

    /// SIGTERM and a bounded wait; returns the exit status.
    pub fn terminate(&mut self, name: &str) -> ExitStatus {
        self.signal(name, "-TERM");
        let mut inst = self.live.remove(name).unwrap();
        eprintln!("[driver] SIGTERM {name} pid {}", inst.child.id());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = inst.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = inst.child.kill();
                let _ = inst.child.wait();
                panic!("{name} did not exit within 90 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&self, name: &str) {
        eprintln!("[driver] SIGSTOP {name}");
        self.signal(name, "-STOP");
    }

    pub fn cont(&self, name: &str) {
        eprintln!("[driver] SIGCONT {name}");
        self.signal(name, "-CONT");
    }

    /// Restarts processes that exited on their own (as a process supervisor
    /// would); returns how many.
    pub fn supervise(&mut self) -> usize {
        let mut exited = Vec::new();
        for (name, inst) in &mut self.live {
            if let Some(status) = inst.child.try_wait().unwrap() {
                exited.push((name.clone(), format!("{status}")));
            }
        }
        for (name, status) in &exited {
            let log = std::fs::read_to_string(&self.live[name].log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            eprintln!(
                "[driver] {name} exited on its own ({status}); restarting. Log tail: {tail:?}"
            );
            self.live.remove(name);
            self.unexpected_exits.push((name.clone(), status.clone()));
            assert!(
                self.unexpected_exits.len() <= 20,
                "crash loop: {:?}",
                self.unexpected_exits
            );
            // A supervisor's restart back-off.
            std::thread::sleep(Duration::from_millis(500));
            self.start(name);
        }
        exited.len()
    }

    /// Sleeps `d` while supervising.
    pub fn sleep(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.supervise();
            std::thread::sleep(Duration::from_millis(100).min(end - Instant::now().min(end)));
        }
    }

    /// SIGTERMs every live instance; returns the statuses.
    pub fn shutdown(&mut self) -> Vec<(String, ExitStatus)> {
        self.names()
            .into_iter()
            .map(|n| {
                let s = self.terminate(&n);
                (n, s)
            })
            .collect()
    }

    /// The last lines of every log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s.push_str(&format!("==== {}\n", log.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// Log lines (all incarnations) containing `needle`.
    pub fn grep(&self, needle: &str) -> Vec<String> {
        let mut v = Vec::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains(needle)) {
                v.push(format!(
                    "{}: {l}",
                    log.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        v
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for inst in self.live.values_mut() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(inst.child.id().to_string())
                .status();
            let _ = inst.child.kill();
            let _ = inst.child.wait();
        }
    }
}

/// A `rampart run` whose stderr lines the test reads (and echoes).
pub struct LoggedRampart {
    pub child: Child,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedRampart {
    /// `rampart run --config <config> <args>` with `env`, stderr captured.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(RAMPART_BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RAMPART_LOG", "info,rdkafka=warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[rampart {pid}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        LoggedRampart { child, lines }
    }

    /// The first captured line containing `needle`, waiting up to `limit`.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The metrics address it logged (`metrics.listen = "127.0.0.1:0"`).
    pub fn metrics_addr(&self) -> String {
        let marker = "metrics listening on http://";
        let line = self
            .wait_for_line(marker, Duration::from_secs(30))
            .expect("rampart did not log its metrics address");
        let rest = &line[line.find(marker).unwrap() + marker.len()..];
        rest.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect()
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for LoggedRampart {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET `path` from `addr`: the status code and body, `None` when nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((code, body))
}
