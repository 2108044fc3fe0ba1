# The YAML examples of the runbooks (docs/examples/*.yaml, shown in docs/ byte for byte: see
# crates/ffe-validate/tests/doc_examples.rs): each validated against Kubernetes' schemas and the
# CRDs the full plan delivers (test-manifests writes them), at both ends of the supported minors.
TEST_TARGETS += test-doc-examples
.PHONY: test-doc-examples
DOC_YAML_EXAMPLES := $(sort $(wildcard $(ROOT)/docs/examples/*.yaml))

test-doc-examples: test-manifests
	cargo build -q --workspace --bins
	for f in $(DOC_YAML_EXAMPLES); do \
	  for k in $(MANIFESTS_KUBE); do \
	    target/debug/ffe-validate manifests --kube-version $$k --crds $(DELIVERED_CRDS) - < $$f \
	      || { echo "test-doc-examples: $${f#$(ROOT)/} invalid for Kubernetes $$k"; exit 1; }; \
	  done; \
	done
	@echo "test-doc-examples: $(words $(DOC_YAML_EXAMPLES)) examples valid"
