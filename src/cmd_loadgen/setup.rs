//! Everything `rampart loadgen` prepares before it sends: the rampart config
//! read without its `[enrich]` files, the world's MMDB/sector files, and the
//! input topic (created, or checked for its partition count).

use std::path::Path;

use anyhow::{Context as _, bail};
use rampart_loadgen::World;

use super::DEFAULT_PARTITIONS;

/// Loads a rampart config for its Kafka and topic settings. Loadgen usually
/// runs before the enrichment files exist (it writes them with --world-dir),
/// so missing `[enrich]` files are not an error here.
pub(super) fn load_config_without_enrich_files(
    path: &Path,
    client_args: &[(String, String)],
) -> anyhow::Result<rampart_pipeline::config::Settings> {
    let err =
        match rampart_pipeline::config::load_with_client(Some(path), std::env::vars(), client_args)
        {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
    if err.issues.iter().any(|i| !i.key.starts_with("enrich.")) {
        bail!("{err}");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    table.remove("enrich");
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), toml::to_string(&table)?)?;
    rampart_pipeline::config::load_with_client(
        Some(tmp.path()),
        std::env::vars().filter(|(k, _)| !k.starts_with("RAMPART_ENRICH__")),
        client_args,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `country.mmdb`, `asn.mmdb` and `sectors.csv` for `world` into `dir`
/// and prints the matching `[enrich]` section.
pub fn write_world_files(world: &World, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let country = dir.join("country.mmdb");
    let asn = dir.join("asn.mmdb");
    let sectors = dir.join("sectors.csv");
    world.write_mmdb(&country, &asn)?;
    world.write_sector_table(&sectors)?;
    eprintln!(
        "loadgen: world files in {} — for rampart.toml:\n  [enrich]\n  country_db = {:?}\n  asn_db = {:?}\n  sectors = {:?}",
        dir.display(),
        country.display().to_string(),
        asn.display().to_string(),
        sectors.display().to_string()
    );
    Ok(())
}

/// Creates the input topic with `wanted` (default 4) partitions,
/// `retention.ms=-1` and no bound on how far ahead a CreateTime may be
/// (`message.timestamp.after.max.ms`) when missing; returns its partition count. An existing
/// topic with another count than `wanted` is an error.
pub fn ensure_input_topic(
    brokers: &str,
    topic: &str,
    wanted: Option<u32>,
    overrides: &rampart_kafka::Overrides,
) -> anyhow::Result<u32> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rampart_kafka::admin_config(brokers, overrides)?
            .create()
            .context("cannot create a Kafka admin client")?;
    match rampart_kafka::partition_count(&admin, topic) {
        Ok(n) => {
            let n = n.max(1) as u32;
            if let Some(w) = wanted.filter(|w| *w != n) {
                bail!(
                    "topic {topic} exists with {n} partitions, not {w}: records are partitioned \
                     by source IP over exactly that many partitions (pass --partitions {n}, or use another topic)"
                );
            }
            Ok(n)
        }
        Err(rampart_kafka::Error::UnknownTopic(_)) => {
            let n = wanted.unwrap_or(DEFAULT_PARTITIONS);
            let spec = rampart_kafka::TopicSpec::new(topic, n as i32)
                .replication(-1)
                .config("retention.ms", "-1")
                // Clock-skewed sensors (--future-share) stamp CreateTimes far
                // ahead, which Kafka 4 refuses by default (1 h).
                .config("message.timestamp.after.max.ms", "9223372036854775807");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(rampart_kafka::ensure_topics(&admin, &[spec]))
                .with_context(|| format!("cannot create topic {topic} on {brokers}"))?;
            eprintln!("loadgen: created topic {topic} ({n} partitions, retention.ms=-1)");
            Ok(n)
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach Kafka at {brokers}")),
    }
}
