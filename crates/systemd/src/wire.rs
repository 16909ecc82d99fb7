//! The D-Bus wire format (protocol version 1): marshalling and unmarshalling of messages.
//!
//! Only what talking to systemd needs is supported: the types `y b u i t x s o g v`,
//! arrays (including dict-like arrays of `{kv}` entries, which decode to
//! [`Value::Struct`] items) and structs. Messages are written little-endian; both byte
//! orders are read. The decoder checks every length and offset, so malformed input yields
//! a [`WireError`], never a panic.

/// The largest message accepted or produced. The specification allows 128 MiB; nothing
/// systemd sends us comes close to this bound.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Bytes of the fixed part of a message header, up to and including the length of the
/// header-field array.
pub const FIXED_HEADER_LEN: usize = 16;

const MAX_ARRAY_LEN: usize = 64 << 20;
const MAX_SIGNATURE_LEN: usize = 255;
// The specification's limits: 32 nested arrays, 32 nested structs, 64 containers in all
// (variants included). They also bound the decoder's recursion.
const MAX_NESTING: usize = 32;
const MAX_TOTAL_NESTING: usize = 64;

const PROTOCOL_VERSION: u8 = 1;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;
const FIELD_UNIX_FDS: u8 = 9;

/// Malformed or unsupported wire data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

impl WireError {
    fn new(msg: impl Into<String>) -> Self {
        WireError(msg.into())
    }
}

type Result<T> = std::result::Result<T, WireError>;

/// One D-Bus value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `y`
    Byte(u8),
    /// `b`
    Bool(bool),
    /// `u`
    U32(u32),
    /// `i`
    I32(i32),
    /// `t`
    U64(u64),
    /// `x`
    I64(i64),
    /// `s`
    Str(String),
    /// `o`
    ObjectPath(String),
    /// `g`
    Signature(String),
    /// `v`: a value carrying its own signature.
    Variant(Box<Value>),
    /// `a<elem_sig>`. The element signature is explicit so that empty arrays have a type.
    /// For dict-like arrays (`elem_sig` = `{kv}`) every item is a two-field `Struct`.
    Array {
        /// The signature of one element, e.g. `(sv)` or `{sv}`.
        elem_sig: String,
        /// The elements.
        items: Vec<Value>,
    },
    /// `(...)`: at least one field.
    Struct(Vec<Value>),
}

impl Value {
    /// The value's D-Bus signature (a single complete type).
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.write_signature(&mut s);
        s
    }

    fn write_signature(&self, out: &mut String) {
        match self {
            Value::Byte(_) => out.push('y'),
            Value::Bool(_) => out.push('b'),
            Value::U32(_) => out.push('u'),
            Value::I32(_) => out.push('i'),
            Value::U64(_) => out.push('t'),
            Value::I64(_) => out.push('x'),
            Value::Str(_) => out.push('s'),
            Value::ObjectPath(_) => out.push('o'),
            Value::Signature(_) => out.push('g'),
            Value::Variant(_) => out.push('v'),
            Value::Array { elem_sig, .. } => {
                out.push('a');
                out.push_str(elem_sig);
            }
            Value::Struct(fields) => {
                out.push('(');
                for f in fields {
                    f.write_signature(out);
                }
                out.push(')');
            }
        }
    }

    /// The string inside a `Str`, `ObjectPath` or `Signature`.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value can be marshalled as type `ty` (elements, fields and string
    /// contents included).
    fn conforms(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Byte(_), Type::Byte)
            | (Value::Bool(_), Type::Bool)
            | (Value::U32(_), Type::U32)
            | (Value::I32(_), Type::I32)
            | (Value::U64(_), Type::U64)
            | (Value::I64(_), Type::I64) => true,
            (Value::Str(s), Type::Str) => !s.contains('\0'),
            (Value::ObjectPath(s), Type::ObjectPath) => valid_object_path(s),
            (Value::Signature(s), Type::Signature) => parse_signature(s).is_ok(),
            (Value::Variant(inner), Type::Variant) => {
                matches!(parse_single_type(&inner.signature()), Ok(t) if inner.conforms(&t))
            }
            (Value::Array { elem_sig, items }, Type::Array(elem)) => {
                elem.signature() == *elem_sig && items.iter().all(|i| i.conforms(elem))
            }
            (Value::Struct(fields), Type::Struct(types)) => {
                fields.len() == types.len() && fields.iter().zip(types).all(|(f, t)| f.conforms(t))
            }
            (Value::Struct(fields), Type::DictEntry(k, v)) => {
                matches!(fields.as_slice(), [kf, vf] if kf.conforms(k) && vf.conforms(v))
            }
            _ => false,
        }
    }
}

