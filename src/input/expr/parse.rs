//! The expression language's grammar (Druid's `Expr.g4`): tokens, operator
//! precedence, and each function checked and compiled once, with its
//! literal arguments (patterns, periods, units) resolved here.

use super::*;

/// Parse `source` into its tree, registering the fields it reads.
pub(super) fn parse(source: &str, fields: &mut FieldTable) -> Result<Node, String> {
    let tokens = tokenize(source)?;
    let mut p = Parser {
        tokens,
        at: 0,
        fields,
    };
    let root = p.expr(0)?;
    if p.at < p.tokens.len() {
        return Err(format!(
            "unexpected {} in expression {source:?}",
            p.tokens[p.at].describe()
        ));
    }
    Ok(root)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Long(i64),
    Double(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Long(v) => format!("number {v}"),
            Token::Double(v) => format!("number {v}"),
            Token::Str(s) => format!("string '{s}'"),
            Token::Ident(s) => format!("name {s}"),
            Token::Op(o) => format!("operator {o}"),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1
            }
            ')' => {
                out.push(Token::Close);
                i += 1
            }
            ',' => {
                out.push(Token::Comma);
                i += 1
            }
            '\'' | '"' => {
                let (text, next) = quoted(&chars, i, src)?;
                out.push(if c == '\'' {
                    Token::Str(text)
                } else {
                    Token::Ident(text)
                });
                i = next;
            }
            '0'..='9' => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let mut double = false;
                if i < chars.len() && chars[i] == '.' {
                    double = true;
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && matches!(chars[j], '-' | '+') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_digit() {
                        double = true;
                        i = j;
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let text: String = chars[start..i].iter().collect();
                out.push(if double {
                    Token::Double(text.parse().map_err(|_| format!("bad number {text}"))?)
                } else {
                    Token::Long(
                        text.parse()
                            .map_err(|_| format!("number {text} does not fit a long"))?,
                    )
                });
            }
            c if c == '_' || c == '$' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len()
                    && (chars[i] == '_' || chars[i] == '$' || chars[i].is_ascii_alphanumeric())
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["<=", ">=", "==", "!=", "&&", "||"]
                    .into_iter()
                    .find(|o| *o == two)
                    .or_else(|| {
                        ["-", "!", "^", "*", "/", "%", "+", "<", ">"]
                            .into_iter()
                            .find(|o| o.starts_with(c))
                    })
                    .ok_or_else(|| format!("unexpected character {c:?} in expression {src:?}"))?;
                out.push(Token::Op(op));
                i += op.len();
            }
        }
    }
    Ok(out)
}

/// A quoted string or identifier with Java escapes; returns the text and the
/// index after the closing quote.
fn quoted(chars: &[char], start: usize, src: &str) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((out, i + 1)),
            '\\' => {
                let e = *chars
                    .get(i + 1)
                    .ok_or_else(|| format!("unterminated string in {src:?}"))?;
                i += 2;
                out.push(match e {
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => {
                        let hex: String = chars.get(i..i + 4).unwrap_or(&[]).iter().collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 4)
                            .ok_or_else(|| format!("bad \\u escape in {src:?}"))?;
                        i += 4;
                        char::from_u32(code).unwrap_or('\u{FFFD}')
                    }
                    other => other,
                });
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(format!("unterminated quote in expression {src:?}"))
}

struct Parser<'f> {
    tokens: Vec<Token>,
    at: usize,
    fields: &'f mut FieldTable,
}

