# meshguard.egress developer entry points (see README.md)
.PHONY: setup test run teardown lint bench mutation
setup:
	bash hack/setup.sh
test:
	bash hack/test.sh
run:
	bash hack/run.sh
teardown:
	bash hack/run.sh playbooks/teardown.yml
lint:
	bash hack/lint.sh
bench:
	.venv/bin/python benchmarks/run.py
mutation:
	.venv/bin/python hack/mutation.py
