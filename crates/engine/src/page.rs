//! A source page's JSON body parsed into its records and the rest.
//!
//! Parsing is most of a page's cost, and one JSON document is parsed on one
//! thread. So the body is parsed once with the records' array left as raw
//! text (each record's bytes only scanned), and the records are then parsed
//! on every CPU (see [`parallel`]). Whatever the records path does not lead
//! through objects to (an array index, a missing key) falls back to the
//! whole body parsed as one value, with the same result.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::parallel;

/// A page body split for the reader: `body` keeps everything but the records
/// (pagination reads it), `records` are the selected records in order.
#[derive(Debug)]
pub struct Split {
    pub body: Value,
    pub records: Vec<Value>,
}

/// Parses `bytes` and selects the records at the dotted `path` (`None`: the
/// whole body is the records, and stays the body too). An array selects its
/// items, `null` or nothing selects none, any other value is one record.
pub fn split(bytes: &[u8], path: Option<&str>) -> serde_json::Result<Split> {
    let path = match path {
        Some(p) if !p.is_empty() => p,
        // The whole body is the selection: nothing to leave raw.
        Some(_) => {
            let mut body: Value = serde_json::from_slice(bytes)?;
            let records = items(body.take());
            return Ok(Split { body, records });
        }
        None => {
            let body: Value = serde_json::from_slice(bytes)?;
            let records = items(body.clone());
            return Ok(Split { body, records });
        }
    };
    let segments: Vec<&str> = path.split('.').collect();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (mut body, selected) = Walk { path: &segments }.deserialize(&mut de)?;
    de.end()?;
    let records = match selected {
        Some(Selected::Raw(raw)) => {
            parallel::chunks(&raw, |part| part.iter().map(|r| serde_json::from_str(r.get())).collect::<Vec<_>>())
                .into_iter()
                .flatten()
                .collect::<serde_json::Result<Vec<Value>>>()?
        }
        Some(Selected::Parsed(v)) => items(v),
        // Not reached through objects only: select as `Value` paths do.
        None => items(take_path(&mut body, &segments).unwrap_or(Value::Null)),
    };
    Ok(Split { body, records })
}

fn items(selected: Value) -> Vec<Value> {
    match selected {
        Value::Array(items) => items,
        Value::Null => vec![],
        other => vec![other],
    }
}

/// Moves the value at `segments` (object keys, array indexes) out of `value`.
fn take_path(value: &mut Value, segments: &[&str]) -> Option<Value> {
    segments
        .iter()
        .try_fold(value, |v, seg| match v {
            Value::Object(m) => m.get_mut(*seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        })
        .map(Value::take)
}

/// What the records path led to.
enum Selected<'de> {
    /// An array: its items unparsed.
    Raw(Vec<&'de RawValue>),
    /// Anything else, parsed.
    Parsed(Value),
}

/// Parses a value whose object keys may lead along `path` (non-empty) to the
/// records; yields the value without them and what was selected, if reached.
struct Walk<'p> {
    path: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = (Value, Option<Selected<'de>>);

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

/// The selected value itself: an array stays raw.
struct Select;

impl<'de> DeserializeSeed<'de> for Select {
    type Value = Selected<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

/// Visits for every JSON value but objects and arrays, producing the same
/// `Value` serde_json would, wrapped by `$wrap`.
macro_rules! visit_scalars {
    ($wrap:expr) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Value::Null))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(Value::Bool(v)))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(Value::Number(v.into())))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(Value::Number(v.into())))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(Number::from_f64(v).map_or(Value::Null, Value::Number)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Value::String(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(Value::String(v)))
        }
    };
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = (Value, Option<Selected<'de>>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    visit_scalars!(|v| (v, None));

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok((Value::Array(items), None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some(split) => split,
            None => return Err(serde::de::Error::custom("empty records path")),
        };
        let mut out = Map::new();
        let mut selected = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != *first {
                out.insert(key, map.next_value::<Value>()?);
            } else if rest.is_empty() {
                // The records leave a `null` in the body, as when taken out of a parsed
                // one; a repeated key replaces them, as it would replace a parsed value.
                selected = Some(map.next_value_seed(Select)?);
                out.insert(key, Value::Null);
            } else {
                let (inner, found) = map.next_value_seed(Walk { path: rest })?;
                out.insert(key, inner);
                selected = found;
            }
        }
        Ok((Value::Object(out), selected))
    }
}

impl<'de> Visitor<'de> for Select {
    type Value = Selected<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    visit_scalars!(Selected::Parsed);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Selected::Raw(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Selected::Parsed(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The split a whole parsed body gives (the reader's former way).
    fn reference(body: &Value, path: Option<&str>) -> Split {
        let mut body = body.clone();
        let selected = match path {
            None => body.clone(),
            Some("") => body.take(),
            Some(p) => take_path(&mut body, &p.split('.').collect::<Vec<_>>()).unwrap_or(Value::Null),
        };
        Split { body, records: items(selected) }
    }

    #[test]
    fn every_path_selects_what_a_parsed_body_would() {
        let many: Vec<Value> =
            (0..2000).map(|i| json!({"id": i, "name": format!("n{i}"), "x": [i, {"y": i}]})).collect();
        let bodies = [
            json!({"items": many, "next": "https://x/2", "meta": {"count": 2000}}),
            json!({"data": {"items": [1, "two", null, {"three": 3}], "cursor": 7}, "items": "outer"}),
            json!({"data": [{"items": [1, 2]}, {"items": [3]}]}),
            json!({"items": {"only": "one"}}),
            json!({"items": null, "next": null}),
            json!({"items": 1.5e300, "other": -3}),
            json!([{"a": 1}, {"a": 2}]),
            json!("scalar"),
            json!({}),
        ];
        let paths = [
            None,
            Some(""),
            Some("items"),
            Some("data.items"),
            Some("data.0.items"),
            Some("missing.items"),
            Some("meta.count"),
        ];
        for (i, body) in bodies.iter().enumerate() {
            let bytes = serde_json::to_vec(body).unwrap();
            for path in paths {
                let got = split(&bytes, path).unwrap();
                let want = reference(body, path);
                let case = format!("path {path:?} in body {i}");
                assert!(got.records == want.records, "records differ: {case}");
                assert!(got.body == want.body, "bodies differ: {case}: {} vs {}", got.body, want.body);
            }
        }
    }

    #[test]
    fn a_repeated_records_key_selects_the_last_one() {
        let got = split(br#"{"items": [1], "items": [2, 3]}"#, Some("items")).unwrap();
        assert_eq!(got.records, [json!(2), json!(3)]);
    }

    #[test]
    fn malformed_json_is_an_error_wherever_it_is() {
        for bad in [
            &br#"{"items": [1, 2"#[..],
            br#"{"items": [{"a": }], "next": 1}"#,
            br#"{"next": tru, "items": []}"#,
            br#"{"items": []} trailing"#,
        ] {
            assert!(split(bad, Some("items")).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
