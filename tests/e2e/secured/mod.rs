//! rampart against a Kafka that requires TLS, client certificates, SASL/SCRAM logins and ACLs:
//! one private broker (rampart-localkafka) with every listener, certificates from a CA made at
//! test time, KRaft's StandardAuthorizer. `listeners`: loadgen → run → verify exact over each
//! secured listener, secrets in no output. `refused`: wrong password, untrusted CA, wrong-host
//! certificate, missing client certificate and ACL denials end the command fast, naming the
//! cause in one line.

mod listeners;
mod refused;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rampart_testkit::{KafkaBroker, Listener, Options, unique_name};

/// A super user on the SCRAM listeners.
const APP_USER: &str = "rampart-app";
const APP_PASSWORD: &str = "Zq7pw-91827364-sEcret";
/// A user with ACLs: everything allowed except what a test denies.
const LIMITED_USER: &str = "rampart-limited";
const LIMITED_PASSWORD: &str = "Lm4-50192837-hIdden";
/// Encrypts the client certificate's key (`ssl.key.password`).
const KEY_PASSWORD: &str = "Kp9-77123490-pRivate";
/// Every secret: none may appear in any output.
const SECRETS: [&str; 3] = [APP_PASSWORD, LIMITED_PASSWORD, KEY_PASSWORD];

/// The broker of this module, started once; the watchdog kills it when the test binary ends.
fn secured_broker() -> &'static KafkaBroker {
    static BROKER: OnceLock<KafkaBroker> = OnceLock::new();
    BROKER.get_or_init(|| {
        let options = Options {
            scram_users: vec![
                (APP_USER.into(), APP_PASSWORD.into()),
                (LIMITED_USER.into(), LIMITED_PASSWORD.into()),
            ],
            tls: true,
            client_key_password: Some(KEY_PASSWORD.into()),
            super_users: Some(vec![
                format!("User:{APP_USER}"),
                "User:CN=rampart-client".into(),
            ]),
        };
        let broker = KafkaBroker::start_private_with(&options).unwrap();
        let limited = format!("User:{LIMITED_USER}");
        broker
            .local()
            .unwrap()
            .create_acls(&[
                "--allow-principal",
                &limited,
                "--operation",
                "All",
                "--topic",
                "*",
                "--group",
                "*",
                "--transactional-id",
                "*",
            ])
            .unwrap();
        broker
    })
}

fn listener(l: Listener) -> String {
    secured_broker().local().unwrap().listener(l).unwrap()
}

fn tls_file(name: &str) -> String {
    let dir = secured_broker().local().unwrap().tls_dir().unwrap();
    dir.join(name).display().to_string()
}

/// How a client reaches one listener: its address and `[kafka.client]` lines (secrets by
/// `*_file`, written to `dir`).
struct Access {
    bootstrap: String,
    client: Vec<(String, String)>,
}

impl Access {
    fn new(l: Listener, client: &[(&str, &str)]) -> Access {
        Access {
            bootstrap: listener(l),
            client: client
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// SCRAM-SHA-512 as `user`, the password from a file.
    fn scram(l: Listener, user: &str, password_file: &Path) -> Access {
        let protocol = if l == Listener::SaslSsl {
            "SASL_SSL"
        } else {
            "SASL_PLAINTEXT"
        };
        let mut access = Access::new(
            l,
            &[
                ("security.protocol", protocol),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", user),
                ("sasl.password_file", &password_file.display().to_string()),
            ],
        );
        if l == Listener::SaslSsl {
            access
                .client
                .push(("ssl.ca.location".into(), tls_file("ca.pem")));
        }
        access
    }

    fn without(mut self, key: &str) -> Access {
        self.client.retain(|(k, _)| k != key);
        self
    }
}

/// Writes `secret` to `dir/name` (with a newline, as `echo` would) and returns the path.
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// Fresh topics and groups, small windows, the world files in `dir/world`.
fn write_config(dir: &Path, name: &str, access: &Access, extra: &str) -> PathBuf {
    let w = dir.join("world");
    let client: String = access
        .client
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let text = format!(
        r#"
[kafka]
brokers = "{bootstrap}"
ingest_group = "{ig}"
merge_group = "{mg}"

[kafka.client]
{client}
[topics]
input = "{input}"
partials = "{partials}"
rollups = "{rollups}"
dlq = "{dlq}"
input_partitions = 2
partials_partitions = 2
rollups_partitions = 2

[window]
size = "2s"
out_of_orderness = "1s"
allowed_lateness = "1s"
idle_timeout = "2s"

[enrich]
country_db = "{w}/country.mmdb"
asn_db = "{w}/asn.mmdb"
sectors = "{w}/sectors.csv"

[processing]
checkpoint_interval = "300ms"
{extra}
"#,
        bootstrap = access.bootstrap,
        ig = unique_name("ingest"),
        mg = unique_name("merge"),
        input = unique_name("raw"),
        partials = unique_name("partials"),
        rollups = unique_name("rollups"),
        dlq = unique_name("dlq"),
        w = w.display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of `key` in a config written by [`write_config`].
fn config_value(config: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table
        .values()
        .filter_map(|v| v.as_table())
        .find_map(|t| t.get(key).and_then(|v| v.as_str()))
        .unwrap()
        .to_owned()
}

/// Runs `rampart ARGS` to completion (debug logs), echoing its output for the test log.
fn rampart(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .envs(env.iter().copied())
        .env("RAMPART_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ rampart {}\n--- stdout\n{}--- stderr (tail)\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 12)
    );
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

/// Fails the test if any secret appears in `printed`, quoting the lines.
fn assert_no_secret(printed: &str) {
    for secret in SECRETS {
        let lines: Vec<&str> = printed.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            lines.is_empty(),
            "a secret was printed:\n{}",
            lines.join("\n")
        );
    }
}