/// A parsed single complete type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Type {
    Byte,
    Bool,
    U32,
    I32,
    U64,
    I64,
    Str,
    ObjectPath,
    Signature,
    Variant,
    Array(Box<Type>),
    Struct(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    fn align(&self) -> usize {
        match self {
            Type::Byte | Type::Signature | Type::Variant => 1,
            Type::Bool | Type::U32 | Type::I32 | Type::Str | Type::ObjectPath | Type::Array(_) => 4,
            Type::U64 | Type::I64 | Type::Struct(_) | Type::DictEntry(..) => 8,
        }
    }

    fn is_basic(&self) -> bool {
        !matches!(
            self,
            Type::Variant | Type::Array(_) | Type::Struct(_) | Type::DictEntry(..)
        )
    }

    fn signature(&self) -> String {
        let mut s = String::new();
        self.write_signature(&mut s);
        s
    }

    fn write_signature(&self, out: &mut String) {
        match self {
            Type::Byte => out.push('y'),
            Type::Bool => out.push('b'),
            Type::U32 => out.push('u'),
            Type::I32 => out.push('i'),
            Type::U64 => out.push('t'),
            Type::I64 => out.push('x'),
            Type::Str => out.push('s'),
            Type::ObjectPath => out.push('o'),
            Type::Signature => out.push('g'),
            Type::Variant => out.push('v'),
            Type::Array(e) => {
                out.push('a');
                e.write_signature(out);
            }
            Type::Struct(fields) => {
                out.push('(');
                for f in fields {
                    f.write_signature(out);
                }
                out.push(')');
            }
            Type::DictEntry(k, v) => {
                out.push('{');
                k.write_signature(out);
                v.write_signature(out);
                out.push('}');
            }
        }
    }
}

/// Parses a signature (a sequence of complete types).
fn parse_signature(sig: &str) -> Result<Vec<Type>> {
    if sig.len() > MAX_SIGNATURE_LEN {
        return Err(WireError::new(format!(
            "signature is {} bytes long; at most {MAX_SIGNATURE_LEN} are allowed",
            sig.len()
        )));
    }
    let bytes = sig.as_bytes();
    let mut pos = 0;
    let mut types = Vec::new();
    while pos < bytes.len() {
        types.push(parse_type(bytes, &mut pos, 0, 0)?);
    }
    Ok(types)
}

/// Parses a signature that must hold exactly one complete type (a variant's).
fn parse_single_type(sig: &str) -> Result<Type> {
    let mut types = parse_signature(sig)?;
    match (types.pop(), types.is_empty()) {
        (Some(t), true) => Ok(t),
        _ => Err(WireError::new(format!(
            "signature '{sig}' is not a single complete type"
        ))),
    }
}

fn parse_type(sig: &[u8], pos: &mut usize, arrays: usize, structs: usize) -> Result<Type> {
    let Some(&c) = sig.get(*pos) else {
        return Err(WireError::new("signature ends in the middle of a type"));
    };
    *pos += 1;
    Ok(match c {
        b'y' => Type::Byte,
        b'b' => Type::Bool,
        b'u' => Type::U32,
        b'i' => Type::I32,
        b't' => Type::U64,
        b'x' => Type::I64,
        b's' => Type::Str,
        b'o' => Type::ObjectPath,
        b'g' => Type::Signature,
        b'v' => Type::Variant,
        b'a' => {
            if arrays >= MAX_NESTING {
                return Err(WireError::new("signature nests arrays too deeply"));
            }
            if sig.get(*pos) == Some(&b'{') {
                *pos += 1;
                if structs >= MAX_NESTING {
                    return Err(WireError::new("signature nests structs too deeply"));
                }
                let key = parse_type(sig, pos, arrays + 1, structs + 1)?;
                if !key.is_basic() {
                    return Err(WireError::new("dict entry key is not a basic type"));
                }
                let value = parse_type(sig, pos, arrays + 1, structs + 1)?;
                if sig.get(*pos) != Some(&b'}') {
                    return Err(WireError::new("dict entry does not have exactly two types"));
                }
                *pos += 1;
                Type::Array(Box::new(Type::DictEntry(Box::new(key), Box::new(value))))
            } else {
                Type::Array(Box::new(parse_type(sig, pos, arrays + 1, structs)?))
            }
        }
        b'(' => {
            if structs >= MAX_NESTING {
                return Err(WireError::new("signature nests structs too deeply"));
            }
            let mut fields = Vec::new();
            loop {
                match sig.get(*pos) {
                    Some(b')') => {
                        *pos += 1;
                        break;
                    }
                    Some(_) => fields.push(parse_type(sig, pos, arrays, structs + 1)?),
                    None => return Err(WireError::new("signature has an unclosed struct")),
                }
            }
            if fields.is_empty() {
                return Err(WireError::new("signature has an empty struct"));
            }
            Type::Struct(fields)
        }
        other => {
            return Err(WireError::new(format!(
                "unsupported or invalid type code '{}' in signature",
                char::from(other).escape_default()
            )))
        }
    })
}

