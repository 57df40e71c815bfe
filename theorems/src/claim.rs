//! The claim registry's types: what a claim is, what its check returns, and the proptest driver
//! every check uses to search for counterexamples.
//!
//! A check is a plain function, so the same code runs under `cargo test` (where snapshots pin its
//! verdict and key numbers) and under `cargo xtask verify` (where it is reported).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How much the paper vouches for a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Stated and proved in the paper, or cited by it as proved.
    Theorem,
    /// Follows from the paper's equations (invariants, exact constants, closed forms).
    Derived,
    /// Stated without proof ("numerical simulations indicate", "~", "formally").
    Heuristic,
    /// A claim about real models or practice.
    Hypothesis,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Theorem => "theorem",
            Tier::Derived => "derived",
            Tier::Heuristic => "heuristic",
            Tier::Hypothesis => "hypothesis",
        }
    }
}

/// The numbers that support a verdict. `key` is the one-line summary shown in the table;
/// `numbers` are named values (reported in full, and rounded in snapshots).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub key: String,
    pub numbers: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

impl Evidence {
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into(), ..Self::default() }
    }
    pub fn number(mut self, name: impl Into<String>, value: f64) -> Self {
        self.numbers.insert(name.into(), value);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// A minimal failing input, serialised so that `cargo xtask verify --replay` can re-run it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counterexample {
    /// The shrunk input, as JSON.
    pub input: String,
    /// Why the input refutes the statement.
    pub reason: String,
    /// A shell command that replays exactly this case.
    pub replay: String,
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Held { evidence: Evidence },
    Counterexample { evidence: Evidence, counterexample: Counterexample },
    Inconclusive { evidence: Evidence, reason: String },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Held { .. } => "held",
            Verdict::Counterexample { .. } => "counterexample",
            Verdict::Inconclusive { .. } => "inconclusive",
        }
    }
    pub fn evidence(&self) -> &Evidence {
        match self {
            Verdict::Held { evidence }
            | Verdict::Counterexample { evidence, .. }
            | Verdict::Inconclusive { evidence, .. } => evidence,
        }
    }
}

/// A check could not reach a verdict (bad configuration, solver failure): distinct from a refuted
/// claim, and reported by `verify` as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError(pub String);

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckError {}

impl From<dynamics::DynamicsError> for CheckError {
    fn from(e: dynamics::DynamicsError) -> Self {
        CheckError(e.to_string())
    }
}

pub type CheckResult = Result<Verdict, CheckError>;

/// Passed to every check: where to report progress.
pub struct Context<'a> {
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl Context<'_> {
    /// A context that reports nothing (tests).
    pub fn quiet() -> Context<'static> {
        Context { progress: &|_| {} }
    }
}

/// A claim of the paper, with its check.
pub struct Claim {
    /// The id from the claims spec (`T1`, `EQ`, …).
    pub id: &'static str,
    /// The module that encodes it (`global_clustering`, …).
    pub name: &'static str,
    /// The paper's label and section, e.g. "Theorem 1, §4.1".
    pub label: &'static str,
    pub tier: Tier,
    /// The statement as the paper makes it.
    pub statement: &'static str,
    pub check: fn(&Context) -> CheckResult,
    /// Re-runs one serialised case (the `input` of a [`Counterexample`]).
    pub replay: fn(&str) -> CheckResult,
}

/// The verdict of a property on one input.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    /// The statement held; the numbers say by how much.
    Pass(BTreeMap<String, f64>),
    /// The statement failed on this input.
    Fail(String),
    /// The input could not decide (e.g. not yet clustered at the horizon).
    Inconclusive(String),
}

/// What a property search found.
#[derive(Debug, Clone)]
pub struct Search<C> {
    /// Outcomes of the generated cases, in order, up to and including the first failure.
    pub outcomes: Vec<(C, CaseOutcome)>,
    /// The shrunk failing input and its reason, if any case failed.
    pub minimal_failure: Option<(C, String)>,
}

