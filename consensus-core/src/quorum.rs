//! Fault-tolerance mathematics (design §2.1–2.2) and the configuration audit.
//!
//! With `n` agents of which at most `f` are Byzantine, any two quorums must share at least
//! `f + 1` agents so that one honest agent is in both: `q = ceil((n + f + 1) / 2)`. Liveness
//! needs the `n − f` honest agents to form a quorum on their own: `n − f ≥ q`, which is
//! `n ≥ 3f + 1`. All arithmetic is integer and overflow-checked.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fixed::Ratio;

/// Errors of the fault-tolerance arithmetic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// A committee needs at least one agent.
    #[error("a committee needs at least one agent")]
    EmptyCommittee,
    /// `f` Byzantine agents cannot exceed `n` agents.
    #[error("{f} Byzantine agents cannot be among only {n} agents")]
    TooManyFaulty {
        /// Agents.
        n: u64,
        /// Byzantine agents.
        f: u64,
    },
    /// An intermediate value did not fit in 64 bits.
    #[error("arithmetic overflow for n = {n}, f = {f}")]
    Overflow {
        /// Agents.
        n: u64,
        /// Byzantine agents.
        f: u64,
    },
}

/// The largest number of Byzantine agents `n` agents tolerate: `floor((n − 1) / 3)`.
pub const fn f_max(n: u64) -> u64 {
    n.saturating_sub(1) / 3
}

/// The smallest committee that tolerates `f` Byzantine agents: `3f + 1`.
pub fn min_agents(f: u64) -> Option<u64> {
    f.checked_mul(3)?.checked_add(1)
}

/// The quorum size `ceil((n + f + 1) / 2)`: any two quorums share at least `f + 1` agents.
pub fn quorum(n: u64, f: u64) -> Result<u64, QuorumError> {
    check(n, f)?;
    let sum = n.checked_add(f).and_then(|s| s.checked_add(1)).ok_or(QuorumError::Overflow { n, f })?;
    Ok(sum.div_ceil(2))
}

/// The quorum for `n` agents at their maximum tolerance `f_max(n)`.
pub fn quorum_for(n: u64) -> Result<u64, QuorumError> {
    quorum(n, f_max(n))
}

fn check(n: u64, f: u64) -> Result<(), QuorumError> {
    if n == 0 {
        return Err(QuorumError::EmptyCommittee);
    }
    if f > n {
        return Err(QuorumError::TooManyFaulty { n, f });
    }
    Ok(())
}

/// The design's `ByzantineToleranceResult` (design §2.2 `verify_byzantine_tolerance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTolerance {
    /// Agents.
    pub n: u64,
    /// Byzantine agents assumed.
    pub f: u64,
    /// `n ≥ 3f + 1`.
    pub fault_tolerant: bool,
    /// `3f + 1`.
    pub minimum_agents: u64,
    /// `(2f + 1) / n`, the share of agents a Byzantine-safe decision needs.
    pub required_threshold: Ratio,
    /// `floor((n − 1) / 3)`.
    pub max_byzantine_agents: u64,
    /// `ceil((n + f + 1) / 2)`.
    pub quorum: u64,
    /// The design's practical recommendation, 66%.
    pub recommended_threshold: Ratio,
}

/// Design §2.2 `verify_byzantine_tolerance(n, f)`.
pub fn verify_byzantine_tolerance(n: u64, f: u64) -> Result<FaultTolerance, QuorumError> {
    check(n, f)?;
    let minimum_agents = min_agents(f).ok_or(QuorumError::Overflow { n, f })?;
    let two_f_plus_one = f.checked_mul(2).and_then(|x| x.checked_add(1)).ok_or(QuorumError::Overflow { n, f })?;
    // (2f + 1) may exceed n when n < 3f + 1 and f is large; clamp to 1 so the ratio stays valid.
    let required_threshold = Ratio::new(two_f_plus_one.min(n), n).ok_or(QuorumError::Overflow { n, f })?;
    Ok(FaultTolerance {
        n,
        f,
        fault_tolerant: n >= minimum_agents,
        minimum_agents,
        required_threshold,
        max_byzantine_agents: f_max(n),
        quorum: quorum(n, f)?,
        recommended_threshold: Ratio::SEED_THRESHOLD,
    })
}

/// How serious an audit finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// A fact about the configuration.
    Info,
    /// Works, with a caveat the user should know.
    Warning,
    /// Loses safety or liveness under the stated fault assumption.
    Error,
}

/// One finding of the configuration audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// Stable identifier, e.g. `count-intersection`.
    pub code: &'static str,
    /// What it means, in words a user understands.
    pub message: String,
}

/// What the audit looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditInput {
    /// Voting weight of each agent, in thousandths.
    pub weights_milli: Vec<u32>,
    /// The agreement threshold.
    pub threshold: Ratio,
    /// Byzantine agents to tolerate; `None` means `f_max(n)`.
    pub byzantine: Option<u64>,
}