fn valid_object_path(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    rest.split('/')
        .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn align_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Marshals values little-endian into a buffer whose offset 0 is 8-aligned in the
/// message, so alignment relative to the buffer is alignment relative to the message.
struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    fn pad(&mut self, align: usize) {
        let len = align_up(self.buf.len(), align);
        self.buf.resize(len, 0);
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        // Lengths past u32 are refused by validation; saturate rather than wrap.
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(n) => self.u32(*n),
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::ObjectPath(s) => self.string(s),
            Value::Signature(s) => self.signature(s),
            Value::Variant(inner) => {
                self.signature(&inner.signature());
                self.value(inner);
            }
            Value::Array { elem_sig, items } => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The length excludes the padding before the first element, which is
                // present even when the array is empty.
                self.pad(sig_align(elem_sig));
                let start = self.buf.len();
                for item in items {
                    self.value(item);
                }
                let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
        }
    }
}

/// Alignment of the type a signature starts with.
fn sig_align(sig: &str) -> usize {
    match sig.as_bytes().first() {
        Some(b'b' | b'u' | b'i' | b's' | b'o' | b'a') => 4,
        Some(b't' | b'x' | b'(' | b'{') => 8,
        _ => 1,
    }
}

/// Unmarshals values from `buf`, whose offset 0 is 8-aligned in the message.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Decoder<'a> {
    fn align(&mut self, align: usize) -> Result<()> {
        let end = align_up(self.pos, align);
        let pad = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| WireError::new("message ends inside alignment padding"))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(WireError::new("alignment padding is not zero"));
        }
        self.pos = end;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                WireError::new(format!(
                    "message truncated: {n} bytes needed at offset {} of {}",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        if self.big_endian {
            out.reverse();
        }
        // `out` is now little-endian.
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed::<4>()?))
    }

    fn string_bytes(&mut self, len: usize, what: &str) -> Result<String> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(WireError::new(format!("{what} is not NUL-terminated")));
        }
        if bytes.contains(&0) {
            return Err(WireError::new(format!("{what} contains a NUL byte")));
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| WireError::new(format!("{what} is not valid UTF-8")))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = usize::try_from(self.u32()?).map_err(|_| WireError::new("length overflow"))?;
        self.string_bytes(len, what)
    }

    fn signature(&mut self) -> Result<String> {
        let len = usize::from(self.take(1)?[0]);
        self.string_bytes(len, "signature")
    }

    /// Decodes one value of type `ty`; `depth` counts the enclosing containers.
    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value> {
        if depth > MAX_TOTAL_NESTING {
            return Err(WireError::new("values nest too deeply"));
        }
        Ok(match ty {
            Type::Byte => Value::Byte(self.take(1)?[0]),
            Type::Bool => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(WireError::new(format!("boolean has value {n}"))),
            },
            Type::U32 => Value::U32(self.u32()?),
            Type::I32 => Value::I32(i32::from_le_bytes(self.fixed::<4>()?)),
            Type::U64 => Value::U64(u64::from_le_bytes(self.fixed::<8>()?)),
            Type::I64 => Value::I64(i64::from_le_bytes(self.fixed::<8>()?)),
            Type::Str => Value::Str(self.string("string")?),
            Type::ObjectPath => {
                let p = self.string("object path")?;
                if !valid_object_path(&p) {
                    return Err(WireError::new(format!("invalid object path '{p}'")));
                }
                Value::ObjectPath(p)
            }
            Type::Signature => {
                let s = self.signature()?;
                parse_signature(&s)?;
                Value::Signature(s)
            }
            Type::Variant => {
                let sig = self.signature()?;
                let inner = parse_single_type(&sig)?;
                Value::Variant(Box::new(self.value(&inner, depth + 1)?))
            }
            Type::Array(elem) => {
                let len =
                    usize::try_from(self.u32()?).map_err(|_| WireError::new("length overflow"))?;
                if len > MAX_ARRAY_LEN {
                    return Err(WireError::new(format!("array of {len} bytes is too long")));
                }
                self.align(elem.align())?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return Err(WireError::new(format!(
                        "array of {len} bytes at offset {} overruns the message",
                        self.pos
                    )));
                }
                let mut items = Vec::new();
                // Every element is at least one byte, so this terminates.
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                if self.pos != end {
                    return Err(WireError::new("array element overruns the array's length"));
                }
                Value::Array {
                    elem_sig: elem.signature(),
                    items,
                }
            }
            Type::Struct(fields) => {
                self.align(8)?;
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    out.push(self.value(f, depth + 1)?);
                }
                Value::Struct(out)
            }
            Type::DictEntry(k, v) => {
                self.align(8)?;
                let key = self.value(k, depth + 1)?;
                let value = self.value(v, depth + 1)?;
                Value::Struct(vec![key, value])
            }
        })
    }
}