impl<C> Search<C> {
    pub fn passed(&self) -> impl Iterator<Item = (&C, &BTreeMap<String, f64>)> {
        self.outcomes.iter().filter_map(|(c, o)| match o {
            CaseOutcome::Pass(m) => Some((c, m)),
            _ => None,
        })
    }
    pub fn inconclusive(&self) -> impl Iterator<Item = (&C, &String)> {
        self.outcomes.iter().filter_map(|(c, o)| match o {
            CaseOutcome::Inconclusive(r) => Some((c, r)),
            _ => None,
        })
    }
    /// One line per undecided case, with the case as replayable JSON.
    pub fn inconclusive_notes(&self) -> Vec<String>
    where
        C: Serialize,
    {
        self.inconclusive()
            .map(|(c, r)| format!("{}: {r}", serde_json::to_string(c).unwrap_or_default()))
            .collect()
    }

    /// The largest value of a named number over the passing cases.
    pub fn max_of(&self, name: &str) -> f64 {
        self.passed().filter_map(|(_, m)| m.get(name).copied()).fold(f64::NEG_INFINITY, f64::max)
    }
    /// The smallest value of a named number over the passing cases.
    pub fn min_of(&self, name: &str) -> f64 {
        self.passed().filter_map(|(_, m)| m.get(name).copied()).fold(f64::INFINITY, f64::min)
    }
}

/// Runs `property` on `cases` inputs drawn from `strategy` by proptest with a fixed ChaCha seed,
/// and shrinks the first failure to a minimal input. Deterministic: the same seed gives the same
/// cases, outcomes and shrunk input, bit for bit.
pub fn search<S>(
    seed: u64,
    cases: u32,
    strategy: S,
    property: impl Fn(&S::Value) -> CaseOutcome,
) -> Search<S::Value>
where
    S: Strategy,
    S::Value: Clone + Debug,
{
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    // Outcomes are recorded only until the first failure: after it, proptest is shrinking and the
    // inputs it tries are no longer draws from the strategy.
    let recorded = RefCell::new(Vec::new());
    let shrinking = RefCell::new(false);
    let result = runner.run(&strategy, |case| {
        let outcome = property(&case);
        if !*shrinking.borrow() {
            if matches!(outcome, CaseOutcome::Fail(_)) {
                *shrinking.borrow_mut() = true;
            }
            recorded.borrow_mut().push((case, outcome.clone()));
        }
        match outcome {
            CaseOutcome::Fail(reason) => Err(TestCaseError::fail(reason)),
            _ => Ok(()),
        }
    });
    let minimal_failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, case)) => Some((case, reason.message().to_string())),
        Err(TestError::Abort(reason)) => {
            // Abort happens only on too many rejections, and no strategy here rejects.
            Some((
                recorded.borrow().last().map(|(c, _)| c.clone()).expect("abort after a case"),
                reason.message().to_string(),
            ))
        }
    };
    Search { outcomes: recorded.into_inner(), minimal_failure }
}

/// The replay command for one case of claim `id`.
pub fn replay_command<C: Serialize>(id: &str, case: &C) -> (String, String) {
    let input = serde_json::to_string(case).unwrap_or_else(|e| format!("<unserialisable: {e}>"));
    let command = format!("cargo xtask verify --replay '{id}:{input}'");
    (input, command)
}

/// A claim's input that can be replayed: it must say whether it lies inside the claim's hypotheses
/// (and within what a replay can compute), because a replayed input outside them is a usage error,
/// not a counterexample.
pub trait ReplayCase: DeserializeOwned {
    fn validate(&self) -> Result<(), CheckError>;
}

/// Parses and validates a replayed case.
pub fn parse_case<C: ReplayCase>(id: &str, input: &str) -> Result<C, CheckError> {
    let case: C = serde_json::from_str(input)
        .map_err(|e| CheckError(format!("cannot parse a {id} case from `{input}`: {e}")))?;
    case.validate().map_err(|e| CheckError(format!("{id} case outside the claim's hypotheses: {e}")))?;
    Ok(case)
}

