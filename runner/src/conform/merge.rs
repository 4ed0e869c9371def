//! `conform --merge`: the shards of one partitioned run made whole again, or refused.

use super::model::{Conformance, ShardReport, Summary};
use super::Partition;

/// Why shards do not merge. Every variant is a refusal of the evidence (exit 1), not a tool
/// error: the reports were read, and they do not make a whole run.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("{0} is not a shard of a partitioned run (it has no `partition`)")]
    NotAShard(String),
    #[error("the shards are of different partitions: {0} and {1}")]
    DifferentPartitions(String, String),
    #[error("the shards do not make the whole run: {0}")]
    Incomplete(String),
    #[error("the reports are of different runs: {0}")]
    DifferentRuns(String),
}

/// Merges the JSON reports of the shards of one partitioned run: shards 1..N of one partition,
/// each exactly once, of the same tool, policy and corpus, or a refusal that names what is
/// wrong (a missing shard must not turn into a passing run). `parts` are (report, the name it
/// was read from, the SHA-256 of its bytes).
pub fn merge(parts: Vec<(Conformance, String, String)>) -> Result<Conformance, MergeError> {
    let mut shards: Vec<(Partition, String, String)> = Vec::new();
    for (part, name, digest) in &parts {
        let partition: Partition = part
            .partition
            .as_deref()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| MergeError::NotAShard(name.clone()))?;
        if let Some((first, first_name, _)) = shards.first()
            && first.count != partition.count
        {
            return Err(MergeError::DifferentPartitions(format!("{first_name} ({first})"), format!("{name} ({partition})")));
        }
        shards.push((partition, name.clone(), digest.clone()));
    }
    let count = shards.first().map(|(p, _, _)| p.count).ok_or(MergeError::Empty)?;
    let mut problems = Vec::new();
    for index in 1..=count {
        let given: Vec<&str> = shards.iter().filter(|(p, _, _)| p.index == index).map(|(_, n, _)| n.as_str()).collect();
        match given.len() {
            0 => problems.push(format!("shard {index}/{count} is missing")),
            1 => {}
            _ => problems.push(format!("shard {index}/{count} is given {} times ({})", given.len(), given.join(", "))),
        }
    }
    if !problems.is_empty() {
        return Err(MergeError::Incomplete(problems.join("; ")));
    }
    let mut parts = parts.into_iter().map(|(part, _, _)| part);
    let mut merged = parts.next().ok_or(MergeError::Empty)?;
    for part in parts {
        for (what, a, b) in [
            ("schema", &merged.schema, &part.schema),
            ("policy", &merged.policy.sha256, &part.policy.sha256),
            ("corpus", &merged.corpus.sha256, &part.corpus.sha256),
            ("host", &merged.host, &part.host),
        ] {
            if a != b {
                return Err(MergeError::DifferentRuns(format!("{what} {a} vs {b}")));
            }
        }
        if merged.tool != part.tool {
            return Err(MergeError::DifferentRuns("they were made by different builds of stockade".into()));
        }
        merged.started_at = merged.started_at.min(part.started_at);
        merged.duration_ms = merged.duration_ms.max(part.duration_ms);
        merged.cases.extend(part.cases);
    }
    merged.cases.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = merged.cases.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(MergeError::DifferentRuns(format!("case `{}` is in more than one shard", w[0].id)));
    }
    shards.sort_by_key(|(p, _, _)| p.index);
    merged.shards = shards.into_iter().map(|(p, _, sha256)| ShardReport { partition: p.to_string(), sha256 }).collect();
    merged.partition = None;
    merged.summary = Summary::of(&merged.cases);
    Ok(merged)
}

