//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed generator commands
//! send (`kubectl create namespace|configmap|secret|serviceaccount`): the `k8s\0` envelope
//! (`runtime.Unknown`) around Namespace, ConfigMap, Secret and ServiceAccount with their
//! ObjectMeta. Anything else is answered 415, as before.

use serde_json::{Map, Value, json};

use crate::machinery::error::ApiError;

/// One decoded protobuf field.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Iterate the (number, field) pairs of a message; None on malformed input.
fn fields(mut buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (head, tail) = (buf.get(..len)?, buf.get(len..)?);
                buf = tail;
                Field::Bytes(head)
            }
            1 => {
                buf = buf.get(8..)?;
                Field::Varint(0)
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Varint(0)
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn text(b: &[u8]) -> Option<Value> {
    std::str::from_utf8(b).ok().map(|s| json!(s))
}

/// A `map<string, string>` (or bytes values, base64-encoded) entry into `map`.
fn map_entry(entry: &[u8], map: &mut Map<String, Value>, bytes_values: bool) -> Option<()> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(entry)? {
        match (n, f) {
            (1, Field::Bytes(b)) => k = std::str::from_utf8(b).ok()?.to_string(),
            (2, Field::Bytes(b)) if bytes_values => v = json!(base64(b)),
            (2, Field::Bytes(b)) => v = text(b)?,
            _ => {}
        }
    }
    map.insert(k, v);
    Some(())
}

fn object_meta(buf: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Bytes(b)) => _ = meta.insert("name".into(), text(b)?),
            (2, Field::Bytes(b)) => _ = meta.insert("generateName".into(), text(b)?),
            (3, Field::Bytes(b)) => _ = meta.insert("namespace".into(), text(b)?),
            (11, Field::Bytes(b)) => map_entry(b, &mut labels, false)?,
            (12, Field::Bytes(b)) => map_entry(b, &mut annotations, false)?,
            (14, Field::Bytes(b)) => finalizers.push(text(b)?),
            _ => {}
        }
    }
    // proto2 optional strings arrive even when empty; JSON clients omit them.
    meta.retain(|_, v| v.as_str() != Some(""));
    for (key, value) in [("labels", labels), ("annotations", annotations)] {
        if !value.is_empty() {
            meta.insert(key.into(), Value::Object(value));
        }
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

/// Decode the body of a supported kind into the JSON object the rest of the server expects.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = || ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf");
    let inner = body.strip_prefix(b"k8s\0").ok_or_else(unsupported)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(inner).ok_or_else(unsupported)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (m, g) in fields(tm).ok_or_else(unsupported)? {
                    match (m, g) {
                        (1, Field::Bytes(b)) => api_version = String::from_utf8_lossy(b).into(),
                        (2, Field::Bytes(b)) => kind = String::from_utf8_lossy(b).into(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut obj = decode_kind(&kind, raw).ok_or_else(unsupported)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn decode_kind(kind: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = Map::new();
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(b)) => _ = obj.insert("metadata".into(), object_meta(b)?),
            ("Namespace", 2, Field::Bytes(b)) => {
                let fins: Vec<Value> = fields(b)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => text(s),
                        _ => None,
                    })
                    .collect();
                obj.insert("spec".into(), json!({"finalizers": fins}));
            }
            ("ConfigMap", 2, Field::Bytes(b)) => map_entry(b, &mut data, false)?,
            ("ConfigMap", 3, Field::Bytes(b)) => map_entry(b, &mut binary, true)?,
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                _ = obj.insert("immutable".into(), json!(v != 0))
            }
            ("Secret", 2, Field::Bytes(b)) => map_entry(b, &mut data, true)?,
            ("Secret", 3, Field::Bytes(b)) => _ = obj.insert("type".into(), text(b)?),
            ("Secret", 4, Field::Bytes(b)) => map_entry(b, &mut string_data, false)?,
            ("ServiceAccount", 4, Field::Varint(v)) => {
                _ = obj.insert("automountServiceAccountToken".into(), json!(v != 0))
            }
            ("Namespace" | "ConfigMap" | "Secret" | "ServiceAccount", _, _) => {}
            _ => return None,
        }
    }
    for (key, value) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !value.is_empty() {
            obj.insert(key.into(), Value::Object(value));
        }
    }
    Some(Value::Object(obj))
}

/// Standard base64 with padding (Secret data and ConfigMap binaryData are base64 in JSON).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            field(1, b"cm1"),
            field(11, &[field(1, b"app"), field(2, b"x")].concat()),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm1", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
        assert!(decode(b"k8s\0\xff").is_err());
        assert!(decode(b"{}").is_err());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
