//! The limits every tenant template lives within, and the one check that
//! enforces the compile-time ones before minijinja's parser sees the source.
//!
//! minijinja builds operator, filter and attribute chains (`1+1+…`, `x|f|f|…`,
//! `a.b.c…`, `a and b and …`) into trees as deep as the chain is long, then
//! compiles, inspects and drops them by recursion: a long chain overflows the
//! stack of whatever thread compiles it. It also folds constant expressions
//! while compiling, so `'x' * 100000000` costs 100 MB before a record is seen.
//! The check below reads the source once, left to right, with its own stack of
//! open brackets on the heap (it cannot overflow on any input), mirroring the
//! parts of minijinja's lexer that decide what is code. Every tenant template
//! passes it: the engine's `Templates` before compiling, and the validation of
//! manifests, mapping configurations and inline job mappings (`manifest::checks`).

use std::fmt;

/// A template's source, in bytes. The longest real templates (request bodies
/// written as one template) are a few KiB; a mapping field is tens of bytes.
/// Below 65,535 too: minijinja counts lines and columns in `u16` and its
/// syntax errors point one column past the last, which overflows (a panic in
/// builds with overflow checks) on a line that long.
pub const MAX_TEMPLATE_BYTES: usize = 60 * 1024;

/// How deep one expression may nest: its prefix and infix operators, plus the
/// lookups, calls and filters of its deepest operand, plus the brackets nested
/// in that. A field joining 100 record paths with `~` needs about 200.
/// minijinja's recursive passes use 1-2 KiB of stack per level in a debug
/// build (a 2 MiB thread overflows between 1,000 and 2,000 levels), so 256
/// levels, even inside [`MAX_STATEMENT_DEPTH`] nested statements, stay within
/// half the 2 MiB stack of a tokio or rayon worker (a test proves it).
pub const MAX_EXPRESSION_DEPTH: usize = 256;

/// How deep brackets may nest. minijinja parses each bracket through a dozen
/// recursive functions (about 8 KiB of stack per level in a debug build: 122
/// unclosed `(` overflowed a 1 MiB thread, found by the template_compile fuzz
/// target); JSON-like literals in request bodies nest a handful deep.
pub const MAX_BRACKET_DEPTH: usize = 32;

/// How many prefix operators (`not`, `-`, `+`) may follow each other: minijinja
/// parses them by recursion too.
pub const MAX_PREFIX_RUN: usize = 64;

/// How deep `{% if %}`, `{% for %}` and the other block statements may nest.
/// Real templates nest a loop in a condition or two; each level costs stack in
/// the same recursive passes, on top of the deepest expression inside it.
pub const MAX_STATEMENT_DEPTH: usize = 32;

/// What constant folding may build while a template compiles, summed over its
/// expressions: the string literals of an expression that multiplies, times
/// the numbers in it. `'-' * 40` costs 40 bytes; `'x' * 100000000` is refused.
pub const MAX_FOLDED_BYTES: u128 = 1024 * 1024;

/// Instructions one render may execute (minijinja's fuel). A field template
/// runs tens; a loop over a record's 5,000 line items with ten steps each
/// still fits. Nested loops over repeated strings run out instead of
/// holding a worker for minutes.
pub const RENDER_FUEL: u64 = 100_000;

/// minijinja's runtime recursion budget (its default and maximum is 500): a
/// macro call costs it about five, a loop or condition one. A recursive macro
/// reached about 100 calls deep at 500, each call several KiB of stack in a
/// debug build, and overflowed a 1 MiB thread (found by the template_compile
/// fuzz target); at 100 it stops at about 20 calls.
pub const RENDER_RECURSION: usize = 100;

/// Bytes one render may write. A field or request body bigger than this is
/// not something a target accepts; a render that writes more fails that
/// record instead of growing the process.
pub const MAX_RENDER_OUTPUT: usize = 4 * 1024 * 1024;

/// Why a template was refused before compiling, and where (1-based line and
/// column within the template, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooComplex {
    /// [`CODE`] for a limit; `invalid_template` for source minijinja would
    /// mishandle (its expression parser panics on an expression with `}}` in it).
    pub code: &'static str,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TooComplex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {}, column {} of the template)", self.message, self.line, self.column)
    }
}

/// The stable error code of a template refused by these limits.
pub const CODE: &str = "template_too_complex";

/// Checks a template (text with `{{ }}`, `{% %}` and `{# #}` blocks).
pub fn check_template(source: &str) -> Result<(), TooComplex> {
    Scan::new(source, false).run()
}

