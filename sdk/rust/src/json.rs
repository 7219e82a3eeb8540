//! A small JSON value type, parser and writer, so guests need no crates beyond std.
//!
//! ```
//! use lumen::json::{self, Value};
//! let v = json::parse(br#"{"a": 40, "b": [1, 2.5, "x"]}"#).unwrap();
//! assert_eq!(v.get("a").and_then(Value::as_i64), Some(40));
//! let out = Value::object().with("sum", 42).with("ok", true);
//! assert_eq!(out.to_string(), r#"{"sum":42,"ok":true}"#);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A JSON value. Objects keep their members in order; integers that fit an `i64` stay exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Default for Value {
    fn default() -> Self {
        Value::Null
    }
}

impl Value {
    /// An empty object, to fill with [`Value::with`].
    pub fn object() -> Value {
        Value::Object(Vec::new())
    }

    /// Returns the object with member `key` set to `v` (replacing an earlier one).
    pub fn with(mut self, key: &str, v: impl Into<Value>) -> Value {
        self.set(key, v);
        self
    }

    /// Sets member `key` of an object; does nothing to other values.
    pub fn set(&mut self, key: &str, v: impl Into<Value>) {
        if let Value::Object(members) = self {
            let v = v.into();
            match members.iter_mut().find(|(k, _)| k == key) {
                Some(m) => m.1 = v,
                None => members.push((key.to_string(), v)),
            }
        }
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Member `key` of an object decoded as a `T`, with an error naming the key.
    pub fn field<T: FromJson>(&self, key: &str) -> Result<T, String> {
        match self.get(key) {
            Some(v) => T::from_json(v).map_err(|e| format!("{key}: {e}")),
            None => T::from_json(&Value::Null).map_err(|_| format!("missing field \"{key}\"")),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an integer: an `Int`, or a `Float` with no fractional part that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && *f >= -9.2e18 && *f <= 9.2e18 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The JSON text, as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) if f.is_finite() => {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    out.push_str(&(*f as i64).to_string());
                } else {
                    out.push_str(&f.to_string());
                }
            }
            Value::Float(_) => out.push_str("null"),
            Value::Str(s) => write_string(out, s),
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes s as a quoted JSON string, escaping as Go's encoding/json does (so that outputs match
/// the Go SDK's byte for byte).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

/// Why a JSON text did not parse: what and the byte offset.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one JSON value, refusing trailing data. Nesting is limited to 128 levels.
pub fn parse(b: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { b, i: 0, depth: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != b.len() {
        return Err(p.err("trailing data after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn err(&self, m: &str) -> ParseError {
        ParseError { offset: self.i, message: m.to_string() }
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8], v: Value) -> Result<Value, ParseError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("unknown literal"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        if self.i >= self.b.len() {
            return Err(self.err("unexpected end"));
        }
        match self.b[self.i] {
            b'n' => self.lit(b"null", Value::Null),
            b't' => self.lit(b"true", Value::Bool(true)),
            b'f' => self.lit(b"false", Value::Bool(false)),
            b'"' => self.string().map(Value::Str),
            b'[' => {
                self.enter()?;
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(a));
                }
                loop {
                    self.ws();
                    a.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(Value::Array(a));
                        }
                        _ => return Err(self.err("want ',' or ']'")),
                    }
                }
            }
            b'{' => {
                self.enter()?;
                self.i += 1;
                let mut m: Vec<(String, Value)> = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(m));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("want a string key"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("want ':'"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value()?;
                    match m.iter_mut().find(|(x, _)| *x == k) {
                        Some(e) => e.1 = v,
                        None => m.push((k, v)),
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(Value::Object(m));
                        }
                        _ => return Err(self.err("want ',' or '}'")),
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("unexpected character")),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > 128 {
            return Err(self.err("nested too deeply"));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.i += 1;
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.err("bad number"))?;
        if !float {
            if let Ok(i) = s.parse::<i64>() {
                return Ok(Value::Int(i));
            }
        }
        s.parse::<f64>().map(Value::Float).map_err(|_| ParseError {
            offset: start,
            message: format!("bad number {s:?}"),
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        if self.i + 4 > self.b.len() {
            return Err(self.err("short \\u escape"));
        }
        let s = std::str::from_utf8(&self.b[self.i..self.i + 4]).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = match self.peek() {
                Some(c) => c,
                None => return Err(self.err("unterminated string")),
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.b[self.i..].starts_with(b"\\u") {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return Err(self.err("unknown escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"))
    }
}

/// Decoding from a [`Value`]: implemented for the std types a task takes; implement it for your
/// own types with [`Value::field`].
pub trait FromJson: Sized {
    fn from_json(v: &Value) -> Result<Self, String>;
}

/// Encoding into a [`Value`].
pub trait ToJson {
    fn to_json(&self) -> Value;
}

fn want<T>(what: &str, v: &Value) -> Result<T, String> {
    Err(format!("want {what}, got {v}"))
}

impl FromJson for Value {
    fn from_json(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}

impl ToJson for Value {
    fn to_json(&self) -> Value {
        self.clone()
    }
}

/// `()` takes any input (it is ignored) and gives `null`.
impl FromJson for () {
    fn from_json(_: &Value) -> Result<Self, String> {
        Ok(())
    }
}

impl ToJson for () {
    fn to_json(&self) -> Value {
        Value::Null
    }
}

impl FromJson for bool {
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_bool().map_or_else(|| want("a boolean", v), Ok)
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Value) -> Result<Self, String> {
                match v.as_i64() {
                    Some(i) => <$t>::try_from(i).map_err(|_| format!("{i} does not fit {}", stringify!($t))),
                    None => want("an integer", v),
                }
            }
        }
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
        impl From<$t> for Value {
            fn from(i: $t) -> Value {
                Value::Int(i as i64)
            }
        }
    )*};
}
ints!(i8, i16, i32, i64, u8, u16, u32, isize, usize);

impl FromJson for u64 {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19 => Ok(*f as u64),
            _ => want("a non-negative integer", v),
        }
    }
}

impl ToJson for u64 {
    fn to_json(&self) -> Value {
        match i64::try_from(*self) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(*self as f64),
        }
    }
}

