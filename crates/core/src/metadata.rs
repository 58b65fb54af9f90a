//! Keboola's table and column metadata ("typed tables"). Output manifests
//! give it in two forms — legacy (`metadata: [{key, value}]`,
//! `column_metadata: {col: [{key, value}]}`) and newer (`schema: [{name,
//! data_type: {base: {type, length, default}}, nullable, description,
//! metadata}]`, `table_metadata: {key: value}`, `description`) — and Gantry
//! keeps one canonical form on each table version, the legacy one, which
//! every reader of input manifests understands:
//!
//! ```json
//! {"metadata": [{"key": "KBC.description", "value": "..."}],
//!  "column_metadata": {"id": [{"key": "KBC.datatype.basetype", "value": "INTEGER"}]}}
//! ```
//!
//! A later load updates keys and keeps the others (metadata belongs to the
//! table, as in Keboola).

use serde_json::{json, Map, Value};

pub const BASETYPE: &str = "KBC.datatype.basetype";
pub const LENGTH: &str = "KBC.datatype.length";
pub const DEFAULT: &str = "KBC.datatype.default";
pub const NULLABLE: &str = "KBC.datatype.nullable";
pub const DESCRIPTION: &str = "KBC.description";

type Entries = Vec<(String, Value)>;

fn push(list: &mut Entries, key: &str, value: Value) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

/// `[{key, value}]` or `{key: value}` into entries; anything else is skipped.
fn entries_of(v: &Value, out: &mut Entries) {
    match v {
        Value::Array(items) => {
            for item in items {
                if let (Some(k), Some(v)) =
                    (item.get("key").and_then(Value::as_str), item.get("value"))
                {
                    push(out, k, v.clone());
                }
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                push(out, k, v.clone());
            }
        }
        _ => {}
    }
}

struct Parsed {
    table: Entries,
    columns: Vec<(String, Entries)>,
}

impl Parsed {
    fn column(&mut self, name: &str) -> &mut Entries {
        if let Some(i) = self.columns.iter().position(|(n, _)| n == name) {
            return &mut self.columns[i].1;
        }
        self.columns.push((name.to_string(), Vec::new()));
        let last = self.columns.len() - 1;
        &mut self.columns[last].1
    }

    fn into_value(self) -> Option<Value> {
        let columns: Vec<_> = self
            .columns
            .into_iter()
            .filter(|(_, e)| !e.is_empty())
            .collect();
        if self.table.is_empty() && columns.is_empty() {
            return None;
        }
        let list = |e: Entries| -> Value {
            Value::Array(
                e.into_iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect(),
            )
        };
        let mut cols = Map::new();
        for (name, e) in columns {
            cols.insert(name, list(e));
        }
        Some(json!({"metadata": list(self.table), "column_metadata": cols}))
    }
}

fn parse(v: Option<&Value>) -> Parsed {
    let mut p = Parsed {
        table: Vec::new(),
        columns: Vec::new(),
    };
    let Some(v) = v else { return p };
    if let Some(m) = v.get("metadata") {
        entries_of(m, &mut p.table);
    }
    if let Some(Value::Object(cols)) = v.get("column_metadata") {
        for (name, e) in cols {
            entries_of(e, p.column(name));
        }
    }
    p
}

/// The metadata an output manifest (or a spec's output mapping, which has
/// the same keys) gives, in the canonical form; `None` when it gives none.
pub fn from_manifest(mf: &Map<String, Value>) -> Option<Value> {
    let mut p = Parsed {
        table: Vec::new(),
        columns: Vec::new(),
    };
    if let Some(m) = mf.get("metadata") {
        entries_of(m, &mut p.table);
    }
    if let Some(m) = mf.get("table_metadata") {
        entries_of(m, &mut p.table);
    }
    if let Some(d) = mf.get("description").filter(|d| d.is_string()) {
        push(&mut p.table, DESCRIPTION, d.clone());
    }
    if let Some(Value::Object(cols)) = mf.get("column_metadata") {
        for (name, e) in cols {
            entries_of(e, p.column(name));
        }
    }
    if let Some(Value::Array(schema)) = mf.get("schema") {
        for col in schema {
            let Some(name) = col.get("name").and_then(Value::as_str) else {
                continue;
            };
            let entries = p.column(name);
            if let Some(base) = col.get("data_type").and_then(|d| d.get("base")) {
                for (field, key) in [("type", BASETYPE), ("length", LENGTH), ("default", DEFAULT)] {
                    if let Some(v) = base.get(field).filter(|v| !v.is_null()) {
                        push(entries, key, v.clone());
                    }
                }
            }
            if let Some(n) = col.get("nullable").filter(|v| !v.is_null()) {
                push(entries, NULLABLE, n.clone());
            }
            if let Some(d) = col.get("description").filter(|v| v.is_string()) {
                push(entries, DESCRIPTION, d.clone());
            }
            if let Some(m) = col.get("metadata") {
                entries_of(m, entries);
            }
        }
    }
    p.into_value()
}