/// `value` finite and in `[lo, hi]`, else an error naming the field.
pub fn check_field(name: &str, value: f64, lo: f64, hi: f64) -> Result<(), CheckError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(CheckError(format!("`{name}` = {value} must lie in [{lo}, {hi}]")))
    }
}

/// `value` in `lo..=hi`, else an error naming the field.
pub fn check_size(name: &str, value: usize, lo: usize, hi: usize) -> Result<(), CheckError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(CheckError(format!("`{name}` = {value} must lie in {lo}..={hi}")))
    }
}

/// The outcome of a case whose simulation may fail. A numerical failure on an input inside the
/// hypotheses is reported as a failure — visible and replayable — rather than hidden as
/// "inconclusive": it is either a bug here or a statement about the flow worth reading.
pub fn outcome(result: dynamics::Result<CaseOutcome>) -> CaseOutcome {
    result.unwrap_or_else(|e| CaseOutcome::Fail(format!("the case could not be simulated: {e}")))
}

/// Parses, validates and re-runs one serialised case of claim `id`.
pub fn replay_case<C: ReplayCase>(id: &str, input: &str, run: impl Fn(&C) -> CaseOutcome) -> CheckResult {
    let case: C = parse_case(id, input)?;
    Ok(replay_verdict(id, input, run(&case)))
}

/// Builds the verdict of a single replayed case.
pub fn replay_verdict(id: &str, input: &str, outcome: CaseOutcome) -> Verdict {
    match outcome {
        CaseOutcome::Pass(numbers) => {
            Verdict::Held { evidence: Evidence { key: "the case holds".into(), numbers, notes: vec![] } }
        }
        CaseOutcome::Inconclusive(reason) => {
            Verdict::Inconclusive { evidence: Evidence::new("undecided"), reason }
        }
        CaseOutcome::Fail(reason) => Verdict::Counterexample {
            evidence: Evidence::new(reason.clone()),
            counterexample: Counterexample {
                input: input.to_string(),
                reason,
                replay: format!("cargo xtask verify --replay '{id}:{input}'"),
            },
        },
    }
}

/// The verdict of a property search: a counterexample if any case failed, held if some case
/// passed and none failed, inconclusive if no case decided.
pub fn verdict_of<C: Serialize>(id: &str, search: &Search<C>, evidence: Evidence) -> Verdict {
    if let Some((case, reason)) = &search.minimal_failure {
        let (input, replay) = replay_command(id, case);
        return Verdict::Counterexample {
            evidence,
            counterexample: Counterexample { input, reason: reason.clone(), replay },
        };
    }
    if search.passed().next().is_none() {
        let reason =
            search.inconclusive().next().map(|(_, r)| r.clone()).unwrap_or_else(|| "no case was run".into());
        return Verdict::Inconclusive { evidence, reason };
    }
    Verdict::Held { evidence }
}

/// Rounds to `digits` significant digits, for snapshots: the digits a check's error analysis
/// supports, so that a snapshot changes only when the mathematics does.
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// A snapshot-stable view of a verdict: the verdict name, key numbers rounded to `digits`
/// significant digits, and the counterexample input.
#[derive(Debug, Serialize)]
pub struct VerdictSnapshot {
    pub verdict: &'static str,
    pub numbers: BTreeMap<String, f64>,
    pub counterexample: Option<String>,
}

impl VerdictSnapshot {
    /// Numbers named `err_*` are measured rounding or integration errors: they are asserted against
    /// derived tolerances by the check itself, and left out here because their trailing digits
    /// depend on the platform's floating-point schedule, not on the mathematics.
    pub fn of(verdict: &Verdict, digits: i32) -> Self {
        let numbers = verdict
            .evidence()
            .numbers
            .iter()
            .filter(|(k, _)| !k.starts_with("err_"))
            .map(|(k, v)| (k.clone(), round_sig(*v, digits)))
            .collect();
        let counterexample = match verdict {
            Verdict::Counterexample { counterexample, .. } => Some(counterexample.input.clone()),
            _ => None,
        };
        Self { verdict: verdict.name(), numbers, counterexample }
    }
}