/// The kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A method call.
    MethodCall = 1,
    /// A successful reply.
    MethodReturn = 2,
    /// An error reply.
    Error = 3,
    /// A signal.
    Signal = 4,
}

impl MessageType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => MessageType::MethodCall,
            2 => MessageType::MethodReturn,
            3 => MessageType::Error,
            4 => MessageType::Signal,
            _ => return None,
        })
    }
}

/// One D-Bus message. The body's signature (header field SIGNATURE) is derived from
/// `body` when encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub msg_type: MessageType,
    /// Header flags (NO_REPLY_EXPECTED = 1, NO_AUTO_START = 2,
    /// ALLOW_INTERACTIVE_AUTHORIZATION = 4).
    pub flags: u8,
    /// The serial read from the wire; [`Message::encode`] takes the one to send.
    pub serial: u32,
    /// PATH (1)
    pub path: Option<String>,
    /// INTERFACE (2)
    pub interface: Option<String>,
    /// MEMBER (3)
    pub member: Option<String>,
    /// ERROR_NAME (4)
    pub error_name: Option<String>,
    /// REPLY_SERIAL (5)
    pub reply_serial: Option<u32>,
    /// DESTINATION (6)
    pub destination: Option<String>,
    /// SENDER (7)
    pub sender: Option<String>,
    /// UNIX_FDS (9). File descriptors are never passed by this crate.
    pub unix_fds: Option<u32>,
    /// The body's values.
    pub body: Vec<Value>,
}

impl Message {
    /// A method call of `iface.member` on object `path` of bus name `dest`.
    pub fn method_call(
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        body: Vec<Value>,
    ) -> Message {
        Message {
            msg_type: MessageType::MethodCall,
            flags: 0,
            serial: 0,
            path: Some(path.to_owned()),
            interface: Some(iface.to_owned()),
            member: Some(member.to_owned()),
            error_name: None,
            reply_serial: None,
            destination: Some(dest.to_owned()),
            sender: None,
            unix_fds: None,
            body,
        }
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        for v in &self.body {
            v.write_signature(&mut s);
        }
        s
    }

    /// `INTERFACE.MEMBER` (or what of it is present), for error messages.
    pub(crate) fn method_name(&self) -> String {
        match (&self.interface, &self.member) {
            (Some(i), Some(m)) => format!("{i}.{m}"),
            (None, Some(m)) => m.clone(),
            _ => "(unnamed)".to_owned(),
        }
    }

    /// The first body value if it is a string (an error's human-readable message).
    pub(crate) fn first_str(&self) -> Option<&str> {
        self.body.first().and_then(Value::as_str)
    }

