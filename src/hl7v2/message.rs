//! HL7 v2 ER7 ("pipe and hat") parsing: a message as segments of fields,
//! each field a list of repetitions of components of subcomponents.
//!
//! Values keep their escape sequences until read: `Rep::comp` and friends
//! decode `\F\ \S\ \T\ \R\ \E\`, `\Xhh…\` (bytes in the message's character
//! set) and `\.br\` (a line break); other formatting escapes (`\H\`, `\N\`,
//! `\.sp\`, ...) are dropped. Segments may end with `\r`, `\n` or `\r\n`.
//! Z-segments are kept like any other and simply not read by the mappers.
//!
//! This is a small parser of our own rather than the `hl7-parser` crate: the
//! mappers need only positional access with decoding in the message's
//! character set (MSH-18), which this gives in a few hundred lines with no
//! dependency to build, and it decodes the wire bytes itself (Latin-1 or
//! UTF-8) before splitting, which a `&str` parser cannot do.

use std::fmt;

/// Why a message could not be parsed (answered with `AR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The encoding characters of a message (MSH-1 and MSH-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: Option<char>,
    pub subcomponent: char,
}

impl Default for Separators {
    fn default() -> Self {
        Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: Some('\\'),
            subcomponent: '&',
        }
    }
}

impl Separators {
    /// MSH-2 as written in a message.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::new();
        s.push(self.component);
        s.push(self.repetition);
        if let Some(e) = self.escape {
            s.push(e);
        }
        s.push(self.subcomponent);
        s
    }

    /// Escapes text for use as a value in a message with these separators.
    pub fn escape(&self, text: &str) -> String {
        let Some(esc) = self.escape else {
            return text.to_string();
        };
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let code = if c == self.field {
                Some('F')
            } else if c == self.component {
                Some('S')
            } else if c == self.subcomponent {
                Some('T')
            } else if c == self.repetition {
                Some('R')
            } else if c == esc {
                Some('E')
            } else {
                None
            };
            match code {
                Some(code) => {
                    out.push(esc);
                    out.push(code);
                    out.push(esc);
                }
                None if c == '\r' || c == '\n' => {
                    out.push(esc);
                    out.push_str(".br");
                    out.push(esc);
                }
                None => out.push(c),
            }
        }
        out
    }
}

/// The character set of a message (MSH-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// ASCII or `UNICODE UTF-8` (and the default when MSH-18 is empty; bytes
    /// that are not UTF-8 are then read as Latin-1).
    Utf8,
    /// `8859/1`.
    Latin1,
}

/// A parsed message.
#[derive(Debug, Clone)]
pub struct Message {
    pub separators: Separators,
    pub charset: Charset,
    pub segments: Vec<Segment>,
}

/// One segment: `fields[0]` is the name; `fields[n]` is field n (for MSH,
/// `fields[1]` is the field separator and `fields[2]` the encoding
/// characters, so numbering matches the standard's MSH-n).
#[derive(Debug, Clone)]
pub struct Segment {
    pub fields: Vec<String>,
}

/// A field, a repetition, a component or a subcomponent, still escaped.
#[derive(Debug, Clone, Copy)]
pub struct Rep<'a> {
    raw: &'a str,
    seps: &'a Separators,
    charset: Charset,
}

/// Reads the character set named by MSH-18 from the raw bytes (before the
/// text can be decoded).
fn sniff_charset(bytes: &[u8]) -> Result<Charset, ParseError> {
    // MSH-18 is ASCII; read the first segment byte-wise.
    let end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(bytes.len());
    let first = &bytes[..end];
    if first.len() < 4 {
        return Ok(Charset::Utf8);
    }
    let sep = first[3];
    let field = first.split(|b| *b == sep).nth(17).unwrap_or(b"");
    let first_rep = field
        .split(|b| first.get(5) == Some(b))
        .next()
        .unwrap_or(b"");
    let name = String::from_utf8_lossy(first_rep)
        .trim()
        .to_ascii_uppercase();
    match name.as_str() {
        "" | "ASCII" | "UNICODE UTF-8" | "UNICODE" | "UTF-8" => Ok(Charset::Utf8),
        "8859/1" | "ISO-8859-1" | "8859/15" => Ok(Charset::Latin1),
        other => Err(ParseError(format!(
            "character set `{other}` (MSH-18) is not supported; use UNICODE UTF-8, ASCII or 8859/1"
        ))),
    }
}

