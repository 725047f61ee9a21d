//! `--shard K/N`: a deterministic split of a list across N machines.
//!
//! A line belongs to shard `splitmix64(fnv1a64(key)) mod N`, where the key is
//! the normalised domain (A-labels, lower case, no trailing dot), or the
//! trimmed line itself when it is not a valid domain (so each error row is
//! reported by exactly one shard). The hash is fixed: the same list split the
//! same way gives the same shards on every machine and every version.
//! Duplicates of a domain always land in the same shard.
//!
//! `--shard auto` reads K and N from the scheduler:
//! * Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (set by Kubernetes) and
//!   `JOB_COMPLETIONS` (set it in the manifest to `spec.completions`);
//! * Slurm job array: K = (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`) /
//!   `SLURM_ARRAY_TASK_STEP` (step 1 when unset), N = `SLURM_ARRAY_TASK_COUNT`.

use std::fmt;

/// Why a `--shard` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?}: use K/N (e.g. 0/4: the first of 4) or auto")]
    Syntax(String),
    #[error("--shard {shard:?}: {which} is not a number")]
    NotANumber { shard: String, which: &'static str },
    #[error("--shard {0}: N must be at least 1")]
    NoShards(String),
    #[error("--shard {shard}: K counts from 0 and must be below N (0/{n} .. {}/{n})", n - 1)]
    OutOfRange { shard: String, n: u64 },
    #[error("--shard auto: {name}={value:?} is not a number")]
    Environment { name: &'static str, value: String },
    #[error(
        "--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but JOB_COMPLETIONS is not: set it in the manifest to spec.completions"
    )]
    KubernetesCompletions,
    #[error("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")]
    SlurmCount,
    #[error("--shard auto: SLURM_ARRAY_TASK_ID={id} does not fit MIN={min} STEP={step}")]
    SlurmId { id: u64, min: u64, step: u64 },
    #[error(
        "--shard auto: no scheduler found (neither JOB_COMPLETION_INDEX for a Kubernetes Indexed Job nor SLURM_ARRAY_TASK_ID for a Slurm job array is set)"
    )]
    NoScheduler,
}

/// Shard K of N (K counted from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub k: u64,
    pub n: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shard (0-based) that `key` belongs to among `n`.
pub fn shard_of(key: &str, n: u64) -> u64 {
    splitmix64(fnv1a64(key.as_bytes())) % n.max(1)
}

impl Shard {
    pub fn contains(&self, key: &str) -> bool {
        shard_of(key, self.n) == self.k
    }

    /// Parses `K/N` (0 ≤ K < N) or `auto`, reading the environment through `env`.
    pub fn parse(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        if s.trim() == "auto" {
            return Self::auto(env);
        }
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.to_string()))?;
        let number = |v: &str, which| {
            v.trim().parse::<u64>().map_err(|_| ShardError::NotANumber {
                shard: s.to_string(),
                which,
            })
        };
        Self::checked(number(k, "K")?, number(n, "N")?, s)
    }

    fn checked(k: u64, n: u64, shown: &str) -> Result<Shard, ShardError> {
        if n == 0 {
            return Err(ShardError::NoShards(shown.to_string()));
        }
        if k >= n {
            return Err(ShardError::OutOfRange {
                shard: shown.to_string(),
                n,
            });
        }
        Ok(Shard { k, n })
    }

    fn auto(env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let num = |name: &'static str| -> Result<Option<u64>, ShardError> {
            match env(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ShardError::Environment { name, value: v }),
            }
        };
        if let Some(k) = num("JOB_COMPLETION_INDEX")? {
            let n = num("JOB_COMPLETIONS")?.ok_or(ShardError::KubernetesCompletions)?;
            return Self::checked(k, n, &format!("auto (Kubernetes {k} of {n})"));
        }
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or(ShardError::SlurmCount)?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            if id < min || (id - min) % step != 0 {
                return Err(ShardError::SlurmId { id, min, step });
            }
            let k = (id - min) / step;
            return Self::checked(k, n, &format!("auto (Slurm task {id}, {k} of {n})"));
        }
        Err(ShardError::NoScheduler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn hash_is_stable() {
        // Fixed values: changing them breaks every running multi-machine scan.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(shard_of("example.org", 1), 0);
        let got: Vec<u64> = ["example.org", "example.com", "xn--bcher-kva.example", "a.b"]
            .iter()
            .map(|d| shard_of(d, 16))
            .collect();
        assert_eq!(got, vec![3, 15, 12, 8]);
    }

    #[test]
    fn shards_are_disjoint_complete_and_balanced() {
        let n = 7;
        let shards: Vec<Shard> = (0..n).map(|k| Shard { k, n }).collect();
        let mut counts = vec![0u32; n as usize];
        for i in 0..70_000 {
            let d = format!("d{i}.example");
            let owners: Vec<u64> = shards
                .iter()
                .filter(|s| s.contains(&d))
                .map(|s| s.k)
                .collect();
            assert_eq!(owners.len(), 1, "{d}");
            counts[owners[0] as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "unbalanced: {c}");
        }
    }

    #[test]
    fn parse_and_auto() {
        let none = env(&[]);
        assert_eq!(Shard::parse("2/5", &none), Ok(Shard { k: 2, n: 5 }));
        assert!(matches!(
            Shard::parse("5/5", &none).unwrap_err(),
            ShardError::OutOfRange { n: 5, .. }
        ));
        assert!(Shard::parse("0/0", &none).is_err());
        assert!(Shard::parse("x", &none).is_err());
        assert!(
            Shard::parse("auto", &none)
                .unwrap_err()
                .to_string()
                .contains("no scheduler")
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETIONS", "8")]);
        assert_eq!(Shard::parse("auto", &k8s), Ok(Shard { k: 3, n: 8 }));
        let k8s_no_count = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert!(
            Shard::parse("auto", &k8s_no_count)
                .unwrap_err()
                .to_string()
                .contains("JOB_COMPLETIONS")
        );
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "12"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(Shard::parse("auto", &slurm), Ok(Shard { k: 2, n: 4 }));
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "14"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(Shard::parse("auto", &stepped), Ok(Shard { k: 2, n: 3 }));
    }
}
