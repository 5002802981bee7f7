//! Templates and conditions in manifests (minijinja), with the variables in
//! scope where they run: `config`, `state`, `connection`, `page`, `partition`,
//! `now`, `record`, `records`, `run`.
//!
//! A template's source text is its own name in the environment's loader, so
//! each template or condition is compiled once per run however many records
//! pass through it. Every source passes [`template_limits`] before it is
//! compiled, and every render runs on a fuel budget into a capped output.

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use ferry_core::error::{Error, Result};
use ferry_core::template_limits::{self, TooComplex, MAX_RENDER_OUTPUT, RENDER_FUEL, RENDER_RECURSION};

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

const CONDITION_PREFIX: &str = "{% if ";
const CONDITION_SUFFIX: &str = " %}1{% endif %}";

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // A typo in a variable name fails the run instead of sending empty strings.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(RENDER_FUEL));
        env.set_recursion_limit(RENDER_RECURSION);
        env.set_loader(|name| Ok(Some(name.to_owned())));
        env.add_filter("date", |v: Value| -> std::result::Result<String, minijinja::Error> {
            let s = v.to_string();
            Ok(s.get(..10).unwrap_or(&s).to_owned())
        });
        Self { env }
    }

    /// Renders a template string; plain strings are returned as they are.
    pub fn render(&self, source: &str, ctx: &Value) -> Result<String> {
        self.prepare(source).render(ctx)
    }

    /// Evaluates a condition (`record.status == 'active'`).
    pub fn is_true(&self, condition: &str, ctx: &Value) -> Result<bool> {
        self.prepare_condition(condition).is_true(ctx)
    }

    /// Looks a template up once, for rendering it many times (once per record).
    pub fn prepare<'a>(&'a self, source: &'a str) -> Prepared<'a> {
        let compiled = is_template(source).then(|| match template_limits::check_template(source) {
            Ok(()) => self.env.get_template(source).map_err(|e| Failure::Engine(Box::new(e))),
            Err(e) => Err(Failure::TooComplex(e)),
        });
        Prepared { source, what: "template", compiled }
    }

    /// [`Templates::prepare`] for a condition.
    pub fn prepare_condition<'a>(&'a self, condition: &'a str) -> Prepared<'a> {
        let wrapped = format!("{CONDITION_PREFIX}{condition}{CONDITION_SUFFIX}");
        // The wrapped source is what minijinja reads, should the condition close its `{% if %}`.
        let checked = template_limits::check_expression(condition).and_then(|()| {
            template_limits::check_template(&wrapped).map_err(|e| TooComplex { column: 1, line: 1, ..e })
        });
        let compiled = match checked {
            Ok(()) => self.env.get_template(&wrapped).map_err(|e| Failure::Engine(Box::new(e))),
            Err(e) => Err(Failure::TooComplex(e)),
        };
        Prepared { source: condition, what: "condition", compiled: Some(compiled) }
    }
}

/// Why a template cannot be rendered.
enum Failure {
    TooComplex(TooComplex),
    Engine(Box<minijinja::Error>),
}

/// A template or condition ready to render: compiled (or why not, reported
/// each time it is used, like [`Templates::render`] does), or a plain string.
pub struct Prepared<'a> {
    source: &'a str,
    what: &'static str,
    compiled: Option<std::result::Result<minijinja::Template<'a, 'a>, Failure>>,
}

/// Error messages quote a template up to this many characters.
const QUOTED_CHARS: usize = 80;

impl Prepared<'_> {
    fn quoted(&self) -> String {
        match self.source.char_indices().nth(QUOTED_CHARS) {
            Some((cut, _)) => format!("{}…", &self.source[..cut]),
            None => self.source.to_owned(),
        }
    }

    fn failed(&self, failure: &Failure) -> Error {
        match failure {
            Failure::TooComplex(e) => {
                Error::invalid(e.code, format!("{} `{}` is refused: {e}", self.what, self.quoted()))
            }
            Failure::Engine(e) => self.render_failed(e),
        }
    }

    fn render_failed(&self, e: &minijinja::Error) -> Error {
        let why = match e.kind() {
            ErrorKind::OutOfFuel => {
                format!("it ran more than {RENDER_FUEL} steps (a loop over too many items?); the record is not mapped")
            }
            ErrorKind::WriteFailure => format!("its output would be larger than {MAX_RENDER_OUTPUT} bytes"),
            _ => e.detail().unwrap_or("error").to_owned(),
        };
        Error::invalid("template_failed", format!("{} `{}` failed: {why}", self.what, self.quoted()))
    }

    pub fn render(&self, ctx: &Value) -> Result<String> {
        match &self.compiled {
            None => Ok(self.source.to_owned()),
            Some(Ok(t)) => {
                let mut out = CappedOutput(Vec::new());
                t.render_captured_to(ctx, &mut out).map_err(|e| self.render_failed(&e))?;
                String::from_utf8(out.0).map_err(|_| Error::invalid("template_failed", "output is not UTF-8"))
            }
            Some(Err(e)) => Err(self.failed(e)),
        }
    }

    pub fn is_true(&self, ctx: &Value) -> Result<bool> {
        Ok(self.render(ctx)? == "1")
    }
}

