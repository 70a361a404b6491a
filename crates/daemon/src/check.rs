//! `sds-sync check`: the config, the SIS queries and every destination tried for real (or,
//! offline, what can be checked without the network), reported line by line.

use crate::config::Config;
use crate::run::{
    destination_warnings, destinations, read_entities, source_config, source_warnings,
};
use anyhow::Context;
use sds_source::Source;

pub async fn check(cfg: &Config, offline: bool, send_test: bool) -> anyhow::Result<()> {
    // Everything that needs no network: secrets readable, schedule valid, destinations buildable.
    cfg.source_password()?;
    crate::schedule::Schedule::parse(&cfg.schedule.cron, &cfg.schedule.timezone)?;
    let dests = destinations(cfg)?;
    for w in source_warnings(cfg)? {
        println!("warning: {w}");
    }
    for w in destination_warnings(cfg)? {
        println!("warning: {w}");
    }
    // Asked for a test message that nothing can send: say so rather than pass in silence.
    if send_test && !dests.iter().any(|d| d.kind() == "email") {
        anyhow::bail!(
            "--send-test: no email destination to send a test to (no [[destination]] with kind = \"email\")"
        );
    }
    if offline {
        // What every delivery would refuse for good, found without the network.
        let refused: Vec<_> = dests
            .iter()
            .filter_map(|d| d.check_offline().err())
            .collect();
        if !refused.is_empty() {
            for e in &refused {
                println!("FAILED: {e}");
            }
            anyhow::bail!(
                "{} destination(s) would refuse every delivery; see the report above",
                refused.len()
            );
        }
        println!(
            "config: ok ({} destination(s); offline check: SIS and destinations not contacted)",
            dests.len()
        );
        return Ok(());
    }
    let source = Source::connect(&source_config(cfg)?)
        .await
        .context("cannot connect to the SIS")?;
    println!("config: ok");
    println!("source: connected to {}", source.describe());
    if let Some(transport) = source.transport().await {
        println!("source TLS: {transport}");
    }
    let mut problems = 0;
    for entity in read_entities(&cfg.export_options()) {
        match source.probe(entity).await {
            Ok(()) => println!("query {}: ok", entity.key()),
            Err(e) => {
                problems += 1;
                println!("query {}: FAILED: {e}", entity.key());
            }
        }
    }
    source.close().await;
    for dest in dests {
        // A real round trip per destination (probe file or SMTP login), and what it proved.
        match dest.check().await {
            Ok(()) => println!(
                "destination {} ({}): ok: {}",
                dest.name(),
                dest.kind(),
                dest.check_verified()
            ),
            Err(e) => {
                problems += 1;
                println!("destination {} ({}): FAILED: {e}", dest.name(), dest.kind());
                continue;
            }
        }
        if send_test && let Some(sending) = dest.send_test() {
            match sending.await {
                Ok(what) => println!(
                    "destination {} ({}): test message sent: {what}",
                    dest.name(),
                    dest.kind()
                ),
                Err(e) => {
                    problems += 1;
                    println!(
                        "destination {} ({}): test message FAILED: {e}",
                        dest.name(),
                        dest.kind()
                    );
                }
            }
        }
    }
    if problems > 0 {
        anyhow::bail!("{problems} check(s) failed; see the report above");
    }
    Ok(())
}
