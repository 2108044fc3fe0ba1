//! Kubernetes CRD `pattern`s are Go (RE2) regular expressions; JSON Schema `pattern`s are
//! ECMA-262, and the jsonschema crate rejects a schema whose patterns are not valid ECMA-262
//! (e.g. PrometheusRule's `^(?i)(abort|warn)?$`). [`to_ecma`] rewrites the RE2-only syntax into
//! equivalent ECMA-262 and copies everything else unchanged:
//! - inline flags `(?i)`, `(?s)`, `(?is)`, `(?-i)` and scoped `(?i:…)`: case-insensitive letters
//!   become classes (`a` → `[aA]`, `[a-f]` → `[a-fA-F]`), dot-all `.` becomes `[\s\S]`;
//! - `(?P<name>…)` → `(?<name>…)`; `\A` → `^`, `\z` → `$` (ECMA without the `m` flag);
//! - `\Q…\E` literals are escaped; POSIX classes `[[:alpha:]]` are expanded;
//! - `\a` → `\x07`, `\x{HHHH}` → `\uHHHH`, `\pL` → `\p{L}`.
//!
//! Flags ECMA cannot express inline (`m`, `U`) are an error: the caller keeps the pattern as is.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    insensitive: bool,
    dot_all: bool,
}

/// Rewrites a Go RE2 pattern into an equivalent ECMA-262 pattern.
pub fn to_ecma(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    // flags of each open group; the last one is in force
    let mut stack = vec![Flags::default()];
    let mut i = 0;
    while i < chars.len() {
        let flags = stack.last().copied().unwrap_or_default();
        match chars[i] {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("trailing backslash".into());
                };
                match next {
                    'A' => out.push('^'),
                    'z' => out.push('$'),
                    'Q' => {
                        i += 2;
                        while i < chars.len()
                            && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E'))
                        {
                            literal(&mut out, chars[i], flags.insensitive, true);
                            i += 1;
                        }
                        i += 2; // past \E (or the end)
                        continue;
                    }
                    _ => {
                        i = escape(&chars, i, &mut out)?;
                        continue;
                    }
                }
                i += 2;
            }
            '[' => i = class(&chars, i, flags.insensitive, &mut out)?,
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().take(2).collect();
                if rest.starts_with("P<") {
                    out.push_str("(?<");
                    stack.push(flags);
                    i += 4;
                } else if rest.starts_with(':')
                    || rest.starts_with('<')
                    || rest.starts_with('=')
                    || rest.starts_with('!')
                {
                    out.push_str("(?");
                    stack.push(flags);
                    i += 2;
                } else {
                    // flag group: (?flags) or (?flags:
                    let mut j = i + 2;
                    let mut set = flags;
                    let mut negate = false;
                    loop {
                        match chars.get(j) {
                            Some('i') => set.insensitive = !negate,
                            Some('s') => set.dot_all = !negate,
                            Some('-') if !negate => negate = true,
                            Some(')') => {
                                if let Some(top) = stack.last_mut() {
                                    *top = set;
                                }
                                break;
                            }
                            Some(':') => {
                                out.push_str("(?:");
                                stack.push(set);
                                break;
                            }
                            Some(c) => {
                                return Err(format!(
                                    "RE2 flag {c:?} has no ECMA-262 inline equivalent"
                                ))
                            }
                            None => return Err("unterminated flag group".into()),
                        }
                        j += 1;
                    }
                    i = j + 1;
                }
            }
            '(' => {
                out.push('(');
                stack.push(flags);
                i += 1;
            }
            ')' => {
                if stack.len() < 2 {
                    return Err("unbalanced ')'".into());
                }
                stack.pop();
                out.push(')');
                i += 1;
            }
            '.' if flags.dot_all => {
                out.push_str(r"[\s\S]");
                i += 1;
            }
            '{' => {
                // a repetition {n}, {n,}, {n,m} is copied whole (it has no letters to fold)
                let end = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                match end {
                    Some(end)
                        if chars.get(i + 1).is_some_and(char::is_ascii_digit)
                            && chars[i + 1..end]
                                .iter()
                                .all(|c| c.is_ascii_digit() || *c == ',') =>
                    {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                    }
                    _ => {
                        out.push_str(r"\{");
                        i += 1;
                    }
                }
            }
            c => {
                literal(&mut out, c, flags.insensitive, false);
                i += 1;
            }
        }
    }
    if stack.len() != 1 {
        return Err("unbalanced '('".into());
    }
    Ok(out)
}

