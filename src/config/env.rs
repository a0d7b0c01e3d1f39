//! The `INNKEEP_*` environment overlay, derived from the same serde definition as the TOML
//! keys: there is no second list of keys to keep in step.
//!
//! A variable names a key by its dotted path, upper-cased, with `_` for the dots and the
//! `INNKEEP_` prefix: `payment.sandbox.fail_rate` is `INNKEEP_PAYMENT_SANDBOX_FAIL_RATE`.
//! Which prefixes are tables (`payment`, `payment.sandbox`, `limits`, ...) is read off the
//! default configuration serialized to TOML, so a new section or key is reachable from
//! the environment as soon as it is in the struct. The file and the variables are merged
//! into one tree and deserialized once, through the struct's own `Deserialize`: the same
//! unknown-key check (`deny_unknown_fields`), the same types. A variable's text is parsed
//! as whatever type its key asks for, so a numeric secret stays a string and a number
//! given as text is a number.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

/// A node of the merged configuration: a table, a value from the file, or a variable's
/// text.
#[derive(Debug)]
pub(super) enum Node {
    /// A table (the root, a section), from the file, the variables or both.
    Table(BTreeMap<String, Node>),
    /// A value the file gave (not a table).
    File(toml::Value),
    /// A variable's text; its name is kept for error messages.
    Env {
        /// The variable's name.
        name: String,
        /// Its value, as given.
        text: String,
    },
}

impl Node {
    /// The file's table as a tree; a nested table becomes a [`Node::Table`] so variables
    /// can be merged into it.
    pub(super) fn from_file(table: toml::Table) -> Node {
        Node::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    let node = match v {
                        toml::Value::Table(t) => Node::from_file(t),
                        other => Node::File(other),
                    };
                    (k, node)
                })
                .collect(),
        )
    }

    /// Sets the key variable `name` (without the prefix, `rest`) names to its text. `tables`
    /// is the default configuration as TOML: where it has a table, a prefix of `rest`
    /// descends into it.
    pub(super) fn set_env(&mut self, tables: &toml::Table, name: &str, rest: &str, text: &str) {
        let rest = rest.to_ascii_lowercase();
        let (mut node, mut shape, mut rest) = (self, tables, rest.as_str());
        loop {
            // The longest table name that prefixes the rest, then `_`, descends.
            let child = shape
                .iter()
                .filter_map(|(k, v)| Some((k, v.as_table()?)))
                .filter(|(k, _)| {
                    rest.len() > k.len() + 1
                        && rest.starts_with(k.as_str())
                        && rest.as_bytes()[k.len()] == b'_'
                })
                .max_by_key(|(k, _)| k.len());
            let Some((key, child_shape)) = child else {
                break;
            };
            let Node::Table(map) = node else { return };
            node = map
                .entry(key.clone())
                .or_insert_with(|| Node::Table(BTreeMap::new()));
            (shape, rest) = (child_shape, &rest[key.len() + 1..]);
        }
        // A table the file gave a non-table value has already failed the file's own check.
        if let Node::Table(map) = node {
            map.insert(
                rest.to_owned(),
                Node::Env {
                    name: name.to_owned(),
                    text: text.to_owned(),
                },
            );
        }
    }
}

/// A deserialization error, with the variable it concerns when one does.
#[derive(Debug)]
pub(super) struct EnvError {
    /// The variable at fault; `None` when the error is not about one.
    pub(super) name: Option<String>,
    /// What is wrong.
    pub(super) message: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EnvError {}

impl de::Error for EnvError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            name: None,
            message: msg.to_string(),
        }
    }
}

impl EnvError {
    /// `self`, blamed on variable `name` unless it already names one.
    fn blame(mut self, name: &str) -> Self {
        self.name.get_or_insert_with(|| name.to_owned());
        self
    }
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = EnvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        match self {
            Node::Table(map) => visitor.visit_map(Entries {
                entries: map.into_iter(),
                value: None,
            }),
            Node::File(v) => v.deserialize_any(visitor).map_err(de::Error::custom),
            Node::Env { name, text } => EnvText { text: &text }
                .deserialize_any(visitor)
                .map_err(|e| e.blame(&name)),
        }
    }

    /// An empty variable unsets an optional key (so the environment can switch off what
    /// a file turned on); anything else is the value.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        match &self {
            Node::Env { text, .. } if text.trim().is_empty() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        match self {
            Node::File(v) => v
                .deserialize_struct(name, fields, visitor)
                .map_err(de::Error::custom),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        match self {
            Node::File(v) => v
                .deserialize_enum(name, variants, visitor)
                .map_err(de::Error::custom),
            Node::Env { name, text } => visitor
                .visit_enum(text.trim().into_deserializer())
                .map_err(|e: EnvError| e.blame(&name)),
            table => table.deserialize_any(visitor),
        }
    }

    /// Numbers, booleans and the rest: a variable's text is parsed as the key's type.
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_u64(v), visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_u32(v), visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_u16(v), visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_u8(v), visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_i64(v), visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_i32(v), visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_f64(v), visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.leaf(|t, v| t.deserialize_bool(v), visitor)
    }

    forward_to_deserialize_any! {
        i8 i16 i128 u128 f32 char str string bytes byte_buf unit unit_struct newtype_struct
        seq tuple tuple_struct map identifier ignored_any
    }
}

impl Node {
    /// A variable's text through `parse`; a file value or a table as itself.
    fn leaf<'de, V: Visitor<'de>>(
        self,
        parse: impl FnOnce(EnvText<'_>, V) -> Result<V::Value, EnvError>,
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        match self {
            Node::Env { name, text } => {
                parse(EnvText { text: &text }, visitor).map_err(|e| e.blame(&name))
            }
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }
}

/// A table's entries for a struct's visitor.
struct Entries {
    entries: std::collections::btree_map::IntoIter<String, Node>,
    /// The value of the key just given.
    value: Option<Node>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = EnvError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, EnvError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        // An unknown key from a variable is the variable's fault (the struct refuses it).
        let blame = match &node {
            Node::Env { name, .. } => Some(name.clone()),
            _ => None,
        };
        self.value = Some(node);
        let key: de::value::StringDeserializer<EnvError> = key.into_deserializer();
        seed.deserialize(key).map(Some).map_err(|e| match blame {
            Some(name) => e.blame(&name),
            None => e,
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, EnvError> {
        match self.value.take() {
            Some(node) => seed.deserialize(node),
            None => Err(de::Error::custom("value asked for before its key")),
        }
    }
}

/// A variable's text, parsed as the type asked for.
struct EnvText<'a> {
    text: &'a str,
}

impl EnvText<'_> {
    fn number<T: std::str::FromStr>(&self) -> Result<T, EnvError> {
        self.text
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("{:?} is not a valid number", self.text)))
    }
}

impl<'de> de::Deserializer<'de> for EnvText<'_> {
    type Error = EnvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_str(self.text)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u64(self.number()?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u32(self.number()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u16(self.number()?)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u8(self.number()?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_i64(self.number()?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_i32(self.number()?)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_f64(self.number()?)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        match self.text.trim() {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(de::Error::custom(format!(
                "{:?} is not true or false",
                self.text
            ))),
        }
    }

    forward_to_deserialize_any! {
        i8 i16 i128 u128 f32 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}
