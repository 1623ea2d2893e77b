//! `fail_if_body_json_matches_cel` / `fail_if_body_json_not_matches_cel`: CEL expressions over
//! a JSON body, compiled once at load, evaluated with the parsed body bound to `body` as
//! blackbox does. A body that is not JSON, an expression that fails to evaluate or one that
//! yields no boolean fails the probe.

use super::{Failure, FailureReason};
use crate::config::{ConfigError, Source};
use cel::{Context, Program, Value};
use serde_saphyr::Spanned;

/// One compiled expression, with its text for messages.
pub struct CelCheck {
    program: Program,
    expression: String,
    /// Whether the probe fails when the expression is true (`..._matches_cel`) or false.
    fail_when: bool,
}

impl CelCheck {
    pub fn compile(
        expression: &Spanned<String>,
        fail_when: bool,
        source: &Source,
    ) -> Result<CelCheck, ConfigError> {
        let program = Program::compile(&expression.value).map_err(|e| {
            source.error_at_span(expression, format!("could not compile CEL program: {e}"))
        })?;
        Ok(CelCheck { program, expression: expression.value.clone(), fail_when })
    }
}

/// Parses `body` as JSON and applies `checks` in order; the first that fails says why.
pub fn check(body: &[u8], checks: &[CelCheck]) -> Result<(), Failure> {
    let failed = |message: String| Failure::new(FailureReason::BodyCel, message);
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| failed(format!("body is not JSON: {e}")))?;
    let mut context = Context::default();
    context
        .add_variable("body", json)
        .map_err(|e| failed(format!("body cannot be given to CEL: {e}")))?;
    for check in checks {
        let result = check.program.execute(&context).map_err(|e| {
            failed(format!("evaluating CEL expression {:?}: {e}", check.expression))
        })?;
        let Value::Bool(matched) = result else {
            return Err(failed(format!(
                "CEL expression {:?} did not yield a boolean",
                check.expression
            )));
        };
        if matched == check.fail_when {
            let what = if matched { "matched" } else { "did not match" };
            return Err(failed(format!("body {what} CEL expression {:?}", check.expression)));
        }
    }
    Ok(())
}