impl FromJson for f64 {
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_f64().map_or_else(|| want("a number", v), Ok)
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Value {
        Value::Float(*self)
    }
}

impl FromJson for f32 {
    fn from_json(v: &Value) -> Result<Self, String> {
        f64::from_json(v).map(|f| f as f32)
    }
}

impl ToJson for f32 {
    fn to_json(&self) -> Value {
        Value::Float(*self as f64)
    }
}

impl FromJson for String {
    fn from_json(v: &Value) -> Result<Self, String> {
        v.as_str().map_or_else(|| want("a string", v), |s| Ok(s.to_string()))
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::Str(self.clone())
    }
}

impl ToJson for str {
    fn to_json(&self) -> Value {
        Value::Str(self.to_string())
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: &Value) -> Result<Self, String> {
        if v.is_null() {
            Ok(None)
        } else {
            T::from_json(v).map(Some)
        }
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_json)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Array(a) => a.iter().map(T::from_json).collect(),
            _ => want("an array", v),
        }
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(T::to_json).collect())
    }
}

impl<T: ToJson> ToJson for [T] {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(T::to_json).collect())
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| Ok((k.clone(), T::from_json(v)?))).collect(),
            _ => want("an object", v),
        }
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
}

impl<T: FromJson> FromJson for HashMap<String, T> {
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| Ok((k.clone(), T::from_json(v)?))).collect(),
            _ => want("an object", v),
        }
    }
}

impl<T: ToJson> ToJson for HashMap<String, T> {
    /// Members in key order, as Go's encoding/json writes maps.
    fn to_json(&self) -> Value {
        let mut m: Vec<(String, Value)> = self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(m)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(a: Vec<T>) -> Value {
        Value::Array(a.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let src = r#"{"a":1,"b":[true,false,null],"c":"x\"\\\n\u00e9\ud83d\ude00","d":-2.5,"e":{}}"#;
        let v = parse(src.as_bytes()).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(1)));
        assert_eq!(v.get("c").and_then(Value::as_str), Some("x\"\\\n\u{e9}\u{1F600}"));
        let again = parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(v, again);
    }

    #[test]
    fn refuses_bad_input() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "1 2", "\"\\x\"", "nul", "[[[[", "\"\u{1}\""] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn typed() {
        let v = parse(br#"{"n": 3, "s": "x", "l": [1, 2]}"#).unwrap();
        assert_eq!(v.field::<i32>("n"), Ok(3));
        assert_eq!(v.field::<Option<i32>>("missing"), Ok(None));
        assert!(v.field::<i32>("missing").is_err());
        assert_eq!(v.field::<Vec<u8>>("l"), Ok(vec![1, 2]));
        assert!(v.field::<u8>("s").is_err());
        assert_eq!(Value::from("<&>").to_string(), r#""\u003c\u0026\u003e""#);
    }
}