fn decode_text(bytes: &[u8], charset: Charset) -> String {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.iter().map(|b| *b as char).collect(),
        },
        Charset::Latin1 => bytes.iter().map(|b| *b as char).collect(),
    }
}

impl Message {
    /// Parses a message from the bytes of one frame.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let charset = sniff_charset(bytes)?;
        let text = decode_text(bytes, charset);
        let text = text.trim_start_matches(['\r', '\n', ' ', '\t']);
        if !text.starts_with("MSH") {
            return Err(ParseError("the message does not start with MSH".into()));
        }
        let mut chars = text[3..].chars();
        let field = chars
            .next()
            .ok_or_else(|| ParseError("MSH ends before MSH-1".into()))?;
        let enc: Vec<char> = chars.take_while(|c| *c != field).collect();
        if enc.len() < 2
            || enc
                .iter()
                .any(|c| c.is_alphanumeric() || *c == '\r' || *c == '\n')
        {
            return Err(ParseError(
                "MSH-2 must hold the encoding characters (e.g. ^~\\&)".into(),
            ));
        }
        // MSH-2 is component, repetition, escape, subcomponent; the escape
        // character may be absent in a 2-character MSH-2 only if the
        // subcomponent one is too (then `&` is kept as the default).
        let separators = Separators {
            field,
            component: enc[0],
            repetition: enc[1],
            escape: enc.get(2).copied(),
            subcomponent: enc.get(3).copied().unwrap_or('&'),
        };
        let mut segments = Vec::new();
        for line in text.split(['\r', '\n']) {
            if line.trim().is_empty() {
                continue;
            }
            let mut fields: Vec<String> = Vec::new();
            if line.starts_with("MSH") || line.starts_with("BHS") || line.starts_with("FHS") {
                let rest = &line[3..];
                let rest = rest.strip_prefix(field).unwrap_or(rest);
                fields.push(line[..3].to_string());
                fields.push(field.to_string());
                let mut parts = rest.split(field);
                fields.push(parts.next().unwrap_or_default().to_string());
                fields.extend(parts.map(str::to_string));
            } else {
                fields.extend(line.split(field).map(str::to_string));
            }
            let name = &fields[0];
            if name.len() != 3
                || !name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Err(ParseError(format!(
                    "segment {} has no valid segment name",
                    segments.len() + 1
                )));
            }
            segments.push(Segment { fields });
        }
        let message = Message {
            separators,
            charset,
            segments,
        };
        if message.msh().get(9).comp(1).is_empty() {
            return Err(ParseError("MSH-9 (message type) is empty".into()));
        }
        Ok(message)
    }

    /// The MSH segment (always the first).
    pub fn msh(&self) -> SegmentRef<'_> {
        self.segment_ref(&self.segments[0])
    }

    pub fn segment_ref<'a>(&'a self, segment: &'a Segment) -> SegmentRef<'a> {
        SegmentRef {
            segment,
            message: self,
        }
    }

    /// The first segment with this name.
    pub fn first(&self, name: &str) -> Option<SegmentRef<'_>> {
        self.segments
            .iter()
            .find(|s| s.fields[0] == name)
            .map(|s| self.segment_ref(s))
    }

    /// Every segment with this name, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = SegmentRef<'a>> + 'a {
        self.segments
            .iter()
            .filter(move |s| s.fields[0] == name)
            .map(move |s| self.segment_ref(s))
    }

    /// Every segment in order.
    pub fn iter(&self) -> impl Iterator<Item = SegmentRef<'_>> + '_ {
        self.segments.iter().map(move |s| self.segment_ref(s))
    }

    /// MSH-9.1, MSH-9.2 and MSH-9.3 (message code, trigger, structure).
    pub fn message_type(&self) -> (String, String, String) {
        let t = self.msh().get(9);
        (t.comp(1), t.comp(2), t.comp(3))
    }

    /// MSH-10.
    pub fn control_id(&self) -> String {
        self.msh().get(10).text()
    }

    /// MSH-11: processing id (table 0103) and processing mode (table 0207).
    pub fn processing(&self) -> (String, String) {
        let p = self.msh().get(11);
        (p.comp(1), p.comp(2))
    }

    /// MSH-12.1.
    pub fn version(&self) -> String {
        self.msh().get(12).comp(1)
    }
}

