# Two commands: `make run` and `make test`. Both set everything up first.
VENV := .venv
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

$(TEST_STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh test
	touch $@ $(STAMP)

run: $(STAMP)
	$(VENV)/bin/joey serve

# pytest exits 5 when it collected no test; make treats that as a failure like any other.
test: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest

bench: $(TEST_STAMP)
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf $(VENV) build .pytest_cache
