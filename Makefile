# Every target bootstraps .venv idempotently: a fresh clone needs only `make demo` or `make test`.
PY      := .venv/bin/python
STAMP   := .venv/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: demo test bench browser clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned: pip takes them from this machine's local wheel cache.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m torchrepro.cli train configs/driving_synthetic.yaml

# Tests run in TEST_WORKERS processes (pytest-xdist), one BLAS thread each: most tests are small and
# single-threaded, so two workers use both cores where one process with two threads used about one.
TEST_WORKERS ?= 2
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS)

# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright; nothing downloads a browser.
browser:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf .venv

# Fashion-MNIST's original IDX files (configs/simclr_fashion_mnist.yaml reads them from
# /usr/share/datasets/fashion-mnist/), from Debian's dataset-fashion-mnist; installed only when missing.
.PHONY: fashion-mnist
fashion-mnist:
	test -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz || \
		{ apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }
