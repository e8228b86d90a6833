//! Issue 13's "done when": a Suricata EVE file and a Zeek conn JSON file,
//! produced into Kafka with a plain client, give rollups equal to the ground
//! truth. Two `[[inputs]]` topics (EVE with two partitions, one of them
//! empty, and Zeek conn) feed one `rampart run`.
//!
//! The documents are written here, by this test's own code after each
//! sensor's documented output (not by `rampart-formats`' encoders), from
//! loadgen events; the truth is the reference model over those events, as
//! each format carries them by the documented rules (Zeek conn: no rule id;
//! kinds scan or backscatter). Faults added to the files: records that are
//! skipped by rule (EVE `stats`, `dns`), a line that is no JSON, a field of
//! the wrong type and a time in 2100, each dead-lettered alone.

use std::fmt::Write as _;
use std::time::Duration;

use prost::Message as _;
use rampart_core::model::{self, ModelInput};
use rampart_core::proto::v1::{AttackEvent, AttackEventBatch, AttackKind, Dimension};

use crate::common::*;

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]]).to_string(),
        _ => {
            let a: [u8; 16] = b.try_into().unwrap();
            std::net::Ipv6Addr::from(a).to_string()
        }
    }
}

/// `time_ms` in UTC-4 the way Suricata writes it (microseconds, `-0400`).
fn suricata_time(time_ms: i64) -> String {
    let local = time_ms - 4 * 3_600_000;
    let days = local.div_euclid(86_400_000);
    let ms = local.rem_euclid(86_400_000);
    // Civil date from days (Howard Hinnant's algorithm), written out here.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}417-0400",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Suricata classifications by kind (docs/formats.md's table).
fn category(kind: i32) -> &'static str {
    match AttackKind::try_from(kind).unwrap() {
        AttackKind::Scan => "Detection of a Network Scan",
        AttackKind::Backscatter => "Attempted Denial of Service",
        AttackKind::BruteForce => "An attempted login using a suspicious username was detected",
        AttackKind::Exploit => "Web Application Attack",
        _ => "A Network Trojan was detected",
    }
}