/// The result of [`audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Agents.
    pub n: u64,
    /// Byzantine agents assumed.
    pub f: u64,
    /// BFT quorum `ceil((n + f + 1) / 2)`.
    pub quorum: u64,
    /// Agents the threshold needs: `ceil(threshold × n)`.
    pub threshold_count: u64,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
}

impl Audit {
    /// Whether no finding is an error.
    pub fn is_sound(&self) -> bool {
        self.findings.iter().all(|f| f.severity != Severity::Error)
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "n = {}, f = {}, BFT quorum q = {}, threshold needs {} agents",
            self.n, self.f, self.quorum, self.threshold_count
        )?;
        for finding in &self.findings {
            let tag = match finding.severity {
                Severity::Info => "info",
                Severity::Warning => "warning",
                Severity::Error => "ERROR",
            };
            writeln!(f, "  [{tag}] {}: {}", finding.code, finding.message)?;
        }
        Ok(())
    }
}

/// Audits a committee configuration: does the threshold keep quorum intersection (safety) and
/// can the honest agents reach it alone (liveness), counted per agent and by weight?
pub fn audit(input: &AuditInput) -> Result<Audit, QuorumError> {
    let n = input.weights_milli.len() as u64;
    let f = input.byzantine.unwrap_or(f_max(n));
    check(n, f)?;
    let q = quorum(n, f)?;
    let t = input.threshold;
    let k = t.min_count(n);
    let mut findings = Vec::new();

    if n < min_agents(f).ok_or(QuorumError::Overflow { n, f })? {
        findings.push(Finding {
            severity: Severity::Error,
            code: "too-few-agents",
            message: format!(
                "{n} agents cannot tolerate {f} Byzantine agents: Byzantine agreement needs at least 3f + 1 = {} agents",
                3 * f + 1
            ),
        });
    }
    audit_counts(n, f, q, k, t, &mut findings);
    audit_weights(&input.weights_milli, f, t, &mut findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(Audit { n, f, quorum: q, threshold_count: k, findings })
}

fn audit_counts(n: u64, f: u64, q: u64, k: u64, t: Ratio, findings: &mut Vec<Finding>) {
    // Two sets of k agents share at least 2k − n agents.
    let overlap = (2 * k).saturating_sub(n);
    if overlap > f {
        findings.push(Finding {
            severity: Severity::Info,
            code: "count-intersection",
            message: format!(
                "any two groups of {k} agents that reach {t} share at least {overlap} agents, more than the {f} that may be Byzantine: honest agents cannot be led to two different decisions"
            ),
        });
    } else {
        findings.push(Finding {
            severity: Severity::Error,
            code: "count-intersection",
            message: format!(
                "two groups of {k} agents can each reach {t} while sharing only {overlap} agents, and all of those may be among the {f} Byzantine ones: two different candidates could both be decided"
            ),
        });
    }
    if n - f >= k {
        findings.push(Finding {
            severity: Severity::Info,
            code: "count-liveness",
            message: format!("the {} honest agents can reach {t} ({k} agents) without any Byzantine vote", n - f),
        });
    } else {
        findings.push(Finding {
            severity: Severity::Error,
            code: "count-liveness",
            message: format!(
                "if the {f} Byzantine agents stay silent only {} honest agents remain, fewer than the {k} that {t} needs: the system halts (safe, but no decision)",
                n - f
            ),
        });
    }
    if k < q {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "threshold-below-quorum",
            message: format!(
                "the threshold needs {k} agents but Byzantine agreement needs a quorum of {q}: decisions are made by the agreement quorum, the threshold only judges the aggregate"
            ),
        });
    }
    // Strictly more than two thirds is the textbook BFT threshold.
    if u128::from(t.num()) * 3 <= u128::from(t.den()) * 2 {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "threshold-below-two-thirds",
            message: format!(
                "{t} is not above 2/3: counted per agent it still works for n = {n} because shares are rounded up to whole agents, but weighted by voting weight two groups reaching it overlap in only {:.0}% of the weight",
                (2.0 * t.as_f64() - 1.0).max(0.0) * 100.0
            ),
        });
    }
}

