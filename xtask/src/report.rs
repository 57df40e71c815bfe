//! The report's schema (`target/verify/report.json`) and its terminal table. This is the edge:
//! internal verdicts become plain serialisable structs here and nowhere else.

use serde::Serialize;
use theorems::{Claim, Verdict};

#[derive(Debug, Serialize)]
pub struct Report {
    /// Schema version, bumped on any incompatible change.
    pub schema: u32,
    pub claims: Vec<ClaimReport>,
    pub models: Vec<ModelReport>,
    /// SVG figures written beside the report.
    pub figures: Vec<String>,
}

/// One claim's outcome. `verdict` is "held", "counterexample", "inconclusive" or "error" (the check
/// could not run: an error, a panic or a timeout).
#[derive(Debug, Serialize)]
pub struct ClaimReport {
    pub id: String,
    pub name: String,
    pub label: String,
    pub tier: String,
    pub statement: String,
    pub verdict: String,
    pub evidence: theorems::Evidence,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<theorems::Counterexample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    pub seconds: f64,
}

impl ClaimReport {
    pub fn new(claim: &Claim, outcome: Result<Verdict, String>, seconds: f64) -> Self {
        let base =
            |verdict: &str, evidence, reason, counterexample: Option<theorems::Counterexample>| ClaimReport {
                id: claim.id.into(),
                name: claim.name.into(),
                label: claim.label.into(),
                tier: claim.tier.as_str().into(),
                statement: claim.statement.into(),
                verdict: verdict.into(),
                evidence,
                reason,
                replay: counterexample.as_ref().map(|c| c.replay.clone()),
                counterexample,
                seconds,
            };
        match outcome {
            Ok(Verdict::Held { evidence }) => base("held", evidence, None, None),
            Ok(Verdict::Inconclusive { evidence, reason }) => {
                base("inconclusive", evidence, Some(reason), None)
            }
            Ok(Verdict::Counterexample { evidence, counterexample }) => {
                base("counterexample", evidence, None, Some(counterexample))
            }
            Err(e) => base("error", theorems::Evidence::default(), Some(e), None),
        }
    }

    pub fn is_error(&self) -> bool {
        self.verdict == "error"
    }
}

/// The per-layer diagnostics of one real model.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub inputs: usize,
    pub layers: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The claims table, then each counterexample with its replay command.
pub fn print_claims(claims: &[ClaimReport]) {
    println!();
    println!("{:<4} {:<10} {:<15} {:<62} {:>8}", "id", "tier", "verdict", "key number", "time");
    println!("{}", "-".repeat(103));
    for c in claims {
        let key = match (&c.reason, c.verdict.as_str()) {
            (Some(r), "error" | "inconclusive") => r.as_str(),
            _ => c.evidence.key.as_str(),
        };
        println!(
            "{:<4} {:<10} {:<15} {:<62} {:>7.2}s",
            c.id,
            c.tier,
            c.verdict,
            truncate(key, 62),
            c.seconds
        );
    }
    for c in claims.iter().filter(|c| c.is_error()) {
        println!();
        println!("{} could not run: {}", c.id, c.reason.as_deref().unwrap_or("unknown error"));
    }
    for c in claims {
        if let Some(cx) = &c.counterexample {
            println!();
            println!("counterexample to {} ({}): {}", c.id, c.label, cx.reason);
            println!("  input:  {}", cx.input);
            println!("  replay: {}", cx.replay);
        }
    }
}
