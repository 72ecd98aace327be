//! Go's `fmt` printing of floats inside templates. Prometheus renders `{{ $value }}` with Go's
//! `%v` (`strconv.FormatFloat(v, 'g', -1, 64)`: shortest digits, exponent form below 1e-4 and
//! from 1e+06 up, `+Inf`/`-Inf`/`NaN`), while `gotmpl` prints a float with Rust's `Display`
//! (`1000000`, `0.00001`, `inf`). gotmpl has no printing hook, so after parsing we rewrite the
//! template trees: every printing action gets a hidden last command (`sxPrint`) that turns floats
//! into Go's text, and `printf`, `print` and `println` are replaced by versions that format
//! floats under `%v` the Go way and hand everything else to gotmpl unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode};
use gotmpl::{FuncMap, Template, TemplateError, Value, ValueFunc};

/// Name of the hidden function appended to printing actions.
pub const PRINT_FN: &str = "sxPrint";

/// Go's `%v` for a float64: `strconv.FormatFloat(v, 'g', -1, 64)` as `fmt` prints it.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Go's precision -1.
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.unsigned_abs())
    } else {
        // In this range Rust's Display is plain decimal with the same shortest digits.
        format!("{v}")
    }
}

/// True if printing `v` involves a float (directly or inside a list or map).
fn has_float(v: &Value) -> bool {
    match v {
        Value::Float(_) => true,
        Value::List(l) => l.iter().any(has_float),
        Value::Map(m) => m.values().any(has_float),
        _ => false,
    }
}

/// `v` printed with Go's `%v` (gotmpl's `Display`, but with Go's float format).
pub fn go_display(v: &Value) -> String {
    match v {
        Value::Float(f) => go_float(*f),
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(go_display).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_display(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

/// The value an action prints: floats become Go's text, anything else passes through unchanged
/// (so gotmpl's own rules for nil, strings and trusted HTML still apply).
fn print_value(args: &[Value]) -> gotmpl::Result<Value> {
    match args.last() {
        Some(v) if has_float(v) => Ok(Value::String(go_display(v).into())),
        Some(v) => Ok(v.clone()),
        None => Ok(Value::Nil),
    }
}

/// Go's `fmt.Sprint`: operands are separated by a space when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&go_display(a));
    }
    out
}

/// Go's `fmt.Sprintln`: operands always separated by spaces, newline appended.
fn go_sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(go_display).collect();
    format!("{}\n", parts.join(" "))
}

/// One `%` directive of a Go format string, as far as float rewriting needs it.
struct Directive {
    verb: char,
    zero: bool,
    precision: Option<usize>,
    /// Index of the operand the verb consumes.
    arg: usize,
}

/// Walks a Go format string the way `fmt` consumes operands. `None` when the string uses
/// explicit argument indexes (`%[2]v`), which we leave entirely to gotmpl.
fn directives(format: &str) -> Option<Vec<Directive>> {
    let mut out = Vec::new();
    let mut chars = format.chars().peekable();
    let mut arg = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut zero = false;
        while let Some(&f) = chars.peek() {
            match f {
                '0' => zero = true,
                '+' | '-' | '#' | ' ' => {}
                _ => break,
            }
            chars.next();
        }
        let star = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Option<bool> {
            match chars.peek() {
                Some('*') => {
                    chars.next();
                    Some(true)
                }
                Some('[') => None,
                _ => {
                    while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                        chars.next();
                    }
                    Some(false)
                }
            }
        };
        if star(&mut chars)? {
            arg += 1;
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            match chars.peek() {
                Some('*') => {
                    chars.next();
                    arg += 1;
                }
                Some('[') => return None,
                _ => {
                    let mut p = 0usize;
                    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        p = p.saturating_mul(10).saturating_add(d as usize);
                        chars.next();
                    }
                    precision = Some(p);
                }
            }
        }
        match chars.next() {
            Some('%') => {}
            Some('[') => return None,
            Some(verb) => {
                out.push(Directive {
                    verb,
                    zero,
                    precision,
                    arg,
                });
                arg += 1;
            }
            None => break,
        }
    }
    Some(out)
}

/// Go's `fmt.Sprintf`: floats under `%v` are pre-formatted the Go way (then printed as
/// strings, which pad the same), everything else goes to gotmpl's `printf`.
fn go_sprintf(args: &[Value]) -> gotmpl::Result<Value> {
    let Some(Value::String(format)) = args.first() else {
        return call_builtin_printf(args);
    };
    let mut operands: Vec<Value> = args[1..].to_vec();
    if let Some(dirs) = directives(format) {
        for d in dirs.iter().filter(|d| d.verb == 'v') {
            let Some(Value::Float(f)) = operands.get(d.arg) else {
                continue;
            };
            let f = *f;
            // Zero padding puts zeros after the sign for numbers; leave that case to gotmpl.
            if d.zero {
                continue;
            }
            // `%+v` is Go's struct-field flag: no sign is added to numbers.
            let text = match d.precision {
                Some(p) if f.is_finite() => crate::template::go_g(f, p.max(1)),
                _ => go_float(f),
            };
            operands[d.arg] = Value::String(text.into());
        }
    }
    let mut all = Vec::with_capacity(operands.len() + 1);
    all.push(args[0].clone());
    all.extend(operands);
    call_builtin_printf(&all)
}

/// gotmpl's own `printf` (not reachable as a function), run through a tiny template.
fn call_builtin_printf(args: &[Value]) -> gotmpl::Result<Value> {
    let mut src = String::from("{{printf");
    for i in 0..args.len() {
        src.push_str(&format!(" (index .A {i})"));
    }
    src.push_str("}}");
    let mut data = BTreeMap::new();
    data.insert(Arc::from("A"), Value::List(args.to_vec().into()));
    let out = Template::new("printf")
        .parse(&src)?
        .execute_to_string(&Value::Map(Arc::new(data)))?;
    Ok(Value::String(out.into()))
}

