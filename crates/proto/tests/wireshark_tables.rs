//! The Wireshark dissector's tables (`contrib/wireshark/avp.lua`) against this crate: message
//! types, attributes with their kinds and ranges, the attributes each type allows and requires,
//! result codes, and the JSON names. A rule changed on one side only fails here.
//!
//! The tables are read with a small parser for the subset of Lua table constructors they are
//! written in (numbers, strings, names, nested tables).

use avp_proto::rules::{value_rule, ValueRule};
use avp_proto::{result_code, Attribute, Codec, Decoded, MessageType, Status};
use std::collections::BTreeMap;

/// A value in a Lua table constructor.
#[derive(Debug, Clone, PartialEq)]
enum Lua {
    Num(u64),
    Str(String),
    Name(String),
    Table(Vec<(Option<Key>, Lua)>),
}

/// A key in a Lua table constructor: `[1] = …` or `name = …`.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Num(u64),
    Name(String),
}

impl Lua {
    fn entries(&self) -> &[(Option<Key>, Lua)] {
        match self {
            Lua::Table(entries) => entries,
            other => panic!("expected a table, found {other:?}"),
        }
    }

    /// The entries keyed `[N]`, by N.
    fn by_number(&self) -> BTreeMap<u64, &Lua> {
        self.entries()
            .iter()
            .map(|(k, v)| match k {
                Some(Key::Num(n)) => (*n, v),
                other => panic!("expected a [number] key, found {other:?}"),
            })
            .collect()
    }

    /// The entry `name = …`, if present.
    fn get(&self, name: &str) -> Option<&Lua> {
        self.entries()
            .iter()
            .find(|(k, _)| matches!(k, Some(Key::Name(n)) if n == name))
            .map(|(_, v)| v)
    }

    fn str(&self, name: &str) -> &str {
        match self.get(name) {
            Some(Lua::Str(s)) => s,
            other => panic!("{name}: expected a string, found {other:?}"),
        }
    }

    fn num(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            None => None,
            Some(Lua::Num(n)) => Some(*n),
            other => panic!("{name}: expected a number, found {other:?}"),
        }
    }

    /// The list `name = { a, b, … }` as numbers.
    fn numbers(&self, name: &str) -> Vec<u8> {
        let list = self
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"));
        list.entries()
            .iter()
            .map(|(k, v)| match (k, v) {
                (None, Lua::Num(n)) => u8::try_from(*n).expect("an attribute number"),
                other => panic!("{name}: expected a list of numbers, found {other:?}"),
            })
            .collect()
    }
}

/// A recursive-descent reader of one table constructor.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        loop {
            while self.text.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
                self.pos += 1;
            }
            if self.text[self.pos..].starts_with(b"--") {
                while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                    self.pos += 1;
                }
            } else {
                return;
            }
        }
    }

    fn peek(&mut self) -> u8 {
        self.skip_space();
        *self.text.get(self.pos).expect("the table ends early")
    }

    fn expect(&mut self, c: u8) {
        assert_eq!(self.peek() as char, c as char, "at byte {}", self.pos);
        self.pos += 1;
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.text.get(self.pos).copied().is_some_and(&f) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos]).unwrap()
    }

    fn value(&mut self) -> Lua {
        match self.peek() {
            b'{' => self.table(),
            b'"' => {
                self.pos += 1;
                let s = self.take_while(|c| c != b'"').to_string();
                self.expect(b'"');
                Lua::Str(s)
            }
            c if c.is_ascii_digit() => {
                Lua::Num(self.take_while(|c| c.is_ascii_digit()).parse().unwrap())
            }
            c if c.is_ascii_alphabetic() => Lua::Name(
                self.take_while(|c| c.is_ascii_alphanumeric() || c == b'_')
                    .to_string(),
            ),
            c => panic!("unexpected {:?} at byte {}", c as char, self.pos),
        }
    }

    fn table(&mut self) -> Lua {
        self.expect(b'{');
        let mut entries = Vec::new();
        while self.peek() != b'}' {
            let key = match self.peek() {
                b'[' => {
                    self.pos += 1;
                    let Lua::Num(n) = self.value() else {
                        panic!("a [key] must be a number")
                    };
                    self.expect(b']');
                    self.expect(b'=');
                    Some(Key::Num(n))
                }
                c if c.is_ascii_alphabetic() => {
                    let save = self.pos;
                    let name = self
                        .take_while(|c| c.is_ascii_alphanumeric() || c == b'_')
                        .to_string();
                    if self.peek() == b'=' {
                        self.pos += 1;
                        Some(Key::Name(name))
                    } else {
                        self.pos = save;
                        None
                    }
                }
                _ => None,
            };
            entries.push((key, self.value()));
            if self.peek() == b',' {
                self.pos += 1;
            }
        }
        self.expect(b'}');
        Lua::Table(entries)
    }
}

