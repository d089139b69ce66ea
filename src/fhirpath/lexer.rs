//! FHIRPath tokens (http://hl7.org/fhirpath/N1/#grammar): identifiers,
//! literals, operators, with `//` and `/* */` comments skipped.

use super::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A plain identifier (keywords such as `and` or `true` included).
    Ident(String),
    /// A `` `delimited` `` identifier: never a keyword.
    Delimited(String),
    /// `'string'`, escapes resolved.
    Str(String),
    /// A number's literal text.
    Num(String),
    /// `@2014-01-01T10:00`, without the `@`.
    DateTime(String),
    /// `@T10:00`, without the `@T`.
    Time(String),
    /// `%name`, `%'name'` or `` %`name` ``.
    Env(String),
    /// `$this`, `$index`, `$total`.
    Dollar(String),
    /// An operator or punctuation.
    Op(&'static str),
}

const OPS: [&str; 20] = [
    "<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "|", "&",
    "=", "~",
];

/// Splits an expression into tokens.
pub fn lex(src: &str) -> Result<Vec<Tok>, Error> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err(Error::syntax("unterminated comment"));
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            // A long-integer suffix (`10L`) is read as a plain integer.
            if chars.get(i) == Some(&'L') {
                out.push(Tok::Num(chars[start..i].iter().collect()));
                i += 1;
                continue;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
            continue;
        }
        match c {
            '\'' => {
                let (s, n) = quoted(&chars, i, '\'')?;
                out.push(Tok::Str(s));
                i = n;
            }
            '`' => {
                let (s, n) = quoted(&chars, i, '`')?;
                out.push(Tok::Delimited(s));
                i = n;
            }
            '%' => {
                i += 1;
                match chars.get(i) {
                    Some('\'') | Some('`') => {
                        let (s, n) = quoted(&chars, i, chars[i])?;
                        out.push(Tok::Env(s));
                        i = n;
                    }
                    _ => {
                        let start = i;
                        while i < chars.len()
                            && (chars[i].is_ascii_alphanumeric()
                                || chars[i] == '_'
                                || chars[i] == '-')
                        {
                            i += 1;
                        }
                        if start == i {
                            return Err(Error::syntax("a name must follow %"));
                        }
                        out.push(Tok::Env(chars[start..i].iter().collect()));
                    }
                }
            }
            '$' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                out.push(Tok::Dollar(chars[start..i].iter().collect()));
            }
            '@' => {
                i += 1;
                if chars.get(i) == Some(&'T') {
                    i += 1;
                    let start = i;
                    while i < chars.len() && is_time_char(chars[i]) && !dot_end(&chars, i) {
                        i += 1;
                    }
                    out.push(Tok::Time(chars[start..i].iter().collect()));
                } else {
                    let start = i;
                    while i < chars.len()
                        && (is_time_char(chars[i]) || matches!(chars[i], '-' | 'T' | 'Z' | '+'))
                        && !dot_end(&chars, i)
                    {
                        i += 1;
                    }
                    out.push(Tok::DateTime(chars[start..i].iter().collect()));
                }
            }
            '<' | '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op(if c == '<' { "<=" } else { ">=" }));
                    i += 2;
                } else {
                    out.push(Tok::Op(if c == '<' { "<" } else { ">" }));
                    i += 1;
                }
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
                match OPS.iter().find(|op| rest.starts_with(**op)) {
                    Some(op) => {
                        out.push(Tok::Op(op));
                        i += op.chars().count();
                    }
                    None => return Err(Error::syntax(format!("unexpected character '{c}'"))),
                }
            }
        }
    }
    Ok(out)
}

/// A `.` not followed by a digit ends a date/time literal (`@2015.is(Date)`).
fn dot_end(chars: &[char], i: usize) -> bool {
    chars[i] == '.' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
}

fn is_time_char(c: char) -> bool {
    c.is_ascii_digit() || c == ':' || c == '.'
}

/// Reads a quoted string starting at `chars[start]` (the quote); returns the
/// unescaped text and the index after the closing quote.
fn quoted(chars: &[char], start: usize, quote: char) -> Result<(String, usize), Error> {
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' {
            i += 1;
            let e = *chars
                .get(i)
                .ok_or_else(|| Error::syntax("unterminated string"))?;
            match e {
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'f' => s.push('\u{c}'),
                'u' => {
                    let hex: String = chars.get(i + 1..i + 5).unwrap_or(&[]).iter().collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| Error::syntax("bad \\u escape"))?;
                    s.push(code);
                    i += 4;
                }
                other => s.push(other),
            }
            i += 1;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(Error::syntax("unterminated string"))
}
