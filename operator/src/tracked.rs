//! A YAML document read into JSON while noting its duplicate keys, with their paths.
//!
//! kubectl turns YAML into JSON keeping the last of repeated keys, so the API server accepts them; but a repeated key
//! silently drops a value, so `validate` reports each one by path, per document. The parser's own duplicate-key
//! error would stop the whole file at the first one and name only a line. The value keeps the last occurrence, as
//! kubectl's conversion does.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// One document: its JSON value and the paths (`spec.slo.p99LatencyMs`) of keys given more than once.
#[derive(Debug, Default)]
pub struct Tracked {
    pub value: Value,
    pub duplicates: Vec<String>,
}

impl<'de> Deserialize<'de> for Tracked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut duplicates = Vec::new();
        let value = Node { path: String::new(), duplicates: &mut duplicates }.deserialize(deserializer)?;
        Ok(Tracked { value, duplicates })
    }
}

/// Parses every document of a multi-document YAML text. Duplicate keys are passed through to [`Tracked`] (the
/// default policy would fail the whole file); empty documents are skipped, as `serde_saphyr::from_multiple` does.
pub fn from_multiple(text: &str) -> Result<Vec<Tracked>, serde_saphyr::Error> {
    let options = serde_saphyr::options! { duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins };
    serde_saphyr::from_multiple_with_options(text, options)
}

/// Seed for one node at `path`; records duplicate keys of the mappings below it.
struct Node<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Scalars go through `serde_json::Value`'s own `Deserialize`, so numbers, nulls and non-finite floats come out
/// exactly as `serde_saphyr::from_multiple::<Value>` made them before.
fn scalar<'de, T: IntoDeserializer<'de, E>, E: de::Error>(v: T) -> Result<Value, E> {
    Value::deserialize(v.into_deserializer())
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        scalar(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Node { path, duplicates } = self;
        let mut items = Vec::new();
        loop {
            let item = Node { path: format!("{path}[{}]", items.len()), duplicates: &mut *duplicates };
            match seq.next_element_seed(item)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Node { path, duplicates } = self;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if object.contains_key(&key) {
                duplicates.push(path.clone());
            }
            let value = map.next_value_seed(Node { path, duplicates: &mut *duplicates })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_reported_by_path_and_the_last_value_wins() {
        let text = "a: 1\nb:\n  c: 1\n  c: 2\nl:\n  - x: 1\n    x: 2\na: 3\n";
        let docs = from_multiple(text).expect("valid YAML");
        assert_eq!(docs[0].duplicates, ["b.c", "l[0].x", "a"]);
        assert_eq!(docs[0].value, serde_json::json!({"a": 3, "b": {"c": 2}, "l": [{"x": 2}]}));
    }

    #[test]
    fn keys_from_a_merge_are_not_duplicates() {
        let text = "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n";
        let docs = from_multiple(text).expect("valid YAML");
        assert_eq!(docs[0].duplicates, Vec::<String>::new());
        assert_eq!(docs[0].value["d"], serde_json::json!({"x": 3, "y": 2}));
    }

    #[test]
    fn values_match_plain_json_parsing() {
        let text = "i: -3\nu: 18446744073709551615\nf: 1.5\ns: '1'\nn: ~\nb: true\nl: [1, a]\n---\n---\nx: 1\n";
        let tracked: Vec<Value> = from_multiple(text).expect("valid YAML").into_iter().map(|t| t.value).collect();
        let plain: Vec<Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
        assert_eq!(tracked, plain);
    }
}