/// Checks an expression (a condition or filter: code from the first byte).
pub fn check_expression(source: &str) -> Result<(), TooComplex> {
    Scan::new(source, true).run()
}

/// One bracket level: a bound on the depth of the tree of its current element
/// (what lies between separators), and the deepest element so far.
///
/// An element is operands joined by prefix and infix operators: `k` of them
/// make a tree at most `k` deeper than its deepest operand. An operand is a
/// primary with its lookups, calls and filters (`record.a.b`, `x|lower`),
/// each one level, plus the deepest bracket inside it.
#[derive(Default, Clone, Copy)]
struct Level {
    /// Prefix and infix operators of the element so far.
    operators: usize,
    /// Lookups, calls and filters of the current operand.
    postfix: usize,
    /// The deepest bracket closed inside the current operand.
    nested: usize,
    /// The deepest operand of the element so far.
    deepest_operand: usize,
    /// The deepest element of this level so far.
    deepest: usize,
}

impl Level {
    fn operand(&self) -> usize {
        self.postfix + self.nested
    }
    fn depth(&self) -> usize {
        (self.operators + self.deepest_operand.max(self.operand())).max(self.deepest)
    }
    /// An operator: the current operand is complete.
    fn operator(&mut self) {
        self.deepest_operand = self.deepest_operand.max(self.operand());
        self.postfix = 0;
        self.nested = 0;
        self.operators += 1;
    }
    /// A separator (`,`, `:`, `=`): a new element starts.
    fn separate(&mut self) {
        self.deepest = self.depth();
        *self = Level { deepest: self.deepest, ..Level::default() };
    }
}

/// What constant folding could build from one block.
#[derive(Default)]
struct Fold {
    string_bytes: u128,
    numbers: u128,
    multiplies: bool,
    powers: bool,
}

impl Fold {
    fn bound(&self) -> u128 {
        match (self.multiplies && self.string_bytes > 0, self.powers) {
            (false, _) => 0,
            (true, true) => u128::MAX,
            (true, false) => self.string_bytes.saturating_mul(self.numbers.max(1)),
        }
    }
}

struct Scan<'a> {
    src: &'a [u8],
    text: &'a str,
    at: usize,
    /// minijinja's own count: a block ends only where every bracket is closed.
    balance: isize,
    levels: Vec<Level>,
    fold: Fold,
    folded: u128,
    block_start: usize,
    in_code: Option<&'static [u8]>,
    /// Whether the source is an expression rather than a template.
    expression: bool,
    /// Prefix-capable operators (`not`, `-`, `+`) in a row, nothing between them.
    prefix_run: usize,
    /// The block statements open around the current block.
    statements: usize,
    /// The first word of the current `{% %}` block, and whether it assigns.
    tag: Option<&'a [u8]>,
    assigns: bool,
}

