//! String functions: `startsWith`, `substring`, `matches`, `split`, `encode`, ...

use super::super::ast::Expr;
use super::super::eval::{single, Coll, Env, Evaluator};
use super::super::value::Node;
use super::super::Error;
use super::{arity, boolean};

impl<'a> Evaluator<'a> {
    pub(super) fn string_fn(
        &self,
        name: &str,
        input: Coll<'a>,
        args: &[Expr],
        env: &Env<'a>,
    ) -> Result<Coll<'a>, Error> {
        let Some(item) = single(&input)? else {
            return Ok(vec![]);
        };
        let s = match item.to_system() {
            Some(Node::Str(s)) => s,
            _ => return Err(Error::semantic(format!("{name}() on a non-string"))),
        };
        let one = |max: usize| arity(name, args, 1.min(max), max);
        let sarg = |i: usize| self.str_arg(args, i, &input, env);
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(vec![]),
                }
            };
        }
        let chars: Vec<char> = s.chars().collect();
        Ok(match name {
            "startsWith" => {
                one(1)?;
                boolean(s.starts_with(&need!(sarg(0)?)))
            }
            "endsWith" => {
                one(1)?;
                boolean(s.ends_with(&need!(sarg(0)?)))
            }
            "contains" => {
                one(1)?;
                boolean(s.contains(&need!(sarg(0)?)))
            }
            "indexOf" => {
                one(1)?;
                let sub = need!(sarg(0)?);
                let idx = s
                    .find(&sub)
                    .map(|b| s[..b].chars().count() as i64)
                    .unwrap_or(-1);
                vec![Node::Int(idx)]
            }
            "matches" | "matchesFull" => {
                one(1)?;
                let re = regex(&need!(sarg(0)?), name == "matchesFull")?;
                boolean(re.is_match(&s))
            }
            "replaceMatches" => {
                arity(name, args, 2, 2)?;
                let pat = need!(sarg(0)?);
                let with = need!(sarg(1)?);
                if pat.is_empty() {
                    return Ok(vec![Node::Str(s)]);
                }
                let re = regex(&pat, false)?;
                vec![Node::Str(re.replace_all(&s, with.as_str()).into_owned())]
            }
            "replace" => {
                arity(name, args, 2, 2)?;
                let pat = need!(sarg(0)?);
                let with = need!(sarg(1)?);
                let r = if pat.is_empty() {
                    let mut r = with.clone();
                    for c in s.chars() {
                        r.push(c);
                        r.push_str(&with);
                    }
                    r
                } else {
                    s.replace(&pat, &with)
                };
                vec![Node::Str(r)]
            }
            "substring" => {
                arity(name, args, 1, 2)?;
                let start = need!(self.int_arg(args, 0, &input, env)?);
                if start < 0 || start as usize >= chars.len() {
                    return Ok(vec![]);
                }
                let len = if args.len() == 2 {
                    need!(self.int_arg(args, 1, &input, env)?).max(0) as usize
                } else {
                    chars.len()
                };
                vec![Node::Str(
                    chars.iter().skip(start as usize).take(len).collect(),
                )]
            }
            "upper" => vec![Node::Str(s.to_uppercase())],
            "lower" => vec![Node::Str(s.to_lowercase())],
            "length" => vec![Node::Int(chars.len() as i64)],
            "toChars" => chars.iter().map(|c| Node::Str(c.to_string())).collect(),
            "trim" => vec![Node::Str(s.trim().to_string())],
            "split" => {
                one(1)?;
                let sep = need!(sarg(0)?);
                s.split(sep.as_str())
                    .map(|p| Node::Str(p.to_string()))
                    .collect()
            }
            "encode" | "decode" => {
                one(1)?;
                let enc = need!(sarg(0)?);
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD;
                let url = base64::engine::general_purpose::URL_SAFE;
                let out = match (name, enc.as_str()) {
                    ("encode", "base64") => Some(b64.encode(s.as_bytes())),
                    ("encode", "urlbase64") => Some(url.encode(s.as_bytes())),
                    ("encode", "hex") => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
                    ("decode", "base64") => {
                        b64.decode(&s).ok().and_then(|b| String::from_utf8(b).ok())
                    }
                    ("decode", "urlbase64") => {
                        url.decode(&s).ok().and_then(|b| String::from_utf8(b).ok())
                    }
                    ("decode", "hex") => (0..s.len())
                        .step_by(2)
                        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                        .collect::<Option<Vec<u8>>>()
                        .and_then(|b| String::from_utf8(b).ok()),
                    _ => None,
                };
                out.map(Node::Str).into_iter().collect()
            }
            "escape" | "unescape" => {
                one(1)?;
                let kind = need!(sarg(0)?);
                let out = match (name, kind.as_str()) {
                    ("escape", "html") => s
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&quot;"),
                    ("unescape", "html") => s
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&amp;", "&"),
                    ("escape", "json") => s.replace('\\', "\\\\").replace('"', "\\\""),
                    ("unescape", "json") => s.replace("\\\"", "\"").replace("\\\\", "\\"),
                    _ => return Ok(vec![]),
                };
                vec![Node::Str(out)]
            }
            _ => vec![],
        })
    }
}

fn regex(pat: &str, whole: bool) -> Result<regex::Regex, Error> {
    let p = if whole {
        format!("^(?s:{pat})$")
    } else {
        format!("(?s){pat}")
    };
    regex::Regex::new(&p).map_err(|e| Error::exec(format!("bad regular expression: {e}")))
}