/// A segment in its message (for decoding).
#[derive(Debug, Clone, Copy)]
pub struct SegmentRef<'a> {
    pub segment: &'a Segment,
    message: &'a Message,
}

impl<'a> SegmentRef<'a> {
    pub fn name(&self) -> &'a str {
        &self.segment.fields[0]
    }

    /// Field `n` as a whole (all repetitions), still escaped.
    pub fn raw(&self, n: usize) -> &'a str {
        self.segment.fields.get(n).map_or("", String::as_str)
    }

    /// Field `n`: its first repetition (MSH-1 and MSH-2 are returned whole).
    pub fn get(&self, n: usize) -> Rep<'a> {
        let raw = self.raw(n);
        let raw = if self.name() == "MSH" && n <= 2 {
            raw
        } else {
            raw.split(self.message.separators.repetition)
                .next()
                .unwrap_or("")
        };
        self.rep(raw)
    }

    /// Every non-empty repetition of field `n`.
    pub fn reps(&self, n: usize) -> Vec<Rep<'a>> {
        let raw = self.raw(n);
        if raw.is_empty() {
            return Vec::new();
        }
        raw.split(self.message.separators.repetition)
            .filter(|r| !r.is_empty() && *r != "\"\"")
            .map(|r| self.rep(r))
            .collect()
    }

    fn rep(&self, raw: &'a str) -> Rep<'a> {
        Rep {
            raw,
            seps: &self.message.separators,
            charset: self.message.charset,
        }
    }
}

impl<'a> Rep<'a> {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty() || self.raw == "\"\""
    }

    /// The raw (escaped) text.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The whole value decoded (components and subcomponents kept with
    /// their separators; for text types such as ST, TX, FT).
    pub fn text(&self) -> String {
        decode(self.raw, self.seps, self.charset)
    }

    /// Component `n` (1-based) as its own value, still escaped.
    pub fn part(&self, n: usize) -> Rep<'a> {
        let raw = self.raw.split(self.seps.component).nth(n - 1).unwrap_or("");
        Rep { raw, ..*self }
    }

    /// Subcomponent `n` (1-based) of this value.
    pub fn sub_part(&self, n: usize) -> Rep<'a> {
        let raw = self
            .raw
            .split(self.seps.subcomponent)
            .nth(n - 1)
            .unwrap_or("");
        Rep { raw, ..*self }
    }

    /// Component `n`, its first subcomponent, decoded and trimmed.
    pub fn comp(&self, n: usize) -> String {
        let c = self.part(n);
        let first = c.raw.split(self.seps.subcomponent).next().unwrap_or("");
        if first == "\"\"" {
            return String::new();
        }
        decode(first, self.seps, self.charset).trim().to_string()
    }

    /// Component `c`, subcomponent `s`, decoded and trimmed.
    pub fn sub(&self, c: usize, s: usize) -> String {
        self.part(c).sub_part(s).text().trim().to_string()
    }

    /// Component `n` when not empty.
    pub fn opt(&self, n: usize) -> Option<String> {
        Some(self.comp(n)).filter(|s| !s.is_empty())
    }
}

