# Two entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned and installed first: a loose spec would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/facerecon demo --out out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/facerecon bench render

# Debian's chromium + chromedriver for the browser tests of `facerecon serve` and of face.glb in
# <model-viewer> (skipped without them). Installs only what is missing, and only as root with apt-get; otherwise says so.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "could not install chromium; the browser test will be skipped"; \
	else \
		echo "not root or no apt-get: install chromium and chromium-driver to run the browser test"; \
	fi
	@# <model-viewer> (npm, Apache-2.0) for the export viewer test, into the ignored .venv folder
	@if [ -f $(VENV)/model-viewer/package/dist/model-viewer.min.js ]; then \
		echo "model-viewer is there"; \
	elif command -v npm >/dev/null; then \
		mkdir -p $(VENV)/model-viewer && cd $(VENV)/model-viewer && npm pack -s @google/model-viewer@4.4.0 >/dev/null \
			&& tar xzf google-model-viewer-4.4.0.tgz || echo "could not fetch model-viewer; the viewer test will be skipped"; \
	else \
		echo "no npm: the export viewer test will be skipped"; \
	fi

clean:
	rm -rf out .pytest_cache