enum Step {
    Continue,
    Done,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str, expression: bool) -> Self {
        Scan {
            src: text.as_bytes(),
            text,
            at: 0,
            balance: 0,
            levels: vec![Level::default()],
            fold: Fold::default(),
            folded: 0,
            block_start: 0,
            in_code: expression.then_some(b"}}".as_slice()),
            expression,
            prefix_run: 0,
            statements: 0,
            tag: None,
            assigns: false,
        }
    }

    fn run(mut self) -> Result<(), TooComplex> {
        if self.src.len() > MAX_TEMPLATE_BYTES {
            return Err(self.refuse(
                0,
                format!(
                    "the template is {} bytes; templates may be at most {MAX_TEMPLATE_BYTES} bytes",
                    self.src.len()
                ),
            ));
        }
        loop {
            let step = match self.in_code {
                None => self.text_step(),
                Some(end) => self.code_step(end)?,
            };
            if let Step::Done = step {
                return self.end_block();
            }
        }
    }

    fn refuse(&self, offset: usize, message: String) -> TooComplex {
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        TooComplex { code: CODE, line, column, message }
    }

    fn rest(&self) -> &'a [u8] {
        &self.src[self.at.min(self.src.len())..]
    }

    /// Literal text up to the next block; comments and raw blocks are skipped.
    fn text_step(&mut self) -> Step {
        let Some(open) = find(self.rest(), b"{").map(|i| self.at + i) else { return Step::Done };
        self.at = open + 1;
        let (end, kind): (&'static [u8], u8) = match self.src.get(open + 1) {
            Some(b'{') => (b"}}", b'{'),
            Some(b'%') => (b"%}", b'%'),
            Some(b'#') => (b"#}", b'#'),
            _ => return Step::Continue,
        };
        self.at = open + 2;
        if matches!(self.src.get(self.at), Some(b'-' | b'+')) {
            self.at += 1;
        }
        match kind {
            b'#' => self.at = find(self.rest(), end).map_or(self.src.len(), |i| self.at + i + 2),
            b'%' if basic_tag(self.rest(), b"raw").is_some() => self.skip_raw(),
            _ => {
                self.block_start = open;
                self.in_code = Some(end);
                if kind == b'%' {
                    self.tag = Some(first_word(self.rest()));
                }
            }
        }
        Step::Continue
    }

    /// From just after `{%`: past the matching `{% endraw %}` (or to the end).
    fn skip_raw(&mut self) {
        self.at += basic_tag(self.rest(), b"raw").unwrap_or(0);
        while let Some(i) = find(self.rest(), b"{%") {
            self.at += i + 2;
            let mut tag = self.rest();
            if let Some(b'-' | b'+') = tag.first() {
                tag = &tag[1..];
            }
            if let Some(len) = basic_tag(tag, b"endraw") {
                self.at += len + (self.rest().len() - tag.len());
                return;
            }
        }
        self.at = self.src.len();
    }

    /// One token of code.
    fn code_step(&mut self, end: &'static [u8]) -> Result<Step, TooComplex> {
        let rest = self.rest();
        let Some(skip) = rest.iter().position(|b| !b.is_ascii_whitespace()) else { return Ok(Step::Done) };
        self.at += skip;
        let rest = self.rest();
        if self.balance == 0 {
            let marker = if let Some(b'-' | b'+') = rest.first() { &rest[1..] } else { rest };
            if marker.starts_with(end) && self.expression {
                let message = "an expression cannot contain `}}` (it is not inside a template)".to_owned();
                return Err(TooComplex { code: "invalid_template", ..self.refuse(self.at, message) });
            }
            if marker.starts_with(end) {
                self.at += rest.len() - marker.len() + end.len();
                self.end_block()?;
                self.in_code = None;
                return Ok(Step::Continue);
            }
        }
        let start = self.at;
        self.count_prefix(rest)?;
        match rest {
            [b'/', b'/', ..] | [b'=' | b'!' | b'>' | b'<', b'=', ..] => self.operator(start, 2)?,
            [b'*', b'*', ..] => {
                self.fold.powers = true;
                self.operator(start, 2)?
            }
            [b'*', ..] => {
                self.fold.multiplies = true;
                self.operator(start, 1)?
            }
            [b'+' | b'-' | b'/' | b'%' | b'~' | b'>' | b'<', ..] => self.operator(start, 1)?,
            [b'.' | b'|', ..] => self.postfix(start, 1)?,
            [b',' | b':' | b'=', ..] => {
                self.assigns |= rest[0] == b'=' && self.levels.len() == 1;
                self.at += 1;
                self.current().separate();
            }
            [b'(' | b'[' | b'{', ..] => self.open(start)?,
            [b')' | b']' | b'}', ..] => self.close(start)?,
            [q @ (b'\'' | b'"'), ..] => self.string(*q),
            [d, ..] if d.is_ascii_digit() => self.number(),
            _ => self.word(start)?,
        }
        Ok(Step::Continue)
    }

    /// `not not not x` and `- - x` nest by recursion in minijinja's parser.
    fn count_prefix(&mut self, rest: &[u8]) -> Result<(), TooComplex> {
        let word = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        let prefix = matches!(rest.first(), Some(b'-' | b'+')) && !matches!(rest.get(1), Some(b'}' | b'%'))
            || &rest[..word] == b"not";
        self.prefix_run = if prefix { self.prefix_run + 1 } else { 0 };
        if self.prefix_run > MAX_PREFIX_RUN {
            return Err(self.refuse(self.at, format!("more than {MAX_PREFIX_RUN} `not`, `-` or `+` in a row")));
        }
        Ok(())
    }

    fn current(&mut self) -> &mut Level {
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// A prefix or infix operator: one more level above the operands.
    fn operator(&mut self, start: usize, len: usize) -> Result<(), TooComplex> {
        self.at = start + len;
        self.current().operator();
        let depth = self.current().depth();
        self.within(start, depth)
    }

    /// A lookup, call or filter: one more level above its operand.
    fn postfix(&mut self, start: usize, len: usize) -> Result<(), TooComplex> {
        self.at = start + len;
        self.current().postfix += 1;
        let depth = self.current().depth();
        self.within(start, depth)
    }

    fn within(&self, at: usize, depth: usize) -> Result<(), TooComplex> {
        let open: usize = self.levels.len() - 1;
        if open > MAX_BRACKET_DEPTH {
            return Err(self.refuse(at, format!("brackets nest more than {MAX_BRACKET_DEPTH} deep here")));
        }
        if depth + open > MAX_EXPRESSION_DEPTH {
            return Err(self.refuse(
                at,
                format!(
                    "this expression nests more than {MAX_EXPRESSION_DEPTH} operators, filters, lookups or \
                     brackets deep; split it with `{{% set %}}` or shorten the chain"
                ),
            ));
        }
        Ok(())
    }

    fn open(&mut self, start: usize) -> Result<(), TooComplex> {
        // A call or lookup (`f(`, `x[`) is a level above what it follows.
        if self.src[start] != b'{' {
            self.postfix(start, 1)?;
        }
        self.at = start + 1;
        self.balance += 1;
        self.levels.push(Level::default());
        self.within(start, 0)
    }

    fn close(&mut self, start: usize) -> Result<(), TooComplex> {
        self.at = start + 1;
        self.balance -= 1;
        if self.levels.len() > 1 {
            let inner = self.levels.pop().map_or(0, |l| l.depth());
            let level = self.current();
            level.nested = level.nested.max(inner + 1);
            let depth = level.depth();
            self.within(start, depth)?;
        }
        Ok(())
    }

    fn string(&mut self, quote: u8) {
        let body = &self.rest()[1..];
        let mut escaped = false;
        let len = body
            .iter()
            .take_while(|&&c| match (escaped, c) {
                (true, _) => {
                    escaped = false;
                    true
                }
                (_, b'\\') => {
                    escaped = true;
                    true
                }
                (_, c) => c != quote,
            })
            .count();
        self.fold.string_bytes = self.fold.string_bytes.saturating_add(len as u128);
        self.at += len + 2;
    }

    fn number(&mut self) {
        let rest = self.rest();
        let mut len = 0;
        while let Some(&c) = rest.get(len) {
            let prev = len.checked_sub(1).and_then(|i| rest.get(i)).copied().unwrap_or(b' ');
            let next_digit = rest.get(len + 1).is_some_and(u8::is_ascii_digit);
            let part = c.is_ascii_alphanumeric()
                || c == b'_'
                // `1.5`, but `items.0.id` is a lookup after the `0`.
                || (c == b'.' && prev.is_ascii_digit() && next_digit)
                || (matches!(c, b'+' | b'-') && matches!(prev, b'e' | b'E') && next_digit);
            if !part {
                break;
            }
            len += 1;
        }
        let value = number_value(&String::from_utf8_lossy(&rest[..len]).replace('_', ""));
        self.fold.numbers = self.fold.numbers.max(1).saturating_mul(value.max(1));
        self.at += len.max(1);
    }

    fn word(&mut self, start: usize) -> Result<(), TooComplex> {
        let rest = self.rest();
        let len = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        if len == 0 {
            // Not something minijinja accepts either; step over the character.
            self.at = start + self.text[start..].chars().next().map_or(1, char::len_utf8);
            return Ok(());
        }
        match &rest[..len] {
            b"and" | b"or" | b"not" | b"in" | b"is" | b"if" | b"else" => self.operator(start, len),
            _ => {
                self.at = start + len;
                Ok(())
            }
        }
    }

    /// Closes the block: its open brackets count as closed, its folding adds up.
    fn end_block(&mut self) -> Result<(), TooComplex> {
        while self.levels.len() > 1 {
            self.close(self.at.min(self.src.len()))?;
        }
        self.balance = 0;
        self.levels[0] = Level::default();
        self.nest_statements()?;
        let fold = std::mem::take(&mut self.fold);
        self.folded = self.folded.saturating_add(fold.bound());
        if self.folded > MAX_FOLDED_BYTES {
            return Err(self.refuse(
                self.block_start,
                format!(
                    "this block multiplies strings by constants into more than {MAX_FOLDED_BYTES} bytes while the \
                     template compiles; repeat a shorter string or compute the count from the record"
                ),
            ));
        }
        Ok(())
    }
}