/// Binary operators by precedence (higher binds tighter), as in Expr.g4.
fn binary(op: &str) -> Option<(u8, bool)> {
    Some(match op {
        "||" => (1, false),
        "&&" => (2, false),
        "<" | "<=" | ">" | ">=" | "==" | "!=" => (3, false),
        "+" | "-" => (4, false),
        "*" | "/" | "%" => (5, false),
        "^" => (6, true),
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("the expression ends too early")?;
        self.at += 1;
        Ok(t)
    }

    fn expr(&mut self, min: u8) -> Result<Node, String> {
        let mut lhs = self.unary()?;
        while let Some(Token::Op(op)) = self.peek() {
            let op = *op;
            let Some((prec, right)) = binary(op) else {
                return Err(format!("unexpected operator {op}"));
            };
            if prec < min {
                break;
            }
            self.at += 1;
            let rhs = self.expr(if right { prec } else { prec + 1 })?;
            let (l, r) = (Box::new(lhs), Box::new(rhs));
            lhs = match op {
                "||" => Node::Or(l, r),
                "&&" => Node::And(l, r),
                _ => Node::Binary(
                    match op {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        "/" => BinOp::Div,
                        "%" => BinOp::Mod,
                        "^" => BinOp::Pow,
                        "<" => BinOp::Lt,
                        "<=" => BinOp::Le,
                        ">" => BinOp::Gt,
                        ">=" => BinOp::Ge,
                        "==" => BinOp::Eq,
                        _ => BinOp::Ne,
                    },
                    l,
                    r,
                ),
            };
        }
        Ok(lhs)
    }

    /// Prefix `-` and `!` bind tighter than every binary operator
    /// (`-2^2` is 4, as in Druid's grammar).
    fn unary(&mut self) -> Result<Node, String> {
        match self.next()? {
            Token::Op("-") => Ok(match self.unary()? {
                Node::Const(Eval::Long(v)) => Node::Const(Eval::Long(v.wrapping_neg())),
                Node::Const(Eval::Double(v)) => Node::Const(Eval::Double(-v)),
                other => Node::Neg(Box::new(other)),
            }),
            Token::Op("!") => Ok(Node::Not(Box::new(self.unary()?))),
            Token::Open => {
                let inner = self.expr(0)?;
                match self.next()? {
                    Token::Close => Ok(inner),
                    t => Err(format!("expected ')' but found {}", t.describe())),
                }
            }
            Token::Long(v) => Ok(Node::Const(Eval::Long(v))),
            Token::Double(v) => Ok(Node::Const(Eval::Double(v))),
            Token::Str(s) => Ok(Node::Const(Eval::Str(Cow::Owned(s)))),
            Token::Ident(name) if self.peek() == Some(&Token::Open) => {
                self.at += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.expr(0)?);
                        match self.next()? {
                            Token::Comma => {}
                            Token::Close => break,
                            t => {
                                return Err(format!(
                                    "expected ',' or ')' in the arguments of {name} but found {}",
                                    t.describe()
                                ));
                            }
                        }
                    }
                }
                function(&name, args)
            }
            Token::Ident(name) => Ok(match name.as_str() {
                "null" => Node::Const(Eval::Null),
                "NaN" => Node::Const(Eval::Double(f64::NAN)),
                "Infinity" => Node::Const(Eval::Double(f64::INFINITY)),
                "__time" => Node::Time,
                _ => Node::Field(self.fields.slot(&name)),
            }),
            t => Err(format!("unexpected {}", t.describe())),
        }
    }
}

/// A literal string argument (patterns, periods, units, time zones).
fn literal(args: &[Node], i: usize, fname: &str, what: &str) -> Result<Option<String>, String> {
    match args.get(i) {
        None | Some(Node::Const(Eval::Null)) => Ok(None),
        Some(Node::Const(Eval::Str(s))) => Ok(Some(s.to_string())),
        Some(_) => Err(format!("{fname}: the {what} must be a string literal")),
    }
}

fn utc_only(args: &[Node], i: usize, fname: &str) -> Result<(), String> {
    match literal(args, i, fname, "time zone")?.as_deref() {
        None | Some("UTC" | "Etc/UTC" | "Z" | "+00:00" | "GMT") => Ok(()),
        Some(tz) => Err(format!(
            "{fname}: time zone {tz:?} is not supported by this build yet (UTC only)"
        )),
    }
}

