# Everything the project needs is installed and started from here; nothing by hand.
# `make demo` and `make test` work on a fresh machine (they install first).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.skillswitch-installed
# torch first, pinned: the local CPU wheel. Unpinned, pip would resolve a CUDA build (GBs).
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint format typecheck pytest soak fuzz bench bench-intents bench-dispatch bench-recruitment bench-mcp bench-tools bench-local bench-local-gpu bench-http peer-venv litellm-venv mcp-peers browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[train,local,plot,dev]'
	$(BIN)/skillswitch warmup
	@touch $(STAMP)

demo: install
	$(BIN)/skillswitch demo

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

# SKILLSWITCH_REQUIRE_BROWSER: here the playground's browser tests fail rather than skip.
pytest: install mcp-peers browser
	SKILLSWITCH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

# Fault injection, long form (make test runs 400 requests): 10,000 requests through skillswitch
# serve to experts failing at a 20% rate; prints the counts, exits 1 if any request is lost.
soak: install
	$(BIN)/python -m tests.reliability.soak --requests 10000 --fault-rate 0.2 --json bench-results/soak.json

# Fuzzing, long form (make test runs tests/fuzz bounded and derandomized): thousands of random
# examples per property (schemathesis against the OpenAPI spec, raw HTTP bodies, the config
# loader, traces, the calculator), then 10,000 raw JSON-RPC frames to skillswitch mcp over stdio
# and 10,000 to /mcp of skillswitch serve over HTTP.
fuzz: install
	SKILLSWITCH_FUZZ=1 $(BIN)/python -m pytest tests/fuzz -q -s
	$(BIN)/python -m tests.fuzz.mcp_frames --frames 10000 --json bench-results/fuzz_mcp_frames.json
	$(BIN)/python -m tests.fuzz.mcp_http_frames --frames 10000 --json bench-results/fuzz_mcp_http_frames.json

# Benchmarks are separate from the tests: they take longer and compare against peers.
bench: bench-intents bench-dispatch bench-recruitment bench-mcp bench-tools bench-local bench-http

bench-dispatch: install
	$(BIN)/python benchmarks/dispatch_overhead.py --json bench-results/dispatch_overhead.json

bench-tools: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/tool_retrieval.py --json bench-results/tool_retrieval.json

bench-mcp: install mcp-peers
	$(BIN)/python benchmarks/mcp_overhead.py --json bench-results/mcp_overhead.json

# Local backend on the CPU; the GPU script (an H200's figures in README) runs where CUDA is.
bench-local: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/local_backend.py --json bench-results/local_backend.json
	$(BIN)/python benchmarks/decode_attention.py --json bench-results/decode_attention.json

bench-local-gpu: install
	$(BIN)/python benchmarks/decode_attention.py --shape 1.5b --json bench-results/decode-gpu.json
	$(BIN)/python benchmarks/local_backend_gpu.py --part 1.5b --decode compiled --json bench-results/gpu-1.5b.json
	$(BIN)/python benchmarks/local_backend_gpu.py --part 7b --host-gb 40 --decode static --json bench-results/gpu-7b.json

bench-recruitment: install
	$(BIN)/python benchmarks/expert_recruitment.py --json bench-results/expert_recruitment.json

bench-intents: install peer-venv
	$(BIN)/python benchmarks/intent_routing.py --json bench-results/intent_routing.json

# skillswitch serve vs the LiteLLM proxy in front of one fast upstream (latency, requests/s, 1000
# held streams). Timings on a shared machine are noisy: run it when nothing else runs.
bench-http: install litellm-venv
	$(BIN)/python benchmarks/http_overhead.py --json bench-results/http_overhead.json

# semantic-router (the peer) lives in its own venv, pinned, so its dependencies never touch ours.
PEER := .venv-semrouter
peer-venv: $(PEER)/.installed
$(PEER)/.installed: benchmarks/peers/requirements-semantic-router.txt
	@test -x $(PEER)/bin/python || { rm -rf $(PEER); $(PYTHON) -m venv $(PEER); }  # a broken one is made anew
	$(PEER)/bin/python -m pip install --quiet $(TORCH)
	$(PEER)/bin/python -m pip install --quiet -r benchmarks/peers/requirements-semantic-router.txt
	@touch $@

# The LiteLLM proxy (bench-http's peer), latest from PyPI when the venv is made (the benchmark
# records its version), in its own venv so its dependencies never touch ours. Not used by tests.
LITELLM := .venv-litellm
litellm-venv: $(LITELLM)/.installed
$(LITELLM)/.installed: benchmarks/peers/requirements-litellm.txt
	@test -x $(LITELLM)/bin/python || { rm -rf $(LITELLM); $(PYTHON) -m venv $(LITELLM); }  # a broken one is made anew
	$(LITELLM)/bin/python -m pip install --quiet --upgrade -r benchmarks/peers/requirements-litellm.txt
	@touch $@

# Real MCP peers for the tests and benchmarks: third-party servers from PyPI in their own venv,
# and from npm (servers and the MCP Inspector CLI, versions pinned by tests/peers/package-lock.json).
MCP_PEERS := .venv-mcp-peers
NODE_PEERS := tests/peers/node_modules
mcp-peers: $(MCP_PEERS)/.installed $(NODE_PEERS)/.installed
$(MCP_PEERS)/.installed: tests/peers/requirements-mcp-servers.txt
	@test -x $(MCP_PEERS)/bin/python || { rm -rf $(MCP_PEERS); $(PYTHON) -m venv $(MCP_PEERS); }  # a broken one is made anew
	$(MCP_PEERS)/bin/python -m pip install --quiet -r tests/peers/requirements-mcp-servers.txt
	@touch $@
$(NODE_PEERS)/.installed: tests/peers/package.json tests/peers/package-lock.json
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the playground's end-to-end tests (Playwright drives it; Playwright's
# own browser downloads are never used). Needs root, as on the CI and dev machines.
CHROMIUM := /usr/bin/chromium
browser: $(CHROMIUM)
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

clean:
	rm -rf $(VENV) $(PEER) $(LITELLM) $(MCP_PEERS) $(NODE_PEERS) .cache .pytest_cache .mypy_cache .ruff_cache