impl Scan<'_> {
    /// Block statements open with their tag and close with `end<tag>`; `set`
    /// opens a block only without `=` (`{% set x %}…{% endset %}`).
    fn nest_statements(&mut self) -> Result<(), TooComplex> {
        let (tag, assigns) = (self.tag.take(), std::mem::take(&mut self.assigns));
        match tag {
            Some(b"if" | b"for" | b"with" | b"macro" | b"call" | b"filter" | b"block" | b"autoescape") => {
                self.statements += 1
            }
            Some(b"set") if !assigns => self.statements += 1,
            // The engine's loader serves any name as a template source, so an
            // include would compile text (possibly from a record) unchecked.
            Some(b"include" | b"import" | b"from" | b"extends") => {
                let message = "templates cannot include, import or extend other templates".to_owned();
                return Err(TooComplex { code: "invalid_template", ..self.refuse(self.block_start, message) });
            }
            Some(t) if t.starts_with(b"end") => self.statements = self.statements.saturating_sub(1),
            _ => {}
        }
        if self.statements > MAX_STATEMENT_DEPTH {
            return Err(self.refuse(
                self.block_start,
                format!("block statements nest more than {MAX_STATEMENT_DEPTH} deep here; flatten the template"),
            ));
        }
        Ok(())
    }
}