/// Decodes escape sequences.
pub fn decode(raw: &str, seps: &Separators, charset: Charset) -> String {
    let Some(esc) = seps.escape else {
        return raw.to_string();
    };
    if !raw.contains(esc) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            // An unterminated escape: keep the text as it is.
            out.push_str(&rest[start..]);
            return out;
        };
        let code = &after[..end];
        match code {
            "F" => out.push(seps.field),
            "S" => out.push(seps.component),
            "T" => out.push(seps.subcomponent),
            "R" => out.push(seps.repetition),
            "E" => out.push(esc),
            ".br" => out.push('\n'),
            _ if code.starts_with('X') && code.len() > 1 => {
                let hex = &code[1..];
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect();
                if let Some(bytes) = bytes {
                    out.push_str(&decode_text(&bytes, charset));
                }
            }
            // \H\, \N\, \.sp\, \.in\, \Cxxyy\, \Mxxyyzz\ ...: formatting or
            // character-set switches we do not render.
            _ => {}
        }
        rest = &after[end + esc.len_utf8()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str =
        "MSH|^~\\&|REG|HOSP|CHARAKA|HOSP|20240101120000||ADT^A01^ADT_A01|MSG1|P|2.5\r\
        EVN|A01|20240101120000\r\
        PID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^SSA^SS||O\\S\\BRIEN^ANNE\\T\\X^M||19800202|F\r\
        ZXX|custom|data\r";

    #[test]
    fn parses_fields_components_and_repetitions() {
        let m = Message::parse(ADT.as_bytes()).unwrap();
        assert_eq!(m.segments.len(), 4);
        assert_eq!(m.msh().get(1).raw(), "|");
        assert_eq!(m.msh().get(2).raw(), "^~\\&");
        assert_eq!(m.message_type().1, "A01");
        assert_eq!(m.control_id(), "MSG1");
        assert_eq!(m.version(), "2.5");
        let pid = m.first("PID").unwrap();
        let ids = pid.reps(3);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].comp(1), "123");
        assert_eq!(ids[0].sub(4, 2), "1.2.3");
        assert_eq!(ids[1].comp(5), "SS");
        assert_eq!(pid.get(5).comp(1), "O^BRIEN");
        assert_eq!(pid.get(5).comp(2), "ANNE&X");
        assert!(m.first("ZXX").is_some());
    }

    #[test]
    fn decodes_escapes() {
        let s = Separators::default();
        assert_eq!(
            decode("a\\F\\b\\R\\c\\E\\d\\.br\\e", &s, Charset::Utf8),
            "a|b~c\\d\ne"
        );
        assert_eq!(decode("\\XC3A9\\t\\H\\x\\N\\", &s, Charset::Utf8), "étx");
        assert_eq!(decode("\\XE9\\", &s, Charset::Latin1), "é");
        assert_eq!(s.escape("a|b^c\nd"), "a\\F\\b\\S\\c\\.br\\d");
    }

    #[test]
    fn accepts_other_separators_and_line_ends() {
        let text = "MSH#:*!@#APP#FAC#####ORU:R01#7#P#2.3\nPID#1##9:::A\r\nOBX#1#ST#x##a!F!b";
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.segments.len(), 3);
        assert_eq!(m.message_type().0, "ORU");
        assert_eq!(m.first("PID").unwrap().get(3).comp(4), "A");
        assert_eq!(m.first("OBX").unwrap().get(5).text(), "a#b");
    }

    #[test]
    fn reads_latin1_from_msh_18() {
        let mut bytes =
            b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|9|P|2.4||||||8859/1\rPID|1||1||M".to_vec();
        bytes.push(0xFC);
        bytes.extend_from_slice(b"LLER^J");
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.charset, Charset::Latin1);
        assert_eq!(m.first("PID").unwrap().get(5).comp(1), "MüLLER");
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        assert!(Message::parse(b"PID|1").is_err());
        assert!(Message::parse(b"MSH|").is_err());
        assert!(Message::parse(b"MSH|^~\\&|A|B|C|D|x||").is_err());
        assert!(Message::parse(b"MSH|^~\\&|A|B|C|D|x||ADT^A01|1|P|2.5||||||KOI8").is_err());
    }
}