/// `new`'s keys over `base`'s (both canonical).
pub fn merge(base: Option<&Value>, new: Option<&Value>) -> Option<Value> {
    let mut p = parse(base);
    let n = parse(new);
    for (k, v) in n.table {
        push(&mut p.table, &k, v);
    }
    for (name, entries) in n.columns {
        let col = p.column(&name);
        for (k, v) in entries {
            push(col, &k, v);
        }
    }
    p.into_value()
}

/// Canonical metadata restricted to `columns` (what an input mapping
/// staged): `(table metadata, column metadata)` for an input manifest.
pub fn for_input(meta: Option<&Value>, columns: &[String]) -> (Value, Value) {
    let table = meta
        .and_then(|m| m.get("metadata"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut cols = Map::new();
    if let Some(Value::Object(all)) = meta.and_then(|m| m.get("column_metadata")) {
        for c in columns {
            if let Some(e) = all.get(c) {
                cols.insert(c.clone(), e.clone());
            }
        }
    }
    (table, Value::Object(cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn legacy_and_schema_manifests_give_the_same_form() {
        let legacy = from_manifest(&obj(json!({
            "metadata": [{"key": "KBC.description", "value": "orders"}],
            "column_metadata": {"id": [{"key": BASETYPE, "value": "INTEGER"}, {"key": NULLABLE, "value": false}]},
        })))
        .expect("some");
        let schema = from_manifest(&obj(json!({
            "description": "orders",
            "schema": [{"name": "id", "data_type": {"base": {"type": "INTEGER", "length": null}}, "nullable": false},
                       {"name": "note", "nullable": null}],
        })))
        .expect("some");
        assert_eq!(legacy, schema);
        assert_eq!(
            schema,
            json!({"metadata": [{"key": "KBC.description", "value": "orders"}],
                   "column_metadata": {"id": [{"key": BASETYPE, "value": "INTEGER"}, {"key": NULLABLE, "value": false}]}})
        );
        assert_eq!(
            from_manifest(&obj(json!({"destination": "out.c-a.b"}))),
            None
        );
    }

    #[test]
    fn later_loads_update_keys_and_keep_the_rest() {
        let a = json!({"metadata": [{"key": "k1", "value": "a"}],
                       "column_metadata": {"id": [{"key": BASETYPE, "value": "STRING"}]}});
        let b = json!({"metadata": [{"key": "k2", "value": "b"}],
                       "column_metadata": {"id": [{"key": BASETYPE, "value": "INTEGER"}],
                                           "x": [{"key": BASETYPE, "value": "DATE"}]}});
        assert_eq!(
            merge(Some(&a), Some(&b)),
            Some(
                json!({"metadata": [{"key": "k1", "value": "a"}, {"key": "k2", "value": "b"}],
                        "column_metadata": {"id": [{"key": BASETYPE, "value": "INTEGER"}],
                                            "x": [{"key": BASETYPE, "value": "DATE"}]}})
            )
        );
        assert_eq!(merge(Some(&a), None), Some(a.clone()));
        assert_eq!(merge(None, None), None);
        let (table, cols) = for_input(Some(&b), &["x".to_string()]);
        assert_eq!(table, json!([{"key": "k2", "value": "b"}]));
        assert_eq!(cols, json!({"x": [{"key": BASETYPE, "value": "DATE"}]}));
    }
}
