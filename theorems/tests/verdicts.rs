//! Snapshot of every claim's verdict and key numbers: `cargo test` fails when the code is wrong or
//! a computed verdict changes, and not merely because the paper is wrong somewhere (a refuted
//! claim is snapshotted as a counterexample, which is a finding).
//!
//! Numbers are rounded to 4 significant digits: every key number is computed with a relative error
//! below 1e-6 (integrator tolerances ≤ 1e-10, exact formulas elsewhere), so 4 digits are stable
//! across platforms and change only when the mathematics does.

use theorems::claim::VerdictSnapshot;
use theorems::{find, Context};

const SNAPSHOT_DIGITS: i32 = 4;

fn check(id: &str) {
    let claim = find(id).unwrap_or_else(|| panic!("claim {id} is not registered"));
    let verdict = (claim.check)(&Context::quiet()).unwrap_or_else(|e| panic!("{id} could not run: {e}"));
    eprintln!("{id}: {} — {}", verdict.name(), verdict.evidence().key);
    insta::with_settings!({ snapshot_suffix => id, info => &claim.statement, omit_expression => true }, {
        insta::assert_json_snapshot!("verdict", VerdictSnapshot::of(&verdict, SNAPSHOT_DIGITS));
    });
}

#[test]
fn long_context_phase_transition() {
    check("T7");
}

#[test]
fn global_clustering() {
    check("T1");
}

#[test]
fn equiangular_reduction() {
    check("EQ");
}

#[test]
fn linearized_rates() {
    check("LR");
}

#[test]
fn energy_monotonicity() {
    check("EN");
}
