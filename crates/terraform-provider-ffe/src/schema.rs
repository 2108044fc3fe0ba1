//! Small builders that keep resource schemas readable.

use std::collections::HashMap;

use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description};

pub fn attr(t: AttributeType, c: AttributeConstraint, desc: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::plain(desc.to_string()),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

pub fn secret(t: AttributeType, c: AttributeConstraint, desc: &str) -> Attribute {
    Attribute {
        sensitive: true,
        ..attr(t, c, desc)
    }
}

pub fn str_list() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

pub fn str_map() -> AttributeType {
    AttributeType::Map(Box::new(AttributeType::String))
}

/// `list(object({ name = string, address = string }))`
pub fn node_list() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::Object(HashMap::from([
        ("name".to_string(), AttributeType::String),
        ("address".to_string(), AttributeType::String),
        // null: the provider's ssh_port (set it to the ffe_host's ssh_port)
        ("ssh_port".to_string(), AttributeType::Number),
    ]))))
}