/// The other case of a letter that has exactly one.
fn other_case(c: char) -> Option<char> {
    let mut lower = c.to_lowercase();
    let mut upper = c.to_uppercase();
    let (l, u) = (lower.next()?, upper.next()?);
    if lower.next().is_some() || upper.next().is_some() {
        return None;
    }
    match (l == c, u == c) {
        (true, false) => Some(u),
        (false, true) => Some(l),
        _ => None,
    }
}

/// Appends one literal character; `quote`: inside `\Q…\E`, where every character is literal.
/// A lone `]` or `}` is a literal in RE2 but must be escaped in ECMA-262 (unicode mode).
fn literal(out: &mut String, c: char, insensitive: bool, quote: bool) {
    match other_case(c).filter(|_| insensitive) {
        Some(o) => {
            let _ = write!(out, "[{c}{o}]");
        }
        None if c == ']' || c == '}' || (quote && r"\^$.|?*+()[]{}/".contains(c)) => {
            out.push('\\');
            out.push(c);
        }
        None => out.push(c),
    }
}

/// Copies or rewrites the escape at `chars[i]` (a backslash); returns the index after it.
fn escape(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let next = chars[i + 1];
    match next {
        'a' => out.push_str(r"\x07"),
        'x' if chars.get(i + 2) == Some(&'{') => {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '}')
                .map(|p| i + p)
                .ok_or("unterminated \\x{")?;
            let hex: String = chars[i + 3..end].iter().collect();
            let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad \\x{{{hex}}}"))?;
            if code > 0xFFFF {
                return Err(format!("\\x{{{hex}}} is outside the BMP"));
            }
            let _ = write!(out, "\\u{code:04X}");
            return Ok(end + 1);
        }
        'p' | 'P' if chars.get(i + 2).is_some_and(|c| *c != '{') => {
            let _ = write!(out, "\\{next}{{{}}}", chars[i + 2]);
            return Ok(i + 3);
        }
        'p' | 'P' => {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '}')
                .map(|p| i + p)
                .ok_or("unterminated \\p{")?;
            out.extend(&chars[i..=end]);
            return Ok(end + 1);
        }
        c => {
            out.push('\\');
            out.push(c);
        }
    }
    Ok(i + 2)
}

/// The ranges of a POSIX class name, ECMA class syntax.
fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "alnum" => "0-9A-Za-z",
        "alpha" => "A-Za-z",
        "ascii" => r"\x00-\x7F",
        "blank" => r"\t ",
        "cntrl" => r"\x00-\x1F\x7F",
        "digit" => "0-9",
        "graph" => r"!-~",
        "lower" => "a-z",
        "print" => r" -~",
        "punct" => r"!-\/:-@\[-`{-~",
        "space" => r"\t\n\v\f\r ",
        "upper" => "A-Z",
        "word" => "0-9A-Za-z_",
        "xdigit" => "0-9A-Fa-f",
        _ => return None,
    })
}

