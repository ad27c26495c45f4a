//! The lifecycle tables: `[[retention]]`, `[[immutable]]` and `[[quota]]`, read as written and
//! turned into the core's rules (regexes compiled, sizes parsed) by [`Lifecycle::rules`].

use std::time::Duration;

use registry_core::lifecycle::{ImmutableRule, QuotaRule, RetentionRule, TagPattern};
use serde::{Deserialize, Serialize};

/// One `[[retention]]` table: a tag of the repositories it covers goes at the next collection
/// unless one of its clauses (or another covering rule's) keeps it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Repository patterns (`ci/*`, `*`, a name).
    pub repositories: Vec<String>,
    /// Keep the N most recently pushed (moved) tags.
    pub keep_last: Option<usize>,
    /// Keep tags whose name matches one of these regexes.
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Keep tags moved within this many days.
    pub max_age_days: Option<u64>,
    /// Keep tags pulled within this many days.
    pub keep_pulled_within_days: Option<u64>,
}

/// One `[[immutable]]` table: matching tags can be created once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImmutableConfig {
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Tag regexes.
    pub tags: Vec<String>,
}

/// One `[[quota]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Repository patterns, counted together.
    pub repositories: Vec<String>,
    /// The limit: bytes, or a size such as `"50GiB"`, `"500MB"`.
    pub max_bytes: ByteSize,
}

/// A size in bytes, written as a number or as a string with a unit (`B`, `KB`, `KiB`, … `TiB`),
/// which messages about it keep (a quota of `"200KB"` is reported in KB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteSize {
    /// The bytes.
    pub bytes: u64,
    /// The unit it was written in, and its size in bytes.
    pub unit: Option<(String, u64)>,
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(bytes) => Ok(ByteSize { bytes, unit: None }),
            Raw::Text(t) => parse_size(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {t:?}: write bytes or a number with B, KB, KiB, MB, MiB, GB, \
                     GiB, TB or TiB"
                ))
            }),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.unit {
            Some((suffix, scale)) => s.serialize_str(&format!(
                "{}{suffix}",
                registry_core::lifecycle::number(self.bytes as f64 / *scale as f64)
            )),
            None => s.serialize_u64(self.bytes),
        }
    }
}

fn parse_size(text: &str) -> Option<ByteSize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let suffix = unit.trim();
    let scale = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| ByteSize {
        bytes: bytes as u64,
        unit: (!suffix.is_empty()).then(|| (suffix.to_owned(), scale)),
    })
}

/// The lifecycle rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// `[[retention]]`
    pub retention: Vec<RetentionRule>,
    /// `[[immutable]]`
    pub immutable: Vec<ImmutableRule>,
    /// `[[quota]]`
    pub quota: Vec<QuotaRule>,
}

const DAY: u64 = 86400;

fn patterns(what: &str, n: usize, list: &[String]) -> Result<Vec<TagPattern>, String> {
    list.iter()
        .map(|p| {
            TagPattern::new(p).map_err(|e| format!("{what} rule {n}: invalid regex {p:?}: {e}"))
        })
        .collect()
}

fn repositories(what: &str, n: usize, list: &[String]) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(format!("{what} rule {n}: `repositories` lists no pattern"));
    }
    Ok(list.to_vec())
}

impl Lifecycle {
    /// Compiles the tables; an invalid regex, a rule without repositories, or a retention rule
    /// without a clause (which would remove every tag) is an error naming the rule.
    pub fn rules(
        retention: &[RetentionConfig],
        immutable: &[ImmutableConfig],
        quota: &[QuotaConfig],
    ) -> Result<Lifecycle, String> {
        let mut rules = Lifecycle::default();
        for (i, r) in retention.iter().enumerate() {
            let n = i + 1;
            let rule = RetentionRule {
                repositories: repositories("retention", n, &r.repositories)?,
                keep_last: r.keep_last,
                keep_tags: patterns("retention", n, &r.keep_tags)?,
                max_age: r.max_age_days.map(|d| Duration::from_secs(d * DAY)),
                keep_pulled_within: r
                    .keep_pulled_within_days
                    .map(|d| Duration::from_secs(d * DAY)),
            };
            if !rule.has_clause() {
                return Err(format!(
                    "retention rule {n} has no clause (keep_last, keep_tags, max_age_days, \
                     keep_pulled_within_days): it would remove every tag of its repositories"
                ));
            }
            rules.retention.push(rule);
        }
        for (i, r) in immutable.iter().enumerate() {
            let n = i + 1;
            if r.tags.is_empty() {
                return Err(format!("immutable rule {n}: `tags` lists no regex"));
            }
            rules.immutable.push(ImmutableRule {
                repositories: repositories("immutable", n, &r.repositories)?,
                tags: patterns("immutable", n, &r.tags)?,
            });
        }
        for (i, q) in quota.iter().enumerate() {
            rules.quota.push(QuotaRule {
                repositories: repositories("quota", i + 1, &q.repositories)?,
                max_bytes: q.max_bytes.bytes,
                unit: q.max_bytes.unit.clone(),
            });
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_units() {
        let bytes = |t: &str| parse_size(t).map(|s| s.bytes);
        assert_eq!(bytes("50GiB"), Some(50 << 30));
        assert_eq!(bytes("500 MB"), Some(500_000_000));
        assert_eq!(bytes("1.5KiB"), Some(1536));
        assert_eq!(bytes("42"), Some(42));
        assert_eq!(bytes("12 parsecs"), None);
        assert_eq!(bytes("GiB"), None);
        assert_eq!(
            parse_size("200KB").unwrap().unit,
            Some(("KB".to_owned(), 1000))
        );
    }

    #[test]
    fn rules_that_would_remove_everything_or_cannot_compile_are_refused() {
        let bare = RetentionConfig {
            repositories: vec!["ci/*".into()],
            keep_last: None,
            keep_tags: vec![],
            max_age_days: None,
            keep_pulled_within_days: None,
        };
        let e = Lifecycle::rules(std::slice::from_ref(&bare), &[], &[]).unwrap_err();
        assert!(e.contains("retention rule 1 has no clause"), "{e}");
        let bad = RetentionConfig {
            keep_tags: vec!["(".into()],
            ..bare
        };
        let e = Lifecycle::rules(&[bad], &[], &[]).unwrap_err();
        assert!(e.contains("invalid regex"), "{e}");
        let nowhere = ImmutableConfig {
            repositories: vec![],
            tags: vec!["^v".into()],
        };
        assert!(Lifecycle::rules(&[], &[nowhere], &[]).is_err());
    }
}
