# Rust: formatting, lints, unit and integration tests (lab tests need root for network namespaces).
# ffe-lab's own tests run in test-lab.
TEST_TARGETS += test-rust
.PHONY: test-rust
test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build --workspace --bins
	cargo nextest run --workspace --exclude ffe-lab --no-fail-fast