/// The identifier a `{% %}` block starts with (after its whitespace marker).
fn first_word(code: &[u8]) -> &[u8] {
    let lead = code.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let word = code[lead..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    &code[lead..lead + word]
}

/// minijinja's test for a bare tag (`raw`, `endraw`) after `{%` and its
/// whitespace marker: the length up to and including `%}`.
fn basic_tag(tag: &[u8], name: &[u8]) -> Option<usize> {
    let lead = tag.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let after = tag[lead..].strip_prefix(name)?;
    let ws = after.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let mut end = &after[ws..];
    if let Some(b'-' | b'+') = end.first() {
        end = &end[1..];
    }
    end.strip_prefix(b"%}".as_slice()).map(|tail| tag.len() - tail.len())
}

/// A numeric literal's magnitude, rounded up; anything that does not read as a
/// number counts as huge, as the estimate may only err on the safe side.
fn number_value(literal: &str) -> u128 {
    let radix = |prefix: &str, radix: u32| {
        let digits = literal.strip_prefix(prefix).or_else(|| literal.strip_prefix(&prefix.to_uppercase()))?;
        u128::from_str_radix(digits, radix).ok()
    };
    radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| literal.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v.abs().ceil() as u128))
        .unwrap_or(u128::MAX)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(link: &str, n: usize) -> String {
        format!("{{{{ x{} }}}}", link.repeat(n))
    }

    #[test]
    fn real_templates_pass() {
        for ok in [
            "{{ record.properties.email | lower | trim }}",
            "{{ record.a ~ ' ' ~ record.b ~ ' ' ~ record.c.d }}",
            "{% for i in record.items %}{{ i.sku }},{% endfor %}",
            "{{ '-' * 40 }}",
            "{{ (record.price * 100) | round ~ ' cents' }}",
            "{% raw %}{{ 1+1+1 }}{% endraw %} plain { text } with 'quotes",
            "{# a comment with {{ #}{{ record.x }}",
            "{{ {'a': [1, 2, {'b': record.c}]} | tojson }}",
        ] {
            assert_eq!(check_template(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_expression("record.status == 'active' and record.n > 5"), Ok(()));
        assert_eq!(check_expression("record.s == '}}' or record.m == {'a': {'b': 1}}"), Ok(()));
    }

    #[test]
    fn a_syntax_error_past_minijinjas_column_counter_is_refused_by_size_before_it_compiles() {
        // Found by the template_compile fuzz target: an unclosed comment at column 65,535.
        let long_line = format!("{}{{# unclosed", "x".repeat(65_524));
        assert_eq!(long_line.len(), 65_535);
        assert!(check_template(&long_line).is_err());
        let longest = format!("{}{{# unclosed", "x".repeat(MAX_TEMPLATE_BYTES - 11));
        assert!(check_template(&longest).is_ok());
        let env = minijinja::Environment::new();
        assert!(env.template_from_str(&longest).is_err(), "a syntax error, not a panic");
    }

    #[test]
    fn long_chains_of_every_kind_are_refused_with_their_position() {
        for link in ["+1", "|lower", ".a", " and x", " or x", "[0]", "(1)", " ~ x"] {
            let err = check_template(&chain(link, 10_000)).expect_err(link);
            assert_eq!(err.line, 1, "{link}");
            assert!(err.column > 3 && err.column < 3 + (MAX_EXPRESSION_DEPTH + 2) * link.len(), "{link}: {err}");
            assert!(check_template(&chain(link, MAX_EXPRESSION_DEPTH / 2)).is_ok(), "{link}");
        }
        assert!(check_expression(&"not ".repeat(10_000)).is_err());
        assert!(check_expression(&format!("{}x", "not ".repeat(MAX_PREFIX_RUN + 1))).is_err());
        assert!(check_expression(&format!("{}x", "(".repeat(MAX_BRACKET_DEPTH + 1))).is_err());
        assert!(check_template(&format!("{}x{}", "{{ ".to_owned() + &"(".repeat(500), ")".repeat(500))).is_err());
    }

    #[test]
    fn nesting_adds_up_across_brackets() {
        let inner = format!("({})", "x+".repeat(200) + "x");
        assert!(check_template(&format!("{{{{ {} }}}}", inner.clone() + &"+x".repeat(60))).is_err());
        // Siblings do not add up: each list item is its own tree.
        let items = vec!["x+".repeat(200) + "x"; 50].join(", ");
        assert!(check_template(&format!("{{{{ [{items}] }}}}")).is_ok());
        // Nor do the lookups of different operands: this is 199 operators over operands 2 deep.
        let csv = vec!["record.properties.a"; 100].join(" ~ ',' ~ ");
        assert!(check_template(&format!("{{{{ {csv} }}}}")).is_ok());
    }

    #[test]
    fn code_hidden_in_strings_and_open_brackets_is_still_seen() {
        // `}}` inside a string or an open bracket does not end the block for minijinja.
        assert!(check_template(&format!("{{{{ '}}}}' {} }}}}", "+1".repeat(1000))).is_err());
        assert!(check_template(&format!("{{{{ (x }}}} {} ) }}}}", "+1".repeat(1000))).is_err());
        assert!(check_template(&format!("line\n\n  {{% if {} %}}", "x and ".repeat(1000))).is_err_and(|e| e.line == 3));
    }

    #[test]
    fn constant_folding_is_bounded() {
        assert!(check_template("{{ 'x' * 100000000 }}").is_err());
        assert!(check_template("{{ 'x' * 2 ** 30 }}").is_err());
        assert!(check_template(&"{{ 'x' * 1000 }}".repeat(2000)).is_err());
        assert!(check_template("{{ record.n * 100000000 }}").is_ok());
    }

    /// The deepest templates the check accepts compile, render and drop on
    /// half the 2 MiB stack a tokio or rayon worker has, in a debug build, even
    /// inside as many nested statements as minijinja allows.
    #[test]
    fn deeply_nested_statements_are_refused() {
        let nested = |n: usize| format!("{}x{}", "{% for a in b %}".repeat(n), "{% endfor %}".repeat(n));
        assert!(check_template(&nested(MAX_STATEMENT_DEPTH)).is_ok());
        assert!(check_template(&nested(MAX_STATEMENT_DEPTH + 1)).is_err());
        assert!(check_template(&"{% set x %}".repeat(1000)).is_err());
        // Sequential blocks and assignments do not nest.
        assert!(check_template(&"{% if x %}y{% endif %}{% set a = 1 %}".repeat(1000)).is_ok());
    }

    /// Found by the template_compile fuzz target: minijinja's expression
    /// parser panics ("empty lexer stack") on `1 }} x`.
    #[test]
    fn expressions_that_close_a_block_are_refused_before_minijinja_panics_on_them() {
        for source in ["1 }}{% endraw %}{# c #}a{{ \u{6} |low}}", "record.x }} ", "x -}}y"] {
            let err = check_expression(source).expect_err(source);
            assert_eq!(err.code, "invalid_template", "{source}");
        }
    }

    #[test]
    fn templates_cannot_load_other_templates() {
        for source in
            ["{% include record.x %}", "{%- import 'a' as b %}", "{% from 'a' import b %}", "{% extends 'a' %}"]
        {
            assert_eq!(check_template(source).map_err(|e| e.code), Err("invalid_template"), "{source}");
        }
    }

    /// Found by the template_compile fuzz target: a recursive macro overflowed
    /// a 1 MiB stack before minijinja's default recursion limit stopped it.
    #[test]
    fn oversized_templates_are_refused() {
        assert!(check_template(&"a".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
    }
}