/// `sxPrint` and Go-float-aware `printf`, `print`, `println`, to register on a template.
pub fn go_printing_funcs() -> FuncMap {
    let mut m = FuncMap::new();
    m.insert(PRINT_FN.into(), Arc::new(print_value) as ValueFunc);
    m.insert("printf".into(), Arc::new(go_sprintf) as ValueFunc);
    m.insert(
        "print".into(),
        Arc::new(|a: &[Value]| Ok(Value::String(go_sprint(a).into()))) as ValueFunc,
    );
    m.insert(
        "println".into(),
        Arc::new(|a: &[Value]| Ok(Value::String(go_sprintln(a).into()))) as ValueFunc,
    );
    m
}

/// Registers [`go_printing_funcs`] on `t`.
pub fn with_go_printing(t: Template) -> Template {
    t.funcs(go_printing_funcs())
}

/// Appends `sxPrint` to every printing action in `list` (actions without a variable declaration).
pub fn rewrite_list(list: &mut ListNode) {
    for node in &mut list.nodes {
        rewrite_node(node);
    }
}

fn rewrite_node(node: &mut Node) {
    match node {
        Node::List(l) => rewrite_list(l),
        Node::Action(a) => append_print(&mut a.pipe),
        Node::If(b) | Node::Range(b) | Node::With(b) => {
            rewrite_list(&mut b.body);
            if let Some(e) = &mut b.else_body {
                rewrite_list(e);
            }
        }
        Node::Define(d) => rewrite_list(&mut d.body),
        Node::Text(_) | Node::Template(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

fn append_print(pipe: &mut PipeNode) {
    if !pipe.decl.is_empty() || pipe.commands.is_empty() {
        return;
    }
    // Already rewritten (trees are rewritten again after each later parse into the same set).
    if let Some(CommandNode { args, .. }) = pipe.commands.last() {
        if matches!(args.as_slice(), [Expr::Identifier(_, n)] if n == PRINT_FN) {
            return;
        }
    }
    let pos = pipe.pos;
    pipe.commands.push(CommandNode {
        pos,
        args: vec![Expr::Identifier(pos, PRINT_FN.into())],
    });
}

/// Rewrites every template tree of a parsed text template so floats print like Go (the
/// template must have been created with [`with_go_printing`]). Idempotent. The template must
/// have a name for its top level to be rewritten.
pub fn rewrite_template(mut t: Template) -> Template {
    let names: Vec<String> = t.templates().into_iter().map(String::from).collect();
    for name in names {
        if let Some(tree) = t.lookup(&name) {
            let mut tree = tree.clone();
            rewrite_list(&mut tree);
            t = t.add_parse_tree(&name, tree);
        }
    }
    // The tree `execute` runs is a copy of the entry under the template's own name; an empty
    // parse re-syncs it (unnamed templates have no such entry: their top level is not reached).
    if t.name().is_empty() {
        return t;
    }
    match t.clone().parse("") {
        Ok(synced) => synced,
        Err(_) => t,
    }
}

/// Parses `src` into `t` and applies the float rewrite.
pub fn parse(t: Template, src: &str) -> Result<Template, TemplateError> {
    Ok(rewrite_template(with_go_printing(t).parse(src)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_matches_go() {
        // fmt.Println outputs of Go 1.22 for each value.
        for (v, want) in [
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e21, "1e+21"),
            (123456789012.0, "1.23456789012e+11"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (999999.0, "999999"),
            (0.0, "0"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(go_float(v), want, "{v:e}");
        }
    }

    fn run(src: &str, value: f64) -> String {
        let mut m = BTreeMap::new();
        m.insert(Arc::from("V"), Value::Float(value));
        m.insert(Arc::from("S"), Value::String("s".into()));
        parse(Template::new("t"), src)
            .unwrap()
            .execute_to_string(&Value::Map(Arc::new(m)))
            .unwrap()
    }

    #[test]
    fn every_print_path_uses_go_floats() {
        assert_eq!(run("{{ .V }}", 1e6), "1e+06");
        assert_eq!(run("{{ $v := .V }}{{ $v }}", 1e-5), "1e-05");
        assert_eq!(
            run("{{ if .V }}{{ .V }}{{ else }}no{{ end }}", 1e21),
            "1e+21"
        );
        assert_eq!(run("{{ 1e6 }} {{ 1.5 }} {{ 3 }}", 0.0), "1e+06 1.5 3");
        assert_eq!(
            run("{{ printf \"%v|%7v|%+v|%-7v|\" .V .V .V .V }}", 1e6),
            "1e+06|  1e+06|1e+06|1e+06  |"
        );
        assert_eq!(
            run("{{ printf \"%.2f %v %s\" .V .V .S }}", 1234567.0),
            "1234567.00 1.234567e+06 s"
        );
        assert_eq!(run("{{ .V | printf \"%d-%v\" 3 }}", 1e-5), "3-1e-05");
        assert_eq!(run("{{ printf \"%.3v\" .V }}", 1234567.0), "1.23e+06");
        assert_eq!(
            run("{{ printf \"100%% %*d %v\" 3 7 .V }}", 1e-5),
            "100%   7 1e-05"
        );
        assert_eq!(run("{{ print .V .V .S .V }}", 1e6), "1e+06 1e+06s1e+06");
        assert_eq!(run("{{ println .V .S }}", 1e6), "1e+06 s\n");
        assert_eq!(
            run(
                "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .V }}",
                1e6
            ),
            "[1e+06]"
        );
        assert_eq!(run("{{ .S }}{{ .Missing }}", 0.0), "s<no value>");
    }
}
