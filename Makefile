# Makefile -- one non-recursive build for the referral gateway.
#
# Flavours build into their own folder so sanitizer objects never mix:
#   make            build/fhir-gateway
#   make check      build/check (AddressSanitizer + UndefinedBehaviorSanitizer), whole suite
# `make help` lists the targets.

B       ?= build
MAKEFLAGS += --no-print-directory
CC      ?= cc
PKGS    := libmicrohttpd gnutls jansson libxml-2.0 openssl sqlite3 libpq
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
OPT     ?= -O2 -g
GW_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -Igateway \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
GW_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
PYTHON  ?= /usr/bin/python3
PYTEST  ?= $(PYTHON) -m pytest
FHIR_DEFS := build/fhir-defs
Q       ?= @

MODULES := util config auth http fhir mapping hl7v2 store audit ris notify rest
SRC     := $(foreach m,$(MODULES),$(wildcard gateway/$(m)/*.c))
OBJ     := $(SRC:%.c=$(B)/%.o)
modobj   = $(filter $(addprefix $(B)/gateway/,$(addsuffix /%,$(1))),$(OBJ))

# Each unit test binary links only the modules it names (and util).
UNIT_DEPS_util    := util
UNIT_DEPS_config  := util config
UNIT_DEPS_auth    := util config auth
UNIT_DEPS_http    := util config auth http
UNIT_DEPS_hl7v2   := util hl7v2
UNIT_DEPS_fhir    := util fhir
UNIT_DEPS_mapping := util mapping
UNIT_DEPS_store   := util store
UNIT_DEPS_pg      := util store
UNIT_DEPS_writer  := util store
UNIT_DEPS_audit   := util config auth store audit
UNIT_DEPS_search  := util fhir store
UNIT_DEPS_ris     := util config auth http fhir mapping hl7v2 store audit ris
UNIT_DEPS_notify  := util config auth store audit fhir notify
UNIT_DEPS_rest    := util config auth http fhir mapping hl7v2 store audit ris notify rest
UNIT_DEPS_torture := util hl7v2 fhir mapping
UNIT_TESTS := $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS  := $(UNIT_TESTS:%=$(B)/tests/unit/test_%)

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
FUZZ_SECONDS ?= 60
HAVE_CLANG   := $(shell command -v clang >/dev/null 2>&1 && echo yes)

.PHONY: all deps deps-test deps-model deps-profile run test check unit integration tools-test \
        browser certs clean help model docs lint fmt fmt-check bench bench-subscriptions \
        bench-scale fuzz fuzz-bins fuzz-replay fuzz-short profile
all: $(B)/fhir-gateway

help:
	@echo "make            build build/fhir-gateway"
	@echo "make run        install packages, build, make dev certificates, serve on SQLite"
	@echo "make test       install test packages, build, run unit, integration and browser tests"
	@echo "make check      the whole suite under AddressSanitizer + UBSan"
	@echo "make certs      development PKI in certs/dev/"
	@echo "make bench      load generator against the gateway and a bare baseline"
	@echo "make bench STORE=postgresql  the same on PostgreSQL, one and two instances"
	@echo "make bench-subscriptions  notification latency under load"
	@echo "make bench-scale  the gateway at 0 and at 1,000,000 stored referrals (var/bench-scale/)"
	@echo "make profile    instructions per referral, per thread and function (callgrind)"
	@echo "make model      regenerate gateway/fhir/model_gen.c from the pinned FHIR R4 package"
	@echo "make docs       regenerate the option table in docs/OPERATIONS.md"

deps:
	@tools/deps.sh run

deps-test:
	@tools/deps.sh test

deps-model:
	@tools/deps.sh model

deps-profile:
	@tools/deps.sh profile

$(B)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(GW_CFLAGS) -MMD -MP -c $< -o $@

$(B)/fhir-gateway: $(B)/gateway/main.o $(OBJ)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(GW_LIBS)

$(B)/tests/unit/test_%: $(B)/tests/unit/test_%.o $(B)/tests/unit/check.o
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_$*) -o $@ $^ $(GW_LIBS)

# OOM torture: the gateway's allocations go through the test's wrappers.
LDFLAGS_torture := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup

# Second expansion: a unit binary depends on the objects of its modules.
.SECONDARY:
.SECONDEXPANSION:
$(UNIT_BINS): $$(call modobj,$$(UNIT_DEPS_$$(patsubst test_%,%,$$(@F))))

certs: certs/dev/ca.pem
certs/dev/ca.pem: certs/make-dev-pki.sh
	@certs/make-dev-pki.sh certs/dev

run: deps all certs
	@mkdir -p var
	$(B)/fhir-gateway serve

# The unit tests get a throwaway PostgreSQL server (tools/pgtest.sh: GW_TEST_PG_URL);
# the integration suite starts its own (a fixture), and fails when it cannot.
unit: $(UNIT_BINS)
	@tools/pgtest.sh exec tools/run-unit.sh $(UNIT_BINS)

integration: $(B)/fhir-gateway certs
	GW_PG_REQUIRED=1 GATEWAY_BIN=$(abspath $(B)/fhir-gateway) $(PYTEST) -q tests/integration

# The committed generated files and doc tables are what their sources give.
tools-test:
	$(PYTEST) -q tests/tools

# The auditor's console in Debian's Chromium, driven by playwright-core (the
# exact version in tests/browser/package.json, installed from the lock file).
tests/browser/node_modules/playwright-core/package.json: tests/browser/package.json \
		tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

browser: $(B)/fhir-gateway certs tests/browser/node_modules/playwright-core/package.json
	GATEWAY_BIN=$(abspath $(B)/fhir-gateway) $(PYTEST) -q tests/browser

test: deps-test
	$(MAKE) all certs
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) tools-test
	$(MAKE) browser
ifeq ($(HAVE_CLANG),yes)
	$(MAKE) fuzz-short
endif

SAN := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
# ASan keeps freed blocks in quarantine (256 MB by default): an export that frees each row
# as it goes (libpq's rows from PostgreSQL) would show them in its peak RSS, which the
# bounded-memory tests measure; 16 MB keeps use-after-free detection and that bound.
check: deps-test certs lint
	ASAN_OPTIONS=$${ASAN_OPTIONS:+$$ASAN_OPTIONS:}quarantine_size_mb=16 \
	$(MAKE) B=build/check OPT="$(SAN)" LDFLAGS="$(SAN)" all unit integration
	$(MAKE) fuzz-replay

# The FHIR R4 definitions come from a pinned npm package, checked and unpacked
# under build/ (tools/fhir-defs.sh); the generator writes the C tables from them.
model: deps-model
	@tools/fhir-defs.sh $(FHIR_DEFS)
	$(PYTHON) tools/gen_model.py $(FHIR_DEFS)/r4 gateway/fhir/model_gen.c

docs:
	$(PYTHON) tools/options_doc.py --write docs/OPERATIONS.md

lint:
	@tools/lint.sh

FMT_FILES = $(filter-out %_gen.c,$(SRC)) gateway/main.c $(wildcard gateway/*/*.h tests/unit/*.c \
            tests/unit/*.h tests/fuzz/*.c)

fmt:
	clang-format -i $(FMT_FILES)

fmt-check:
	@clang-format --dry-run -Werror $(FMT_FILES) && echo "fmt-check: formatted"

clean:
	rm -rf build

# libFuzzer targets (clang): the library objects are built once with
# fuzzer-no-link in build/fuzz, each target links them with -fsanitize=fuzzer.
# Each target links the modules it names (default: all).
FUZZ_DEPS_er7        := util hl7v2
FUZZ_DEPS_mllp       := util hl7v2
FUZZ_DEPS_conceptmap := util mapping
FUZZ_DEPS_fhir_json  := util fhir
FUZZ_DEPS_fhir_xml   := util fhir
FUZZ_DEPS_ris_inbound := util config auth http fhir mapping hl7v2 store audit ris
fuzz_deps = $(call modobj,$(or $(FUZZ_DEPS_$(1)),$(MODULES)))
$(FUZZ_BINS): $(B)/fuzz/fuzz_%: $(B)/tests/fuzz/fuzz_%.o $$(call fuzz_deps,$$*)
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(GW_LIBS)

fuzz-bins: $(FUZZ_BINS)

# make fuzz [FUZZ_SECONDS=60]: each target explores for FUZZ_SECONDS; new
# inputs go to build/fuzz/new-<target>/, the committed corpus is only read.
fuzz: deps-test
	$(MAKE) B=build/fuzz CC=clang OPT="$(FUZZ_SAN)" fuzz-bins
	@tools/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-short: deps-test
	$(MAKE) fuzz FUZZ_SECONDS=5

# Replays every committed corpus input once (no exploration): a regression test.
fuzz-replay: deps-test
	$(MAKE) B=build/fuzz CC=clang OPT="$(FUZZ_SAN)" fuzz-bins
	@tools/fuzz.sh replay 0 $(FUZZ_TARGETS)

$(B)/bench/loadgen: bench/loadgen.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $< $(shell pkg-config --cflags --libs openssl) -pthread -lm

$(B)/bench/baseline: bench/baseline.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $< $(shell pkg-config --cflags --libs libmicrohttpd gnutls) -pthread

# make bench STORE=postgresql: PostgreSQL x1 and x2 (tools/pgtest.sh server) beside SQLite
STORE ?= sqlite
bench: deps all certs $(B)/bench/loadgen $(B)/bench/baseline
	@B=$(B) STORE=$(STORE) bench/run.sh

# Instructions per referral on each thread (valgrind's callgrind; see bench/profile.sh).
profile: deps deps-profile all certs $(B)/bench/loadgen
	@B=$(B) bench/profile.sh $(PROFILE_OUT)

# Subscription notifications: change committed -> notification received, under load.
bench-subscriptions: deps all certs $(B)/bench/loadgen
	@B=$(B) $(PYTHON) bench/subscription_latency.py

$(B)/bench/gen_referrals: bench/gen_referrals.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -o $@ $<

# make bench-scale [SCALE_REFERRALS=1000000]: fills var/bench-scale/ once
# (reused while SCALE_REFERRALS is the same) and compares 0 and N stored.
SCALE_REFERRALS ?= 1000000
bench-scale: deps all certs $(B)/bench/loadgen $(B)/bench/gen_referrals
	@B=$(B) $(PYTHON) bench/scale.py --referrals $(SCALE_REFERRALS)

-include $(OBJ:.o=.d) $(B)/gateway/main.d $(UNIT_BINS:=.d) $(FUZZ_TARGETS:%=$(B)/tests/fuzz/fuzz_%.d)