    /// Checks that the message can be encoded into something a peer accepts: the fields
    /// its type requires are present and well-formed, every value matches its declared
    /// signature, and the result fits [`MAX_MESSAGE_SIZE`]. A peer such as systemd drops
    /// the connection on a malformed message, so this runs before sending.
    pub fn validate(&self) -> Result<()> {
        let required: &[(&str, bool)] = match self.msg_type {
            MessageType::MethodCall => &[
                ("PATH", self.path.is_some()),
                ("MEMBER", self.member.is_some()),
            ],
            MessageType::MethodReturn => &[("REPLY_SERIAL", self.reply_serial.is_some())],
            MessageType::Error => &[
                ("ERROR_NAME", self.error_name.is_some()),
                ("REPLY_SERIAL", self.reply_serial.is_some()),
            ],
            MessageType::Signal => &[
                ("PATH", self.path.is_some()),
                ("INTERFACE", self.interface.is_some()),
                ("MEMBER", self.member.is_some()),
            ],
        };
        if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
            return Err(WireError::new(format!(
                "{:?} message lacks the {name} header field",
                self.msg_type
            )));
        }
        if let Some(p) = &self.path {
            if !valid_object_path(p) {
                return Err(WireError::new(format!("invalid object path '{p}'")));
            }
        }
        for (what, s) in [
            ("interface", &self.interface),
            ("member", &self.member),
            ("error name", &self.error_name),
            ("destination", &self.destination),
            ("sender", &self.sender),
        ] {
            if let Some(s) = s {
                if s.is_empty() || s.contains('\0') || s.len() > MAX_SIGNATURE_LEN {
                    return Err(WireError::new(format!(
                        "invalid {what} '{}'",
                        s.escape_default()
                    )));
                }
            }
        }
        let sig = self.signature();
        let types = parse_signature(&sig)?;
        for (v, t) in self.body.iter().zip(&types) {
            if !v.conforms(t) {
                return Err(WireError::new(format!(
                    "value of signature '{}' is malformed (an array element of the wrong type, \
                     a string with a NUL byte or an invalid object path)",
                    v.signature()
                )));
            }
        }
        let len = self.encode(1).len();
        if len > MAX_MESSAGE_SIZE {
            return Err(WireError::new(format!(
                "message of {len} bytes exceeds the maximum of {MAX_MESSAGE_SIZE}"
            )));
        }
        Ok(())
    }

    /// Marshals the message little-endian with `serial` (must not be 0). The message is
    /// assumed valid (see [`Message::validate`]).
    pub fn encode(&self, serial: u32) -> Vec<u8> {
        let mut body = Encoder { buf: Vec::new() };
        for v in &self.body {
            body.value(v);
        }
        let sig = self.signature();

        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]));
        };
        let string_fields = [
            (FIELD_INTERFACE, &self.interface),
            (FIELD_MEMBER, &self.member),
            (FIELD_ERROR_NAME, &self.error_name),
        ];
        if let Some(p) = &self.path {
            field(FIELD_PATH, Value::ObjectPath(p.clone()));
        }
        for (code, s) in string_fields {
            if let Some(s) = s {
                field(code, Value::Str(s.clone()));
            }
        }
        if let Some(r) = self.reply_serial {
            field(FIELD_REPLY_SERIAL, Value::U32(r));
        }
        if let Some(d) = &self.destination {
            field(FIELD_DESTINATION, Value::Str(d.clone()));
        }
        if let Some(s) = &self.sender {
            field(FIELD_SENDER, Value::Str(s.clone()));
        }
        if !sig.is_empty() {
            field(FIELD_SIGNATURE, Value::Signature(sig));
        }
        if let Some(n) = self.unix_fds {
            field(FIELD_UNIX_FDS, Value::U32(n));
        }

        let mut msg = Encoder {
            buf: Vec::with_capacity(128 + body.buf.len()),
        };
        msg.buf
            .extend_from_slice(&[b'l', self.msg_type as u8, self.flags, PROTOCOL_VERSION]);
        msg.u32(u32::try_from(body.buf.len()).unwrap_or(u32::MAX));
        msg.u32(serial);
        msg.value(&Value::Array {
            elem_sig: "(yv)".to_owned(),
            items: fields,
        });
        msg.pad(8);
        msg.buf.extend_from_slice(&body.buf);
        msg.buf
    }

    /// Unmarshals the message at the start of `buf`, returning it and the number of
    /// bytes it occupied. `buf` may hold more (the next message).
    pub fn decode(buf: &[u8]) -> Result<(Message, usize)> {
        let total = message_len(buf)?;
        let frame = buf.get(..total).ok_or_else(|| {
            WireError::new(format!(
                "message truncated: {total} bytes announced, {} present",
                buf.len()
            ))
        })?;
        let msg_type = MessageType::from_byte(frame[1])
            .ok_or_else(|| WireError::new(format!("unknown message type {}", frame[1])))?;
        let mut d = Decoder {
            buf: frame,
            pos: 4,
            big_endian: frame[0] == b'B',
        };
        let body_len = usize::try_from(d.u32()?).map_err(|_| WireError::new("length overflow"))?;
        let serial = d.u32()?;
        if serial == 0 {
            return Err(WireError::new("message has serial 0"));
        }
        let field_type = Type::Array(Box::new(Type::Struct(vec![Type::Byte, Type::Variant])));
        let Value::Array { items, .. } = d.value(&field_type, 0)? else {
            return Err(WireError::new("header fields are not an array"));
        };
        d.align(8)?;
        let body_start = d.pos;

        let mut msg = Message {
            msg_type,
            flags: frame[2],
            serial,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            unix_fds: None,
            body: Vec::new(),
        };
        let mut sig = String::new();
        for item in items {
            let Value::Struct(pair) = item else {
                return Err(WireError::new("header field is not a struct"));
            };
            let [Value::Byte(code), Value::Variant(v)] = <[Value; 2]>::try_from(pair)
                .map_err(|_| WireError::new("header field is not a (yv) pair"))?
            else {
                return Err(WireError::new("header field is not a (yv) pair"));
            };
            let wrong =
                |name: &str| WireError::new(format!("header field {name} has the wrong type"));
            match (code, *v) {
                (FIELD_PATH, Value::ObjectPath(p)) => msg.path = Some(p),
                (FIELD_INTERFACE, Value::Str(s)) => msg.interface = Some(s),
                (FIELD_MEMBER, Value::Str(s)) => msg.member = Some(s),
                (FIELD_ERROR_NAME, Value::Str(s)) => msg.error_name = Some(s),
                (FIELD_REPLY_SERIAL, Value::U32(n)) => msg.reply_serial = Some(n),
                (FIELD_DESTINATION, Value::Str(s)) => msg.destination = Some(s),
                (FIELD_SENDER, Value::Str(s)) => msg.sender = Some(s),
                (FIELD_SIGNATURE, Value::Signature(s)) => sig = s,
                (FIELD_UNIX_FDS, Value::U32(n)) => msg.unix_fds = Some(n),
                (FIELD_PATH, _) => return Err(wrong("PATH")),
                (FIELD_INTERFACE, _) => return Err(wrong("INTERFACE")),
                (FIELD_MEMBER, _) => return Err(wrong("MEMBER")),
                (FIELD_ERROR_NAME, _) => return Err(wrong("ERROR_NAME")),
                (FIELD_REPLY_SERIAL, _) => return Err(wrong("REPLY_SERIAL")),
                (FIELD_DESTINATION, _) => return Err(wrong("DESTINATION")),
                (FIELD_SENDER, _) => return Err(wrong("SENDER")),
                (FIELD_SIGNATURE, _) => return Err(wrong("SIGNATURE")),
                (FIELD_UNIX_FDS, _) => return Err(wrong("UNIX_FDS")),
                // The specification requires unknown fields to be ignored.
                _ => {}
            }
        }
        let missing = match msg_type {
            MessageType::MethodCall if msg.path.is_none() || msg.member.is_none() => {
                Some("PATH or MEMBER")
            }
            MessageType::MethodReturn if msg.reply_serial.is_none() => Some("REPLY_SERIAL"),
            MessageType::Error if msg.error_name.is_none() || msg.reply_serial.is_none() => {
                Some("ERROR_NAME or REPLY_SERIAL")
            }
            MessageType::Signal
                if msg.path.is_none() || msg.interface.is_none() || msg.member.is_none() =>
            {
                Some("PATH, INTERFACE or MEMBER")
            }
            _ => None,
        };
        if let Some(what) = missing {
            return Err(WireError::new(format!("{msg_type:?} message lacks {what}")));
        }

        let body = &frame[body_start..];
        if body.len() != body_len {
            return Err(WireError::new("header and body lengths disagree"));
        }
        let mut bd = Decoder {
            buf: body,
            pos: 0,
            big_endian: d.big_endian,
        };
        for ty in parse_signature(&sig)? {
            msg.body.push(bd.value(&ty, 0)?);
        }
        if bd.pos != body.len() {
            return Err(WireError::new(format!(
                "body has {} bytes after the values of signature '{sig}'",
                body.len() - bd.pos
            )));
        }
        Ok((msg, total))
    }
}

