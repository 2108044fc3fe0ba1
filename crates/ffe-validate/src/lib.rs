//! ffe-validate