fn function(name: &str, mut args: Vec<Node>) -> Result<Node, String> {
    let lower = name.to_ascii_lowercase();
    let n = args.len();
    let arity = |ok: bool, want: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{lower} takes {want}, got {n}"))
        }
    };
    let func = match lower.as_str() {
        "concat" => Func::Concat,
        "like" => {
            arity((2..=3).contains(&n), "2 or 3 arguments")?;
            let pattern = literal(&args, 1, "like", "pattern")?
                .ok_or("like: the pattern must not be null")?;
            let escape = literal(&args, 2, "like", "escape")?;
            let escape = match escape.as_deref().map(|e| e.chars().collect::<Vec<_>>()) {
                None => None,
                Some(c) if c.len() == 1 => Some(c[0]),
                Some(_) => return Err("like: the escape must be one character".into()),
            };
            let regex = regex::Regex::new(&crate::input::filter::like_to_regex(&pattern, escape))
                .map_err(|e| format!("like: bad pattern: {e}"))?;
            args.truncate(1);
            Func::Like(regex)
        }
        "substring" => {
            arity(n == 3, "3 arguments")?;
            Func::Substring
        }
        "strlen" | "lower" | "upper" => {
            arity(n == 1, "1 argument")?;
            match lower.as_str() {
                "strlen" => Func::Strlen,
                "lower" => Func::Lower,
                _ => Func::Upper,
            }
        }
        "replace" => {
            arity(n == 3, "3 arguments")?;
            Func::Replace
        }
        "nvl" => {
            arity(n == 2, "2 arguments")?;
            Func::Nvl
        }
        "if" => {
            arity(n == 3, "3 arguments")?;
            Func::If
        }
        "case_searched" => {
            arity(n >= 2, "at least 2 arguments")?;
            Func::CaseSearched
        }
        "case_simple" => {
            arity(n >= 3, "at least 3 arguments")?;
            Func::CaseSimple
        }
        "cast" => {
            arity(n == 2, "2 arguments")?;
            let ty = literal(&args, 1, "cast", "type")?.unwrap_or_default();
            let ty = match ty.to_ascii_uppercase().as_str() {
                "LONG" => CastType::Long,
                "DOUBLE" => CastType::Double,
                "STRING" => CastType::String,
                other => {
                    return Err(format!(
                        "cast: type {other:?} is not supported (LONG, DOUBLE, STRING)"
                    ));
                }
            };
            args.truncate(1);
            Func::Cast(ty)
        }
        "timestamp_floor" => {
            arity((2..=4).contains(&n), "2 to 4 arguments")?;
            let period = literal(&args, 1, "timestamp_floor", "period")?
                .ok_or("timestamp_floor: the period must not be null")?;
            let origin = match args.get(2) {
                None | Some(Node::Const(Eval::Null)) => serde_json::Value::Null,
                Some(Node::Const(Eval::Str(s))) => serde_json::Value::from(s.to_string()),
                Some(Node::Const(Eval::Long(v))) => serde_json::Value::from(*v),
                Some(_) => return Err("timestamp_floor: the origin must be a literal".into()),
            };
            utc_only(&args, 3, "timestamp_floor")?;
            let gran = Granularity::from_json(&serde_json::json!({
                "type": "period", "period": period, "origin": origin
            }))
            .map_err(|e| format!("timestamp_floor: {e}"))?;
            args.truncate(1);
            Func::TimestampFloor(gran)
        }
        "timestamp_parse" | "timestamp_format" => {
            arity((1..=3).contains(&n), "1 to 3 arguments")?;
            let pattern = literal(&args, 1, &lower, "pattern")?
                .map(|p| JodaPattern::compile(&p))
                .transpose()
                .map_err(|e| format!("{lower}: {e}"))?;
            utc_only(&args, 2, &lower)?;
            args.truncate(1);
            if lower == "timestamp_parse" {
                Func::TimestampParse(pattern)
            } else {
                Func::TimestampFormat(pattern)
            }
        }
        "timestamp_extract" => {
            arity((2..=3).contains(&n), "2 or 3 arguments")?;
            let unit = literal(&args, 1, "timestamp_extract", "unit")?.unwrap_or_default();
            let unit = match unit.to_ascii_uppercase().as_str() {
                "EPOCH" => Unit::Epoch,
                "MICROSECOND" => Unit::Microsecond,
                "MILLISECOND" => Unit::Millisecond,
                "SECOND" => Unit::Second,
                "MINUTE" => Unit::Minute,
                "HOUR" => Unit::Hour,
                "DAY" => Unit::Day,
                "DOW" | "ISODOW" => Unit::Dow,
                "DOY" => Unit::Doy,
                "WEEK" => Unit::Week,
                "MONTH" => Unit::Month,
                "QUARTER" => Unit::Quarter,
                "YEAR" => Unit::Year,
                "ISOYEAR" => Unit::IsoYear,
                "DECADE" => Unit::Decade,
                "CENTURY" => Unit::Century,
                "MILLENNIUM" => Unit::Millennium,
                other => return Err(format!("timestamp_extract: unknown unit {other:?}")),
            };
            utc_only(&args, 2, "timestamp_extract")?;
            args.truncate(1);
            Func::TimestampExtract(unit)
        }
        _ => return Err(format!("unknown function {name}")),
    };
    Ok(Node::Call(func, args))
}