/// The table assigned by `local NAME = {` in the dissector.
fn lua_table(name: &str) -> Lua {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/wireshark/avp.lua"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = text
        .find(&format!("local {name} = {{"))
        .unwrap_or_else(|| panic!("no table {name} in {path}"));
    let mut parser = Parser {
        text: text.as_bytes(),
        pos: start + format!("local {name} = ").len(),
    };
    parser.table()
}

/// The shortest big-endian encoding of `v`.
fn uint_bytes(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    bytes[skip..].to_vec()
}

/// A valid value of `attr`: the smallest integer or the shortest text its rule allows.
fn valid_value(attr: Attribute) -> Vec<u8> {
    match value_rule(attr) {
        ValueRule::Uint { min, .. } => uint_bytes(min),
        ValueRule::Text { min_len, .. } => vec![b'x'; min_len.max(1)],
        ValueRule::Octets { len } => vec![0; len],
    }
}

/// A binary frame of type `code` carrying a valid value of each of `attrs`.
fn frame(code: u8, attrs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for &a in attrs {
        let value = valid_value(Attribute::from_u8(a).expect("a known attribute"));
        body.extend([a, value.len() as u8]);
        body.extend(value);
    }
    let mut out = ((body.len() + 3) as u16).to_be_bytes().to_vec();
    out.push(code);
    out.extend(body);
    out
}

/// Decodes a binary frame; the message, or the reason it is invalid.
fn decode(bytes: &[u8]) -> Decoded<'_> {
    match Codec::Binary.decode(bytes) {
        Ok(Status::Complete((decoded, used))) if used == bytes.len() => decoded,
        other => panic!("{bytes:02x?} is not one complete frame: {other:?}"),
    }
}

/// The JSON encoding of a binary frame's message, parsed; signed when the frame carries an
/// AUTHENTICATOR (which only a signer writes).
fn as_json(bytes: &[u8]) -> serde_json::Value {
    let Decoded::Message(msg) = decode(bytes) else {
        panic!("{bytes:02x?} is invalid")
    };
    let mut out = Vec::new();
    Codec::Json.encode(&msg, &mut out).expect("encodes as JSON");
    let signed = avp_proto::avp::AvpIter::new(&bytes[3..])
        .any(|a| a.is_ok_and(|a| a.attribute == Attribute::Authenticator as u8));
    if signed {
        let key = avp_proto::auth::Key::new(b"test");
        avp_proto::auth::sign(Codec::Json, &mut out, 0, &key).expect("signs");
    }
    let body = &out[out.iter().position(|&b| b == b'\n').unwrap() + 1..];
    serde_json::from_slice(body).expect("JSON")
}

#[test]
fn message_types_match_by_number_name_and_json_name() {
    let types = lua_table("MESSAGE_TYPES");
    let table = types.by_number();
    let known: Vec<u64> = (0..=255u8)
        .filter(|&c| MessageType::from_u8(c).is_some())
        .map(u64::from)
        .collect();
    assert_eq!(table.keys().copied().collect::<Vec<_>>(), known);
    for (&code, entry) in &table {
        let t = MessageType::from_u8(code as u8).unwrap();
        assert_eq!(entry.str("name"), t.name());
        let json = as_json(&frame(code as u8, &entry.numbers("required")));
        assert_eq!(json["type"], entry.str("json"), "{t}");
    }
}

