# Herd's two entry points: `make train` (the main job) and `make test` (every test).
# Both install what is missing on a fresh Debian machine first.
SHELL := /bin/bash
APT_PACKAGES := libzmq3-dev libopenblas-dev
# Test-only, from Debian: python3-venv for the project's virtualenv, iproute2 for
# the multi-host test over network namespaces, shellcheck for the shell scripts,
# chromium for the dashboard test in a headless browser, qemu-user to run the binary
# on an emulated older CPU (systemd-analyze comes with Debian's systemd, where it is
# installed).
TEST_PACKAGES := python3-venv iproute2 shellcheck chromium qemu-user
# From PyPI, into the project's virtualenv .venv (never the system Python): the env
# host package herd_env (python/, editable) with Gymnasium and the environment
# packages the tests and examples use (MPE2: PettingZoo's particle games, whose agents' spaces differ), Pillow for `herd eval --record`, and herd_policy (python/, the loader of
# `herd export`'s files); test-only: pytest, onnxruntime (runs exported policies against Herd), Prometheus' own
# text parser for /metrics, the Kubernetes schemas. PyTorch is not installed: the export tests compare with
# committed PyTorch outputs (Tests/Fixtures/make_export_fixtures.py writes them).
VENV := .venv
PYTHON_ENV_PACKAGES := gymnasium==1.4.0 numpy==2.4.6 popgym==1.0.7 minigrid==3.2.0 pillow==11.3.0 ale-py==0.12.1 pettingzoo==1.27.0 mpe2==1.1.1
PYTHON_TEST_TOOLS := pytest==9.2.0 onnxruntime==1.32.0 prometheus-client==0.21.1 kubernetes-validate==1.37.0 tensorboard==2.21.0
SWIFT ?= swift
# The numeric kernels are Swift SIMD: on a build host with AVX2 and FMA, build every
# Swift module for it (8 floats per instruction, not 4; rollout inference measured 18%
# faster); on one with AVX-512 (F, BW, DQ, VL), for skylake-avx512 with HERD_AVX512
# defined, which compiles the 16-wide recurrent kernels (PackedGemm.swift; they run
# only where the CPU reports avx512f, the 8-wide ones elsewhere). The binary then
# needs such a CPU: HERD_PORTABLE=1 builds for baseline x86-64 instead. The choice
# lives here, not in Package.swift (a package with unsafeFlags cannot be depended on
# by version).
HAS_FLAGS = $(shell f=$$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null); ok=1; for x in $(1); do echo " $$f " | grep -qw $$x || ok=; done; echo $$ok)
ifeq ($(HERD_PORTABLE),)
ifeq ($(call HAS_FLAGS,avx512f avx512bw avx512dq avx512vl fma),1)
SWIFT_CPU := -Xswiftc -target-cpu -Xswiftc skylake-avx512 -Xswiftc -DHERD_AVX512
else ifeq ($(call HAS_FLAGS,avx2 fma),1)
SWIFT_CPU := -Xswiftc -target-cpu -Xswiftc haswell
endif
endif

.PHONY: deps test-deps venv install-packages build test train bench bench-venv bench-torch config-reference format clean

## deps: install the Debian packages Herd links against, when missing
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(APT_PACKAGES) $(TEST_PACKAGES)"
	@$(MAKE) --no-print-directory venv

## venv: the project's virtualenv: herd_env (the env host for gym:ID and pz:ID
## environments), Gymnasium, POPGym, MiniGrid, PettingZoo, MPE2 and the Python test tools
venv: $(VENV)/.installed
$(VENV)/.installed: Makefile python/pyproject.toml
	@command -v python3 >/dev/null && python3 -c 'import ensurepip' 2>/dev/null || \
	  $(MAKE) --no-print-directory install-packages PACKAGES="python3-venv"
	@[ -x $(VENV)/bin/python ] || /usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(PYTHON_ENV_PACKAGES) $(PYTHON_TEST_TOOLS)
	$(VENV)/bin/python -m pip install --quiet --no-deps -e python
	@touch $@

install-packages:
	@command -v $(SWIFT) >/dev/null || { echo "error: swift not found; install Swift 6 from swift.org" >&2; exit 1; }
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

## build: the release binary .build/release/herd
build: deps
	$(SWIFT) build -c release --product herd $(SWIFT_CPU)

## test: build once (release: numeric code is 10-50x slower in debug) and run every
## test, one at a time (processes and servers on 2 cores do not flake that way);
## HERD_REQUIRE_TOOLS=1 turns a missing test tool into a failure, not a skip; then
## run Examples/Cue (a program using Herd as a library, built with the tests; it
## fails if it does not learn) and check that Examples/Package.swift, the package a
## user would write for it, resolves against this one
test: test-deps
	cd python && ../$(VENV)/bin/python -m pytest -q
	HERD_REQUIRE_TOOLS=1 HERD_PYTHON=$(CURDIR)/$(VENV)/bin/python PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	  $(SWIFT) test -c release --no-parallel $(SWIFT_CPU)
	.build/release/cue
	$(SWIFT) package --quiet --package-path Examples --scratch-path .build/examples show-dependencies >/dev/null

## train: train a recurrent policy with a local learner and workers
train: build
	.build/release/herd train

## bench: the LSTM forward+backward benchmark against its GEMM floor
bench: build
	.build/release/herd bench lstm --threads 1

## bench-venv: a second virtualenv, .venv-bench, with PyTorch from PyPI for
## benchmarks/vs_torch.py (Herd's learner beside PyTorch's) and matplotlib for
## benchmarks/plot_curves.py; not needed by make test
bench-venv: .venv-bench/.installed
.venv-bench/.installed:
	@command -v python3 >/dev/null && python3 -c 'import ensurepip' 2>/dev/null || \
	  $(MAKE) --no-print-directory install-packages PACKAGES="python3-venv"
	@[ -x .venv-bench/bin/python ] || /usr/bin/python3 -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet torch numpy matplotlib
	@touch $@

## bench-torch: Herd beside PyTorch, every comparison the README's tables show
## (benchmarks/vs_torch_all.sh: ROUNDS, OUT, NARROW=1); keep the machine idle
bench-torch: build bench-venv
	bash benchmarks/vs_torch_all.sh

## config-reference: rewrite docs/configuration.md from TrainingConfig's doc
## comments, defaults and the environments' presets (make test fails while it is stale)
config-reference:
	HERD_WRITE_CONFIG_REFERENCE=1 $(SWIFT) test -c release --no-parallel $(SWIFT_CPU) --filter ConfigReferenceTests

## format: reformat the sources with swift-format (.swift-format)
format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build $(VENV) .venv-bench