/// One EVE alert line; `n` varies the shape across Suricata versions.
fn eve_alert(e: &AttackEvent, n: usize) -> String {
    let mut s = format!(r#"{{"timestamp":"{}""#, suricata_time(e.time_ms));
    if !e.event_id.is_empty() {
        let flow = u64::from_str_radix(&e.event_id, 16).unwrap();
        write!(s, r#","flow_id":{flow}"#).unwrap();
    }
    let icmp = e.protocol == 1 || e.protocol == 58;
    let proto = match (e.protocol, e.src_ip.len()) {
        (6, _) => "TCP".to_owned(),
        (17, _) => "UDP".to_owned(),
        (1, 4) => "ICMP".to_owned(),
        (1 | 58, _) => "IPv6-ICMP".to_owned(),
        (p, _) => format!("{p:03}"),
    };
    write!(
        s,
        r#","in_iface":"eth0","event_type":"alert","src_ip":"{}","#,
        ip_text(&e.src_ip)
    )
    .unwrap();
    if icmp {
        write!(
            s,
            r#""dest_ip":"{}","proto":"{proto}","icmp_type":{},"icmp_code":{}"#,
            ip_text(&e.dst_ip),
            e.src_port,
            e.dst_port
        )
        .unwrap();
    } else {
        write!(
            s,
            r#""src_port":{},"dest_ip":"{}","dest_port":{},"proto":"{proto}""#,
            e.src_port,
            ip_text(&e.dst_ip),
            e.dst_port
        )
        .unwrap();
    }
    if n.is_multiple_of(3) {
        s.push_str(r#","pkt_src":"wire/pcap","host":"sensor-a""#);
    }
    write!(
        s,
        r#","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":2,"signature":"test","category":"{}","severity":2}}"#,
        e.rule_id,
        category(e.kind)
    )
    .unwrap();
    let (ps, bs) = (e.packets / 2, e.bytes / 3);
    write!(
        s,
        r#","flow":{{"pkts_toserver":{},"pkts_toclient":{},"bytes_toserver":{},"bytes_toclient":{},"start":"{}"}}}}"#,
        e.packets - ps,
        ps,
        e.bytes - bs,
        bs,
        suricata_time(e.time_ms - 1000)
    )
    .unwrap();
    s
}

/// One conn.log line (Zeek's default JSON: epoch seconds, flat `id.*` names).
fn zeek_conn(e: &AttackEvent, n: usize) -> String {
    let backscatter = e.kind == AttackKind::Backscatter as i32;
    let (src, dst) = (
        (ip_text(&e.src_ip), e.src_port),
        (ip_text(&e.dst_ip), e.dst_port),
    );
    // Zeek flips a connection that starts with a SYN-ACK (history `^`).
    let flipped = backscatter && n.is_multiple_of(2);
    let (orig, resp, history) = match (backscatter, flipped) {
        (true, true) => (dst, src, "^hA"),
        (true, false) => (src, dst, "H"),
        (false, _) => (src, dst, ["S", "Sr", "D"][n % 3]),
    };
    let proto = match e.protocol {
        6 => "tcp",
        17 => "udp",
        _ => "icmp",
    };
    let (op, rp) = (e.packets - e.packets / 2, e.packets / 2);
    let (ob, rb) = (e.bytes - e.bytes / 2, e.bytes / 2);
    let ((op, ob), (rp, rb)) = if flipped {
        ((rp, rb), (op, ob))
    } else {
        ((op, ob), (rp, rb))
    };
    let mut s = format!(r#"{{"ts":{}.{:03}288"#, e.time_ms / 1000, e.time_ms % 1000);
    if !e.event_id.is_empty() {
        write!(s, r#","uid":"C{}""#, e.event_id).unwrap();
    }
    write!(
        s,
        r#","id.orig_h":"{}","id.orig_p":{},"id.resp_h":"{}","id.resp_p":{},"proto":"{proto}","conn_state":"OTH","missed_bytes":0,"history":"{history}","orig_pkts":{op},"orig_ip_bytes":{ob},"resp_pkts":{rp},"resp_ip_bytes":{rb}}}"#,
        orig.0, orig.1, resp.0, resp.1
    )
    .unwrap();
    s
}

/// What Zeek conn carries of an event: no rule id; scan or backscatter.
fn as_zeek_carries(e: &AttackEvent) -> AttackEvent {
    let kind = if e.kind == AttackKind::Backscatter as i32 {
        AttackKind::Backscatter
    } else {
        AttackKind::Scan
    };
    AttackEvent {
        rule_id: 0,
        kind: kind as i32,
        event_id: if e.event_id.is_empty() {
            String::new()
        } else {
            format!("C{}", e.event_id)
        },
        ..e.clone()
    }
}

#[test]
fn an_eve_file_and_a_zeek_conn_file_give_the_ground_truth() {
    let w = workload(
        broker(),
        &Spec {
            events: 6_000,
            partitions: 2,
            malformed_share: 0.0,
            ..Spec::default()
        },
    );
    let eve_topic = w.topics.input.clone();
    let zeek_topic = format!("{}-zeek", w.topics.input);
    broker()
        .create_topic_with(&zeek_topic, 1, &[("retention.ms", "-1")])
        .unwrap();
    // The workload's config, with the inputs in [[inputs]].
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    let text = text.replace(&format!("input = \"{eve_topic}\"\n"), "");
    let text = format!(
        "{text}\n[[inputs]]\ntopic = \"{eve_topic}\"\nformat = \"suricata-eve\"\n\n\
         [[inputs]]\ntopic = \"{zeek_topic}\"\nformat = \"zeek-conn\"\n"
    );
    std::fs::write(&w.config_path, text).unwrap();

    // Loadgen partition 0 → EVE partition 0 (EVE partition 1 stays empty);
    // loadgen partition 1 → Zeek partition 0.
    let (mut eve, mut zeek) = (Vec::new(), Vec::new());
    let (mut eve_truth, mut zeek_truth) = (Vec::new(), Vec::new());
    let mut expected_dead = Vec::new();
    let mut line = 0usize;
    for r in &w.records {
        let events = AttackEventBatch::decode(r.payload.as_slice())
            .unwrap()
            .events;
        let (docs, truth_events): (Vec<String>, Vec<AttackEvent>) = if r.partition == 0 {
            let mut docs: Vec<String> = Vec::new();
            for e in &events {
                line += 1;
                docs.push(eve_alert(e, line));
            }
            let offset = eve.len();
            if offset % 10 == 3 {
                let at = docs.len();
                docs.push(r#"{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"stats","stats":{"uptime":1}}"#.into());
                docs.push(r#"{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"dns","src_ip":"192.0.2.1","dest_ip":"192.0.2.2","proto":"UDP"}"#.into());
                docs.push(r#"{"timestamp":"2024-01-01T00:00:00.0000"#.into());
                docs.push(r#"{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"alert","src_ip":"192.0.2.1","dest_ip":"192.0.2.2","dest_port":"ssh","proto":"TCP"}"#.into());
                docs.push(eve_alert(
                    &AttackEvent {
                        time_ms: 4_102_444_800_000,
                        ..events[0].clone()
                    },
                    1,
                ));
                expected_dead.push(format!(
                    "{}:malformed_json,{}:wrong_field_type,{}:time_in_future",
                    at + 2,
                    at + 3,
                    at + 4
                ));
            }
            (docs, events.clone())
        } else {
            let docs = events
                .iter()
                .enumerate()
                .map(|(i, e)| zeek_conn(e, i))
                .collect();
            (docs, events.iter().map(as_zeek_carries).collect())
        };
        let payload = docs.join("\n").into_bytes();
        let input = |offset: usize| ModelInput::Message {
            offset: offset as i64,
            payload: AttackEventBatch {
                events: truth_events.clone(),
            }
            .encode_to_vec(),
            trusted_now_ms: Some(r.clock_ms),
        };
        let record = PlainRecord {
            partition: 0,
            timestamp_ms: r.timestamp_ms,
            key: Some(r.key.clone()),
            payload: Some(payload),
            headers: vec![],
        };
        if r.partition == 0 {
            eve_truth.push(input(eve.len()));
            eve.push(record);
        } else {
            zeek_truth.push(input(zeek.len()));
            zeek.push(record);
        }
    }
    assert!(
        eve.len() > 20 && zeek.len() > 20,
        "{} {}",
        eve.len(),
        zeek.len()
    );
    let truth = model::run(
        &w.ingest,
        &[eve_truth, vec![], zeek_truth],
        &mut w.world.enricher(),
        true,
    );
    assert_eq!(truth.totals.events, 6_000, "every loadgen event is valid");
    assert!(truth.rejected.is_empty());
    produce_plain(broker().bootstrap(), &eve_topic, Compression::None, &eve);
    produce_plain(broker().bootstrap(), &zeek_topic, Compression::Zstd, &zeek);

    let _shared = machine_shared();
    let instance = rampart_testkit::unique_name("json");
    let mut child = w.rampart(&["--instance", &instance]);
    let bootstrap = broker().bootstrap();
    let rollups = read_until(
        bootstrap,
        &w.topics.rollups,
        Duration::from_secs(120),
        |all| all.len() >= truth.rollups.len(),
    );
    let dead = read_dead_letters(bootstrap, &w.topics.dlq, Duration::from_secs(30), |all| {
        all.len() >= expected_dead.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = terminate(&mut child);
    assert!(status.success(), "rampart exited with {status}");

    let got = decode_rollups(&rollups);
    let d = diff(&truth.rollups, &got);
    assert!(
        d.is_empty(),
        "{} differences:\n{}",
        d.len(),
        d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    let counted: u64 = got
        .iter()
        .filter(|r| r.dimension == Dimension::OriginCountry as i32)
        .map(|r| r.raw_events + r.late_events)
        .sum();
    assert_eq!(counted, 6_000, "hand count: every generated event once");
    let rejected: Vec<String> = dead
        .iter()
        .map(|d| d.rampart.rejected.clone().unwrap_or_default())
        .collect();
    assert_eq!(rejected, expected_dead);
    for d in &dead {
        assert_eq!(d.rampart.source_topic.as_deref(), Some(eve_topic.as_str()));
        assert_eq!(d.rampart.events, Some(3));
        let text = String::from_utf8(d.payload.clone().unwrap_or_default()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], r#"{"timestamp":"2024-01-01T00:00:00.0000"#);
        assert!(lines[1].contains(r#""dest_port":"ssh""#), "{text}");
        assert!(
            lines[2].starts_with(r#"{"timestamp":"2100-01-01T"#)
                || lines[2].starts_with(r#"{"timestamp":"2099-12-31T"#),
            "{text}"
        );
    }
}

/// `rampart loadgen --format F` → `rampart run` reading F → `rampart verify`:
/// exact for each JSON format (the truth reads the events as F carries them).
#[test]
fn loadgen_in_each_json_format_verifies_exact() {
    let _machine = machine_alone();
    for format in ["eve", "zeek-conn", "ocsf", "ecs"] {
        let dir = tempfile::tempdir().unwrap();
        let t = Topics::unique();
        let world = dir.path().join("world");
        let config_format = if format == "eve" {
            "suricata-eve"
        } else {
            format
        };
        let cfg = dir.path().join("rampart.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[kafka]
brokers = "{bootstrap}"
ingest_group = "{ig}"
merge_group = "{mg}"

[[inputs]]
topic = "{input}"
format = "{config_format}"

[topics]
partials = "{partials}"
rollups = "{rollups}"
dlq = "{dlq}"
partials_partitions = 2
rollups_partitions = 2

[window]
size = "5s"
out_of_orderness = "3s"
allowed_lateness = "1s"
idle_timeout = "3s"

[enrich]
country_db = "{w}/country.mmdb"
asn_db = "{w}/asn.mmdb"
sectors = "{w}/sectors.csv"

[processing]
checkpoint_interval = "300ms"

[metrics]
listen = ""
"#,
                bootstrap = broker().bootstrap(),
                ig = t.ingest_group,
                mg = t.merge_group,
                input = t.input,
                partials = t.partials,
                rollups = t.rollups,
                dlq = t.dlq,
                w = world.display(),
            ),
        )
        .unwrap();
        let manifest = dir.path().join("manifest.json");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(RAMPART_BIN)
                .args(args)
                .env("RAMPART_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), stdout, stderr)
        };
        let (ok, stdout, stderr) = run(&[
            "loadgen",
            "--config",
            cfg.to_str().unwrap(),
            "--format",
            format,
            "--partitions",
            "2",
            "--seed",
            "3",
            "--events",
            "6000",
            "--batch",
            "50",
            "--event-rate",
            "2000",
            "--sources",
            "20000",
            "--asns",
            "500",
            "--prefixes",
            "2000",
            "--malformed-share",
            "0.02",
            "--resight-share",
            "0.05",
            "--resight-delay-ms",
            "20000",
            "--world-dir",
            world.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ]);
        assert!(ok, "{format}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("topic {} ({config_format})", t.input)),
            "{stderr}"
        );
        // What went out is the format's JSON, one document per line.
        let first = read_until(
            broker().bootstrap(),
            &t.input,
            Duration::from_secs(20),
            |all| !all.is_empty(),
        );
        let payload = String::from_utf8(first[0].payload.clone()).unwrap();
        assert!(payload.lines().all(|l| l.starts_with('{')), "{payload}");

        let instance = rampart_testkit::unique_name("json-verify");
        let mut child = rampart_cmd(&cfg, &["--instance", &instance]);
        let (ok, stdout, stderr) = run(&[
            "verify",
            "--manifest",
            manifest.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--timeout",
            "90s",
        ]);
        let status = terminate(&mut child);
        assert!(
            ok && stdout.contains("verify: PASS"),
            "{format}:\n{stdout}\n{stderr}"
        );
        assert!(
            !stderr.contains("note: the manifest's records went"),
            "{stderr}"
        );
        assert!(status.success(), "rampart run exited with {status}");
    }
}
