# ffe-lab: the test lab (network-namespace hosts with real OpenSSH) and the k3s stand-in.
# Needs root. Builds the stand-in binary first (the lab copies target/debug/k3s-standin), and the
# provider (tests/vault_ha.rs runs target/debug/terraform-provider-ffe with real terraform).
# Afterwards, proves nothing of this run is left behind (slots, namespaces, bridges).
TEST_TARGETS += test-lab
.PHONY: test-lab
test-lab:
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast -E 'package(ffe-lab)'
	@for s in /run/ffe-lab/slots/*/owner.json; do \
	  [ -e "$$s" ] || continue; \
	  pid=$$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$$s"); \
	  if [ -n "$$pid" ] && ! kill -0 "$$pid" 2>/dev/null; then \
	    echo "test-lab: stale lab slot $$s (owner $$pid is dead)"; exit 1; fi; \
	done
	@echo "test-lab: ok"