/// The total length of the message starting with `fixed`, computed from its first
/// [`FIXED_HEADER_LEN`] bytes (body length and header-field array length), so that a
/// reader can read exactly one message. Checks the endianness mark, protocol version and
/// [`MAX_MESSAGE_SIZE`].
pub fn message_len(fixed: &[u8]) -> Result<usize> {
    let Some(h) = fixed.get(..FIXED_HEADER_LEN) else {
        return Err(WireError::new(format!(
            "message truncated: {} bytes, the fixed header alone is {FIXED_HEADER_LEN}",
            fixed.len()
        )));
    };
    let big_endian = match h[0] {
        b'l' => false,
        b'B' => true,
        other => {
            return Err(WireError::new(format!(
                "invalid endianness mark 0x{other:02x}"
            )))
        }
    };
    if h[3] != PROTOCOL_VERSION {
        return Err(WireError::new(format!(
            "unsupported protocol version {}",
            h[3]
        )));
    }
    let word = |at: usize| {
        let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        let n = if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        // u32 always fits usize on the 32- and 64-bit targets Linux runs on.
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    let body_len = word(4);
    let fields_len = word(12);
    if body_len > MAX_MESSAGE_SIZE || fields_len > MAX_MESSAGE_SIZE {
        return Err(WireError::new("message exceeds the maximum size"));
    }
    let total = align_up(FIXED_HEADER_LEN + fields_len, 8) + body_len;
    if total > MAX_MESSAGE_SIZE {
        return Err(WireError::new(format!(
            "message of {total} bytes exceeds the maximum of {MAX_MESSAGE_SIZE}"
        )));
    }
    Ok(total)
}

/// Renders bytes as hex for test failure messages.
#[cfg(test)]
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i % 16 == 0 {
            s.push('\n');
        }
        let _ = write!(s, "{b:02x} ");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    fn var(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    /// org.freedesktop.DBus.Hello, serial 1, laid out by hand from the specification.
    fn hello_golden() -> Vec<u8> {
        let mut g = Vec::new();
        // 0: endianness 'l', METHOD_CALL, no flags, version 1
        g.extend_from_slice(&[b'l', 1, 0, 1]);
        // 4: body length 0
        g.extend_from_slice(&[0, 0, 0, 0]);
        // 8: serial 1
        g.extend_from_slice(&[1, 0, 0, 0]);
        // 12: header field array length: fields span offsets 16..125 = 109 bytes
        g.extend_from_slice(&[109, 0, 0, 0]);
        // 16: PATH, variant signature "o", then (at 20) length 21 and the path + NUL
        g.extend_from_slice(&[1, 1, b'o', 0, 21, 0, 0, 0]);
        g.extend_from_slice(b"/org/freedesktop/DBus\0");
        // 46: pad to 48
        g.extend_from_slice(&[0, 0]);
        // 48: INTERFACE "s", length 20 at 52
        g.extend_from_slice(&[2, 1, b's', 0, 20, 0, 0, 0]);
        g.extend_from_slice(b"org.freedesktop.DBus\0");
        // 77: pad to 80
        g.extend_from_slice(&[0, 0, 0]);
        // 80: MEMBER "s", length 5 at 84
        g.extend_from_slice(&[3, 1, b's', 0, 5, 0, 0, 0]);
        g.extend_from_slice(b"Hello\0");
        // 94: pad to 96
        g.extend_from_slice(&[0, 0]);
        // 96: DESTINATION "s", length 20 at 100
        g.extend_from_slice(&[6, 1, b's', 0, 20, 0, 0, 0]);
        g.extend_from_slice(b"org.freedesktop.DBus\0");
        // 125: the header is padded to 128 even though the body is empty
        g.extend_from_slice(&[0, 0, 0]);
        assert_eq!(g.len(), 128);
        g
    }

    fn hello() -> Message {
        Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        )
    }

    #[test]
    fn hello_matches_golden_bytes() {
        let got = hello().encode(1);
        assert_eq!(got, hello_golden(), "got {}", hex(&got));
        assert_eq!(message_len(&got), Ok(128));
    }

    #[test]
    fn hello_decodes() {
        let mut buf = hello_golden();
        buf.extend_from_slice(b"next message");
        let (msg, used) = Message::decode(&buf).expect("decode");
        assert_eq!(used, 128);
        let mut want = hello();
        want.serial = 1;
        assert_eq!(msg, want);
    }

    fn start_transient_unit() -> Message {
        let props = vec![
            Value::Struct(vec![s("Description"), var(s("holdfast container web-1"))]),
            Value::Struct(vec![s("Slice"), var(s("holdfast_containers.slice"))]),
            Value::Struct(vec![s("Delegate"), var(Value::Bool(true))]),
            Value::Struct(vec![
                s("PIDs"),
                var(Value::Array {
                    elem_sig: "u".to_owned(),
                    items: vec![Value::U32(4242), Value::U32(7)],
                }),
            ]),
            Value::Struct(vec![s("CollectMode"), var(s("inactive-or-failed"))]),
            Value::Struct(vec![s("MemoryMax"), var(Value::U64(1 << 30))]),
            Value::Struct(vec![s("Nice"), var(Value::I32(-5))]),
            Value::Struct(vec![s("Weird"), var(Value::I64(-1))]),
            Value::Struct(vec![s("Byte"), var(Value::Byte(7))]),
            Value::Struct(vec![s("Sig"), var(Value::Signature("a(sv)".to_owned()))]),
            Value::Struct(vec![s("Path"), var(Value::ObjectPath("/a/b_1".to_owned()))]),
        ];
        Message::method_call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            vec![
                s("holdfast-web-1.scope"),
                s("fail"),
                Value::Array {
                    elem_sig: "(sv)".to_owned(),
                    items: props,
                },
                Value::Array {
                    elem_sig: "(sa(sv))".to_owned(),
                    items: vec![],
                },
            ],
        )
    }

    #[test]
    fn start_transient_unit_round_trips() {
        let msg = start_transient_unit();
        assert_eq!(msg.signature(), "ssa(sv)a(sa(sv))");
        msg.validate().expect("valid");
        let bytes = msg.encode(7);
        let (got, used) = Message::decode(&bytes).expect("decode");
        assert_eq!(used, bytes.len());
        let mut want = msg;
        want.serial = 7;
        assert_eq!(got, want);
    }

    #[test]
    fn empty_array_pads_to_element_alignment() {
        // a(sv) at offset 0: length 0 at 0..4, then padding to 8 that the length excludes.
        let mut e = Encoder { buf: Vec::new() };
        e.value(&Value::Array {
            elem_sig: "(sv)".to_owned(),
            items: vec![],
        });
        assert_eq!(e.buf, [0, 0, 0, 0, 0, 0, 0, 0]);
        // at: u32 length 16, pad 4, then t 1 and t 2.
        let mut e = Encoder { buf: Vec::new() };
        e.value(&Value::Array {
            elem_sig: "t".to_owned(),
            items: vec![Value::U64(1), Value::U64(2)],
        });
        assert_eq!(&e.buf[..8], [16, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(e.buf.len(), 24);
    }

    #[test]
    fn dict_arrays_decode_as_struct_items() {
        // A PropertiesChanged-like body: sa{sv}as
        let mut msg = Message::method_call("d", "/p", "i.f", "M", vec![]);
        msg.msg_type = MessageType::Signal;
        msg.body = vec![
            s("org.freedesktop.systemd1.Unit"),
            Value::Array {
                elem_sig: "{sv}".to_owned(),
                items: vec![Value::Struct(vec![s("ActiveState"), var(s("active"))])],
            },
            Value::Array {
                elem_sig: "s".to_owned(),
                items: vec![],
            },
        ];
        msg.validate().expect("valid");
        assert_eq!(msg.signature(), "sa{sv}as");
        let (got, _) = Message::decode(&msg.encode(3)).expect("decode");
        assert_eq!(got.body, msg.body);
    }

    #[test]
    fn reply_fields_round_trip() {
        let msg = Message {
            msg_type: MessageType::Error,
            flags: 1,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: Some("org.freedesktop.systemd1.NoSuchUnit".to_owned()),
            reply_serial: Some(9),
            destination: Some(":1.5".to_owned()),
            sender: Some("org.freedesktop.systemd1".to_owned()),
            unix_fds: Some(0),
            body: vec![s("Unit x.scope not loaded.")],
        };
        msg.validate().expect("valid");
        let (got, _) = Message::decode(&msg.encode(12)).expect("decode");
        assert_eq!(got, Message { serial: 12, ..msg });
        assert_eq!(got.first_str(), Some("Unit x.scope not loaded."));
    }

    #[test]
    fn big_endian_messages_decode() {
        // Hello again, but big-endian: only the mark and the 32-bit numbers change.
        let mut g = hello_golden();
        g[0] = b'B';
        for at in [4, 8, 12, 20, 52, 84, 100] {
            g[at..at + 4].reverse();
        }
        let (msg, _) = Message::decode(&g).expect("decode");
        assert_eq!(msg.member.as_deref(), Some("Hello"));
        assert_eq!(msg.serial, 1);
    }

    #[test]
    fn validate_rejects_mismatched_values() {
        let mut msg = hello();
        msg.body = vec![Value::Array {
            elem_sig: "s".to_owned(),
            items: vec![Value::U32(1)],
        }];
        assert!(msg.validate().is_err());
        msg.body = vec![s("nul\0inside")];
        assert!(msg.validate().is_err());
        msg.body = vec![Value::ObjectPath("not/a/path".to_owned())];
        assert!(msg.validate().is_err());
        msg.body = vec![Value::Struct(vec![])];
        assert!(msg.validate().is_err());
        msg.body = vec![];
        msg.path = None;
        assert!(msg.validate().is_err());
    }

    #[test]
    fn signatures_parse_with_limits() {
        assert!(parse_signature("ssa(sv)a(sa(sv))").is_ok());
        assert!(parse_signature("a{sv}").is_ok());
        for bad in [
            "(", ")", "()", "a", "a{vs}", "a{s}", "a{sss}", "{sv}", "h", "z", "(s",
        ] {
            assert!(parse_signature(bad).is_err(), "{bad}");
        }
        assert!(parse_signature(&"a".repeat(33).add_y()).is_err());
        assert!(parse_signature(&"a".repeat(32).add_y()).is_ok());
        let deep = format!("{}y{}", "(".repeat(33), ")".repeat(33));
        assert!(parse_signature(&deep).is_err());
    }

    trait AddY {
        fn add_y(self) -> String;
    }
    impl AddY for String {
        fn add_y(mut self) -> String {
            self.push('y');
            self
        }
    }

    #[test]
    fn truncated_messages_fail() {
        let bytes = start_transient_unit().encode(2);
        for len in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    #[test]
    fn garbage_fails() {
        assert!(Message::decode(b"GET / HTTP/1.1\r\n\r\n").is_err());
        let mut bytes = hello_golden();
        bytes[3] = 2; // protocol version
        assert!(Message::decode(&bytes).is_err());
        let mut bytes = hello_golden();
        bytes[1] = 9; // message type
        assert!(Message::decode(&bytes).is_err());
        let mut bytes = hello_golden();
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message_len(&bytes).is_err());
        let mut bytes = hello_golden();
        bytes[126] = 1; // non-zero padding
        assert!(Message::decode(&bytes).is_err());
    }

    /// A fixed-seed xorshift64 generator, so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).expect("small")).expect("small")
        }
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(300);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Make a good share look like a header so the decoder gets past the first checks.
            if len >= 16 && rng.below(2) == 0 {
                buf[0] = b'l';
                buf[1] = 1 + rng.below(4) as u8;
                buf[3] = 1;
                buf[4..8].copy_from_slice(&(rng.below(64) as u32).to_le_bytes());
                buf[12..16].copy_from_slice(&(rng.below(len) as u32).to_le_bytes());
            }
            let _ = Message::decode(&buf);
        }
    }

    #[test]
    fn fuzz_mutated_messages_never_panic() {
        let mut rng = XorShift(42);
        let base = start_transient_unit().encode(5);
        for _ in 0..20_000 {
            let mut buf = base.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len());
                buf[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                buf.truncate(rng.below(buf.len()));
            }
            if let Ok((msg, used)) = Message::decode(&buf) {
                assert!(used <= buf.len());
                // Whatever decodes must encode again without panicking.
                let _ = msg.encode(1);
            }
        }
    }
}