/// A render's output, refusing to grow past [`MAX_RENDER_OUTPUT`].
struct CappedOutput(Vec<u8>);

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDER_OUTPUT {
            return Err(std::io::Error::other("template output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a dotted path (`properties.email`, `items.0.id`) from a JSON value.
pub fn get_path<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, seg| match v {
        serde_json::Value::Object(m) => m.get(seg),
        serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(v: serde_json::Value) -> Value {
        Value::from_serialize(v)
    }

    #[test]
    fn templates_render_and_plain_strings_pass_through() {
        let t = Templates::new();
        let c = ctx(serde_json::json!({"record": {"n": 3, "s": "x"}}));
        assert_eq!(t.render("n={{ record.n }}", &c).expect("render"), "n=3");
        assert_eq!(t.render("plain", &c).expect("plain"), "plain");
    }

    #[test]
    fn conditions_evaluate_to_booleans() {
        let t = Templates::new();
        let c = ctx(serde_json::json!({"record": {"status": "active", "n": 2}}));
        assert!(t.is_true("record.status == 'active'", &c).expect("cond"));
        assert!(!t.is_true("record.n > 5", &c).expect("cond"));
    }

    #[test]
    fn unknown_variables_fail_instead_of_rendering_empty() {
        let t = Templates::new();
        assert!(t.render("{{ recrod.x }}", &ctx(serde_json::json!({"record": {}}))).is_err());
    }

    #[test]
    fn dotted_paths_walk_objects_and_arrays() {
        let v = serde_json::json!({"a": {"b": [{"c": 1}]}});
        assert_eq!(get_path(&v, "a.b.0.c"), Some(&serde_json::json!(1)));
        assert_eq!(get_path(&v, "a.x"), None);
        assert_eq!(get_path(&v, ""), Some(&v));
    }
}

/// The limits of `ferry_core::template_limits` hold with the engine's own
/// template environment: what the check accepts renders on a worker's stack.
#[cfg(test)]
mod limits_fit_the_stack {
    use ferry_core::template_limits::*;

    fn chain(link: &str, n: usize) -> String {
        format!("{{{{ x{} }}}}", link.repeat(n))
    }

    #[test]
    fn the_deepest_accepted_templates_fit_half_a_worker_stack() {
        let depth = MAX_STATEMENT_DEPTH;
        let statements = |inner: &str| format!("{}{inner}{}", "{% if x %}".repeat(depth), "{% endif %}".repeat(depth));
        let deepest: Vec<String> = ["+1", "|lower", ".a", " and x", " or x", "[0]", " ~ x"]
            .iter()
            .map(|link| chain(link, MAX_EXPRESSION_DEPTH - 1))
            .chain([format!("{{{{ {}x{} }}}}", "(".repeat(MAX_BRACKET_DEPTH), "+x)".repeat(MAX_BRACKET_DEPTH))])
            .chain([format!("{{{{ {}x }}}}", "(".repeat(MAX_BRACKET_DEPTH))])
            .chain([
                format!("{{{{ {}x }}}}", "not ".repeat(MAX_PREFIX_RUN)),
                format!("{{{{ {}x }}}}", "- ".repeat(MAX_PREFIX_RUN)),
            ])
            .flat_map(|t| [statements(&t), t])
            .collect();
        for source in &deepest {
            assert_eq!(check_template(source), Ok(()), "{source}");
        }
        let rendered = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let templates = crate::template::Templates::new();
                let ctx = minijinja::Value::from_serialize(serde_json::json!({"x": {"a": "b"}}));
                deepest.iter().filter(|s| templates.render(s, &ctx).is_ok()).count()
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert!(rendered > 0);
    }

    #[test]
    fn a_recursive_macro_fails_its_render_within_half_a_worker_stack() {
        let source = "{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(1) }}";
        assert_eq!(check_template(source), Ok(()));
        let rendered = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let templates = crate::template::Templates::new();
                templates.render(source, &minijinja::Value::from(())).map_err(|e| e.to_string())
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert!(rendered.as_ref().is_err_and(|e| e.contains("recursion")), "{rendered:?}");
    }
}