fn audit_weights(weights_milli: &[u32], f: u64, t: Ratio, findings: &mut Vec<Finding>) {
    let total: u128 = weights_milli.iter().map(|w| u128::from(*w)).sum();
    let mut sorted: Vec<u128> = weights_milli.iter().map(|w| u128::from(*w)).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let f_usize = usize::try_from(f).unwrap_or(usize::MAX);
    let byzantine: u128 = sorted.iter().take(f_usize).sum();
    let (num, den) = (u128::from(t.num()), u128::from(t.den()));
    // Two weighted quorums each hold ≥ t·W, so they overlap in ≥ (2t − 1)·W.
    // Safety: that overlap must exceed the heaviest f agents' weight B: (2num − den)·W > B·den.
    let overlap_scaled = (2 * num).saturating_sub(den) * total;
    let pct = |w: u128| if total == 0 { 0.0 } else { w as f64 * 100.0 / total as f64 };
    if overlap_scaled > byzantine * den {
        findings.push(Finding {
            severity: Severity::Info,
            code: "weight-intersection",
            message: format!(
                "by weight, two groups reaching {t} overlap in at least {:.1}% of the weight, more than the {:.1}% the {f} heaviest agents hold",
                (2.0 * t.as_f64() - 1.0) * 100.0,
                pct(byzantine)
            ),
        });
    } else {
        findings.push(Finding {
            severity: Severity::Error,
            code: "weight-intersection",
            message: format!(
                "by weight, two groups reaching {t} may overlap in only {:.1}% of the weight, but the {f} heaviest agents hold {:.1}%: a weighted decision could be split by Byzantine agents",
                ((2.0 * t.as_f64() - 1.0) * 100.0).max(0.0),
                pct(byzantine)
            ),
        });
    }
    // Liveness: the lightest honest set, W − B, must reach t·W: (W − B)·den ≥ num·W.
    if (total - byzantine) * den >= num * total {
        findings.push(Finding {
            severity: Severity::Info,
            code: "weight-liveness",
            message: format!(
                "by weight, the honest agents hold at least {:.1}% and can reach {t} alone",
                pct(total - byzantine)
            ),
        });
    } else {
        findings.push(Finding {
            severity: Severity::Error,
            code: "weight-liveness",
            message: format!(
                "by weight, if the {f} heaviest agents are Byzantine and silent the rest hold only {:.1}%, below {t}: weighted decisions halt",
                pct(total - byzantine)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_from_the_guide() {
        // n, f_max, q, ceil(0.66 n)
        let table = [(4, 1, 3, 3), (5, 1, 4, 4), (6, 1, 4, 4), (7, 2, 5, 5), (10, 3, 7, 7)];
        for (n, f, q, k) in table {
            assert_eq!(f_max(n), f, "f_max({n})");
            assert_eq!(quorum(n, f), Ok(q), "quorum({n})");
            assert_eq!(Ratio::SEED_THRESHOLD.min_count(n), k, "ceil(0.66 × {n})");
        }
    }

    #[test]
    fn seed_verify_byzantine_tolerance() {
        let r = verify_byzantine_tolerance(5, 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.fault_tolerant);
        assert_eq!(r.minimum_agents, 4);
        assert_eq!(r.required_threshold, Ratio::new(3, 5).unwrap_or(Ratio::HALF));
        assert_eq!(r.max_byzantine_agents, 1);
        let r = verify_byzantine_tolerance(5, 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.fault_tolerant, "2 Byzantine of 5: the design's 'system halt required'");
    }

    #[test]
    fn errors_instead_of_panics() {
        assert_eq!(quorum(0, 0), Err(QuorumError::EmptyCommittee));
        assert_eq!(quorum(3, 4), Err(QuorumError::TooManyFaulty { n: 3, f: 4 }));
        assert_eq!(quorum(u64::MAX, u64::MAX), Err(QuorumError::Overflow { n: u64::MAX, f: u64::MAX }));
        assert_eq!(min_agents(u64::MAX), None);
    }

    fn codes(a: &Audit, severity: Severity) -> Vec<&'static str> {
        a.findings.iter().filter(|f| f.severity == severity).map(|f| f.code).collect()
    }

    #[test]
    fn seed_committee_audits_sound_with_caveats() {
        let input = AuditInput {
            weights_milli: vec![1_000, 1_200, 1_100, 1_000, 800],
            threshold: Ratio::SEED_THRESHOLD,
            byzantine: None,
        };
        let a = audit(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.is_sound(), "{a}");
        assert_eq!(a.quorum, 4);
        assert!(codes(&a, Severity::Warning).contains(&"threshold-below-two-thirds"), "{a}");
    }

    #[test]
    fn two_byzantine_of_five_halts_but_stays_safe() {
        let input = AuditInput { weights_milli: vec![1_000; 5], threshold: Ratio::SEED_THRESHOLD, byzantine: Some(2) };
        let a = audit(&input).unwrap_or_else(|e| panic!("{e}"));
        let errors = codes(&a, Severity::Error);
        assert!(errors.contains(&"count-liveness"), "{a}");
        assert!(errors.contains(&"too-few-agents"), "{a}");
        assert!(!errors.contains(&"count-intersection"), "4 of 5 twice share 3 > 2: {a}");
    }

    #[test]
    fn heavy_weights_lose_weighted_intersection() {
        // One agent holds most of the weight: by weight a single Byzantine agent breaks safety.
        let input = AuditInput {
            weights_milli: vec![10_000, 1_000, 1_000, 1_000],
            threshold: Ratio::SEED_THRESHOLD,
            byzantine: Some(1),
        };
        let a = audit(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(codes(&a, Severity::Error).contains(&"weight-intersection"), "{a}");
        assert!(!a.is_sound());
    }

    #[test]
    fn low_threshold_loses_count_intersection() {
        let input = AuditInput {
            weights_milli: vec![1_000; 7],
            threshold: Ratio::new(1, 2).unwrap_or(Ratio::HALF),
            byzantine: None,
        };
        let a = audit(&input).unwrap_or_else(|e| panic!("{e}"));
        assert!(codes(&a, Severity::Error).contains(&"count-intersection"), "{a}");
    }
}