/// Copies the character class starting at `chars[i]` (`[`); returns the index after it.
fn class(chars: &[char], i: usize, insensitive: bool, out: &mut String) -> Result<usize, String> {
    let mut j = i + 1;
    out.push('[');
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    let mut extra = String::new(); // other-case letters and ranges, appended at the end
    loop {
        let Some(&c) = chars.get(j) else {
            return Err("unterminated character class".into());
        };
        match c {
            ']' if !first => {
                out.push_str(&extra);
                out.push(']');
                return Ok(j + 1);
            }
            ']' => {
                out.push_str(r"\]");
                j += 1;
            }
            '[' if chars.get(j + 1) == Some(&':') => {
                let end = chars[j + 2..]
                    .windows(2)
                    .position(|w| w == [':', ']'])
                    .map(|p| j + 2 + p)
                    .ok_or("unterminated POSIX class")?;
                let name: String = chars[j + 2..end].iter().collect();
                let (negated, name) = match name.strip_prefix('^') {
                    Some(n) => (true, n.to_string()),
                    None => (false, name),
                };
                let ranges =
                    posix_class(&name).ok_or_else(|| format!("unknown POSIX class {name}"))?;
                if negated {
                    return Err("negated POSIX classes are not supported".into());
                }
                out.push_str(ranges);
                j = end + 2;
            }
            '\\' => {
                if chars.get(j + 1).is_none() {
                    return Err("trailing backslash".into());
                }
                j = escape(chars, j, out)?;
            }
            c => {
                // a range c-d (not c-] and not c-\)
                let range_end = match (chars.get(j + 1), chars.get(j + 2)) {
                    (Some('-'), Some(&d)) if d != ']' && d != '\\' && d != '[' => Some(d),
                    _ => None,
                };
                if let Some(d) = range_end {
                    out.push(c);
                    out.push('-');
                    out.push(d);
                    if insensitive {
                        if let (Some(oc), Some(od)) = (other_case(c), other_case(d)) {
                            if oc.is_ascii_alphabetic() && od.is_ascii_alphabetic() && oc <= od {
                                let _ = write!(extra, "{oc}-{od}");
                            }
                        }
                    }
                    j += 3;
                } else {
                    out.push(c);
                    if insensitive {
                        if let Some(o) = other_case(c) {
                            extra.push(o);
                        }
                    }
                    j += 1;
                }
            }
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(go: &str) -> jsonschema::Validator {
        let ecma = to_ecma(go).unwrap();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&json!({"type": "string", "pattern": ecma}))
            .unwrap_or_else(|e| panic!("{go} -> {ecma}: {e}"))
    }

    #[test]
    fn case_insensitive_flag() {
        let m = matcher("^(?i)(abort|warn)?$");
        for ok in ["", "abort", "ABORT", "Warn", "wArN"] {
            assert!(m.is_valid(&json!(ok)), "{ok}");
        }
        for bad in ["x", "abortx", "warning", " abort"] {
            assert!(!m.is_valid(&json!(bad)), "{bad}");
        }
        let m = matcher("^(?i:ab)c[x-z]$");
        assert!(m.is_valid(&json!("ABcy")));
        assert!(!m.is_valid(&json!("ABCy")));
        let m = matcher("^(?i)[a-c_]+(?-i)d$");
        assert!(m.is_valid(&json!("aB_cd")));
        assert!(!m.is_valid(&json!("aB_cD")));
    }

    #[test]
    fn other_re2_syntax() {
        let m = matcher(r"\A(?P<n>[[:digit:]]+)\.\Q*+\E(?s:.)\z");
        assert!(m.is_valid(&json!("12.*+\n")));
        assert!(!m.is_valid(&json!("12.*+\nx")));
        assert!(!m.is_valid(&json!("1a.*+x")));
        assert!(to_ecma("(?m)^a$").is_err());
        assert!(to_ecma("(a").is_err());
    }

    #[test]
    fn ecma_compatible_patterns_are_copied_unchanged() {
        for p in [
            r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?)$",
            r"^(?:[^ \t\r\n;{}#$]+|\$\w+)+$",
            r"^(?:http?:\/\/)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(?::\d{1,5})?$",
            r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
            r"^/[^/]*\.[a-z]{2,}$",
        ] {
            assert_eq!(to_ecma(p).unwrap(), p);
        }
    }
}
