# twilio-signature: `make demo` and `make test` are the two commands (see README.md).
#
# Each area keeps its targets in mk/<area>.mk and appends its suite to TEST_TARGETS, so `make test`
# runs every suite that exists, in the order the files are read (rust first).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath .)
CARGO ?= cargo
# Tools the build installs for itself (cbindgen, cargo-fuzz) live here, not in the user's ~/.cargo.
TOOLS := $(ROOT)/.tools
export PATH := $(TOOLS)/bin:$(PATH)

TEST_TARGETS :=

include mk/rust.mk
include $(filter-out mk/rust.mk,$(sort $(wildcard mk/*.mk)))

.PHONY: help test
help:
	@echo "make demo    build everything and show a signed and a forged webhook hitting a real app"
	@echo "make test    set up (venv, tools) and run every test suite: $(TEST_TARGETS)"
	@echo "make bench   benchmarks (ratios against the official SDKs and the raw HMAC)"
	@echo "make fuzz    run every fuzz target (FUZZ_SECONDS each)"
	@echo "make header  regenerate include/twilio_signature.h"

test: $(TEST_TARGETS)
	@echo "make test: all suites passed ($(TEST_TARGETS))"