#[test]
fn allowed_and_required_attributes_are_those_the_decoder_enforces() {
    for (&code, entry) in &lua_table("MESSAGE_TYPES").by_number() {
        let (name, code) = (entry.str("name"), code as u8);
        let allowed = entry.numbers("allowed");
        let required = entry.numbers("required");
        assert!(
            matches!(decode(&frame(code, &required)), Decoded::Message(_)),
            "{name} with its required attributes {required:?} is valid"
        );
        for attr in Attribute::ALL {
            let a = attr as u8;
            if required.contains(&a) {
                let without: Vec<u8> = required.iter().copied().filter(|&r| r != a).collect();
                assert!(
                    matches!(decode(&frame(code, &without)), Decoded::Invalid(_)),
                    "{name} without {attr} is invalid"
                );
            } else {
                let mut with = required.clone();
                with.push(a);
                let valid = matches!(decode(&frame(code, &with)), Decoded::Message(_));
                assert_eq!(valid, allowed.contains(&a), "{name} with {attr}");
            }
        }
        for r in &required {
            assert!(allowed.contains(r), "{name}: required {r} is allowed");
        }
    }
}

#[test]
fn attributes_match_by_number_name_kind_and_range() {
    let attributes = lua_table("ATTRIBUTES");
    let table = attributes.by_number();
    let known: Vec<u64> = (0..=255u8)
        .filter(|&c| Attribute::from_u8(c).is_some())
        .map(u64::from)
        .collect();
    assert_eq!(table.keys().copied().collect::<Vec<_>>(), known);
    let mut fields = Vec::new();
    for (&code, entry) in &table {
        let attr = Attribute::from_u8(code as u8).unwrap();
        assert_eq!(entry.str("name"), attr.name());
        fields.push(entry.str("field"));
        match value_rule(attr) {
            ValueRule::Uint { min, max } => {
                assert_eq!(entry.str("kind"), "uint", "{attr}");
                assert_eq!(entry.num("min"), Some(min), "{attr}");
                // No `max` in the table: any 64-bit value.
                assert_eq!(entry.num("max").unwrap_or(u64::MAX), max, "{attr}");
            }
            ValueRule::Text { min_len, printable } => {
                assert_eq!(entry.str("kind"), "text", "{attr}");
                assert_eq!(entry.num("min_len"), Some(min_len as u64), "{attr}");
                let flagged = entry.get("printable") == Some(&Lua::Name("true".into()));
                assert_eq!(flagged, printable, "{attr}");
            }
            ValueRule::Octets { len } => {
                assert_eq!(entry.str("kind"), "octets", "{attr}");
                assert_eq!(entry.num("len"), Some(len as u64), "{attr}");
            }
        }
    }
    let mut unique = fields.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        fields.len(),
        "field names {fields:?} are unique"
    );
}

#[test]
fn result_codes_match_by_number_and_name() {
    let table: BTreeMap<u64, String> = lua_table("RESULT_CODES")
        .by_number()
        .into_iter()
        .map(|(code, name)| match name {
            Lua::Str(s) => (code, s.clone()),
            other => panic!("{code}: expected a name, found {other:?}"),
        })
        .collect();
    let crate_codes: BTreeMap<u64, String> = result_code::NAMES
        .into_iter()
        .map(|(code, name)| (u64::from(code), name.to_string()))
        .collect();
    assert_eq!(table, crate_codes);
}

#[test]
fn json_fields_are_the_keys_the_json_codec_writes() {
    let types = lua_table("MESSAGE_TYPES");
    let types = types.by_number();
    let fields = lua_table("JSON_FIELDS");
    let mut covered = Vec::new();
    for (_, field) in fields.entries() {
        let key = field.str("key");
        let a = field.num("attr").expect("attr") as u8;
        covered.push(a);
        let (&code, entry) = types
            .iter()
            .find(|(_, t)| t.numbers("allowed").contains(&a))
            .unwrap_or_else(|| panic!("no type allows attribute {a}"));
        let mut attrs = entry.numbers("required");
        if !attrs.contains(&a) {
            attrs.push(a);
        }
        let json = as_json(&frame(code as u8, &attrs));
        let value = json
            .get(key)
            .or_else(|| json["info"].get(key))
            .unwrap_or_else(|| panic!("{json} has no {key:?}"));
        let is_number = value.is_u64() || value.as_str().is_some_and(|s| s.ends_with('%'));
        assert_eq!(
            field.get("number") == Some(&Lua::Name("true".into())),
            is_number,
            "{key}: {value}"
        );
    }
    covered.sort();
    let all: Vec<u8> = Attribute::ALL.iter().map(|&a| a as u8).collect();
    assert_eq!(covered, all, "every attribute has its JSON field");
}
