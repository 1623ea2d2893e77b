//! `fail_if_body_json_matches_cel` / `fail_if_body_json_not_matches_cel`: CEL expressions over
//! a JSON body, compiled once at load, evaluated with the parsed body bound to `body` as
//! blackbox does. A body that is not JSON, an expression that fails to evaluate or one that
//! yields no boolean fails the probe. As blackbox's CEL environment declares `body` alone, an
//! expression naming any other variable is refused at load.

use super::{Failure, FailureReason};
use crate::config::{ConfigError, Source};
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
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
        let mut bound = Vec::new();
        if let Some(name) = undeclared(program.expression(), &mut bound) {
            return Err(source.error_at_span(
                expression,
                format!("could not compile CEL program: undeclared reference to '{name}' (only `body` is declared)"),
            ));
        }
        Ok(CelCheck { program, expression: expression.value.clone(), fail_when })
    }
}

/// CEL's type names, which an expression may name as values (`type(body) == map`).
const TYPE_NAMES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "duration",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "uint",
];

/// The first name `expr` uses that is neither `body`, a type name, nor a variable bound by an
/// enclosing comprehension (`body.items.all(item, item.ok)`): `bound` holds those.
fn undeclared<'a>(expr: &'a IdedExpr, bound: &mut Vec<&'a str>) -> Option<&'a str> {
    match &expr.expr {
        Expr::Ident(name) => (name != "body"
            && !name.starts_with('@')
            && !TYPE_NAMES.contains(&name.as_str())
            && !bound.contains(&name.as_str()))
        .then_some(name.as_str()),
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| t.as_ref())
            .chain(&call.args)
            .find_map(|e| undeclared(e, bound)),
        Expr::Comprehension(c) => {
            if let Some(name) = undeclared(&c.iter_range, bound) {
                return Some(name);
            }
            let depth = bound.len();
            bound.push(&c.accu_var);
            let found = undeclared(&c.accu_init, bound);
            bound.push(&c.iter_var);
            bound.extend(c.iter_var2.as_deref());
            let found = found.or_else(|| {
                [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .find_map(|e| undeclared(e, bound))
            });
            bound.truncate(depth);
            found
        }
        Expr::List(list) => list.elements.iter().find_map(|e| undeclared(e, bound)),
        Expr::Map(map) => map.entries.iter().find_map(|e| entry(&e.expr, bound)),
        Expr::Struct(s) => s.entries.iter().find_map(|e| entry(&e.expr, bound)),
        Expr::Select(select) => undeclared(&select.operand, bound),
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

fn entry<'a>(entry: &'a EntryExpr, bound: &mut Vec<&'a str>) -> Option<&'a str> {
    match entry {
        EntryExpr::StructField(field) => undeclared(&field.value, bound),
        EntryExpr::MapEntry(e) => undeclared(&e.key, bound).or_else(|| undeclared(&e.value, bound)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn compile(expression: &str) -> Result<(), String> {
        let text = format!("e: {expression:?}\n");
        let source = Source::from_text(Path::new("m.yml"), &text).unwrap();
        let spanned: std::collections::BTreeMap<String, Spanned<String>> = source.parse().unwrap();
        CelCheck::compile(&spanned["e"], true, &source).map(|_| ()).map_err(|e| e.message)
    }

    /// Names the environment does not declare are refused at load, as cel-go refuses them;
    /// comprehension variables, type names and `body` are fine.
    #[test]
    fn only_body_is_declared() {
        for ok in [
            "body.foo == 'bar'",
            "body.items.all(item, item.ok)",
            "body.items.exists(i, body.items.exists(j, i == j))",
            "body.items.map(x, x * 2).size() > 0",
            "type(body) == map && 'x' in body",
            "{'a': body.a}.a == [body.b][0]",
        ] {
            assert_eq!(compile(ok), Ok(()), "{ok}");
        }
        for (bad, name) in [
            ("foo == 1", "foo"),
            ("body.items.all(item, other)", "other"),
            ("body.items.all(item, item) && item", "item"),
            ("{'a': x}.a", "x"),
        ] {
            let error = compile(bad).unwrap_err();
            assert!(error.contains(&format!("undeclared reference to '{name}'")), "{bad}: {error}");
        }
    }
}
