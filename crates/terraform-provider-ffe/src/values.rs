//! Conversions between Terraform values and plain Rust values.

use std::collections::BTreeMap;

use tf_provider::value::Value;

pub type Str = Value<String>;
pub type Num = Value<i64>;
pub type StrList = Value<Vec<Value<String>>>;
pub type StrMap = Value<BTreeMap<String, Value<String>>>;

/// A known, non-null string, or `None`.
pub fn opt_str(v: &Str) -> Option<String> {
    v.as_ref_option().cloned()
}

pub fn str_or(v: &Str, default: &str) -> String {
    opt_str(v).unwrap_or_else(|| default.to_string())
}

pub fn list(v: &StrList) -> Vec<String> {
    v.as_ref_option()
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_ref_option().cloned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn map(v: &StrMap) -> BTreeMap<String, String> {
    v.as_ref_option()
        .map(|m| {
            m.iter()
                .filter_map(|(k, s)| s.as_ref_option().map(|s| (k.clone(), s.clone())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn to_list(items: impl IntoIterator<Item = String>) -> StrList {
    Value::Value(items.into_iter().map(Value::Value).collect())
}

pub fn to_map(items: impl IntoIterator<Item = (String, String)>) -> StrMap {
    Value::Value(
        items
            .into_iter()
            .map(|(k, v)| (k, Value::Value(v)))
            .collect(),
    )
}

/// True when the value (or anything inside a list) is not known yet at plan time.
pub fn list_unknown(v: &StrList) -> bool {
    match v {
        Value::Unknown => true,
        Value::Value(l) => l.iter().any(|s| matches!(s, Value::Unknown)),
        Value::Null => false,
    }
}

/// Expand a leading `~/` with `$HOME`.
pub use ffe_core::ssh::expand_home;
