//! The operations of the OpenAPI document.

use axum::http::Method;
use serde_json::Value;

/// Every HTTP method a path item may hold.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The OpenAPI document as JSON.
pub fn doc() -> Value {
    serde_json::to_value(api::openapi()).unwrap()
}

/// One operation of the document.
pub struct Operation {
    /// Lower case, as the document has it.
    pub method: String,
    /// The path template.
    pub path: String,
    /// The least role its bearer requirement names; `None` when it has no security.
    pub role: Option<String>,
    pub op: Value,
}

impl Operation {
    pub fn http_method(&self) -> Method {
        self.method.to_uppercase().parse().unwrap()
    }

    /// True for calls that may change the agent's state.
    pub fn changes(&self) -> bool {
        self.method != "get"
    }
}

/// Every operation of `doc`, checking each has at most one bearer requirement naming one role.
pub fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            let role = op.get("security").map(|s| {
                let [req] = s.as_array().unwrap().as_slice() else {
                    panic!("{method} {path}: one requirement expected: {s}")
                };
                let req = req.as_object().unwrap();
                assert_eq!(req.len(), 1, "{method} {path}: {s}");
                let [role] = req["bearer"].as_array().unwrap().as_slice() else {
                    panic!("{method} {path}: one role expected: {s}")
                };
                role.as_str().unwrap().to_string()
            });
            out.push(Operation {
                method: method.clone(),
                path: path.clone(),
                role,
                op: op.clone(),
            });
        }
    }
    out
}
