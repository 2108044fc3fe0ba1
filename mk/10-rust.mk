# Rust: formatting, lints, unit and integration tests (lab tests need root for network namespaces).
# ffe-lab's own tests run in test-lab. Every cargo call of make test builds the whole workspace
# (--workspace, tests picked with nextest filters): one feature resolution, so no target compiles
# the shared crates a second time with another feature set.
TEST_TARGETS += test-rust
.PHONY: test-rust
test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast -E 'not package(ffe-lab)'
